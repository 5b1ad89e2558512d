"""Cold start: a new process that opens an existing journal and returns a finished execution's output.

Run by hand, never by the test suite:

    python bench/bench_cold_start.py [--samples 15]

Each sample is a new Python process. The yardstick is ``python -c "import zart_nb"`` measured in the same
run, interleaved with the samples, so machine noise hits both alike. Reported (medians):

- ``import``: the wall time of a process that only imports zart_nb;
- ``re-run``: the wall time of a process that imports zart_nb, opens the journal and re-runs a finished
  execution (``zart.run`` returns the journaled output, no step runs);
- ``beyond import``: their difference, and the same measured inside the child with ``perf_counter``
  (from after the import to the output in hand). Target (issue 5): <= 60 ms beyond the import.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

FLOW = textwrap.dedent("""
    import zart_nb as zart

    @zart.step
    def square(x):
        return x * x

    @zart.workflow
    def squares(n):
        return sum(zart.wait([zart.schedule(square, i) for i in range(n)]))
""")

RERUN = textwrap.dedent("""
    import time
    t0 = time.perf_counter()
    import zart_nb as zart
    t1 = time.perf_counter()
    from flow import squares
    out = zart.run(squares, 200, execution_id="cold", journal="journal.duckdb")
    t2 = time.perf_counter()
    assert out == sum(i * i for i in range(200)), out
    print(f"{t1 - t0:.6f} {t2 - t1:.6f}")
""")


def _wall(args: list[str], cwd: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=True)
    return time.perf_counter() - t0, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=15)
    args = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="zart-cold-")
    try:
        with open(os.path.join(scratch, "flow.py"), "w") as handle:
            handle.write(FLOW)
        env_python = [sys.executable, "-c"]
        _wall([*env_python, RERUN], scratch)  # journals the execution (200 steps) once
        _wall([*env_python, RERUN], scratch)  # warms the OS caches
        imports, reruns, inside = [], [], []
        for _ in range(args.samples):
            imports.append(_wall([*env_python, "import zart_nb"], scratch)[0])
            wall, out = _wall([*env_python, RERUN], scratch)
            reruns.append(wall)
            inside.append(float(out.split()[1]))
        med = statistics.median
        print(f"cold start, {args.samples} samples (medians), Python {sys.version.split()[0]}")
        print(f"  import zart_nb (own process):            {med(imports) * 1000:7.1f} ms")
        print(f"  open journal + finished re-run (process): {med(reruns) * 1000:7.1f} ms")
        print(f"  beyond the import (wall difference):     {(med(reruns) - med(imports)) * 1000:7.1f} ms")
        print(f"  beyond the import (inside the child):    {med(inside) * 1000:7.1f} ms   target <= 60 ms")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
