"""Passing many stored arrays to later steps by reference (issue 14): the cost of ``zart.schedule`` a call.

Run by hand, never by the test suite:

    python bench/bench_byref.py                    # 100, 300 and 1000 arrays of 1.2 MB, 2 workers
    python bench/bench_byref.py --counts 2000 --kb 2000

Each size runs in a process of its own: a workflow makes ``count`` arrays in steps (each above the value
threshold, so each is a file of the store, mapped copy-on-write when the body gets it), then schedules
one later step per array with the array as its argument (by reference: the driver checks that the array
is still its file's, unwritten), and, as the baseline in the same process, the same step ``count`` times
with a small argument (by value). Printed: the milliseconds a ``zart.schedule`` call takes both ways, and
their ratio; a check that reads every mapping of the process for each argument grows with ``count``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = r'''
import json, os, sys, time
import numpy as np
import zart_nb as zart

@zart.step("make-{i}")
def make(i, n):
    return np.full(n, float(i))

@zart.step("first")
def first(value):
    return float(value[0]) if hasattr(value, "shape") else float(value)

@zart.workflow("bench-byref")
def flow(params):
    count, n = params
    arrays = zart.wait([zart.schedule(make, i, n) for i in range(count)])
    began = time.perf_counter()
    small = [zart.schedule(first, float(i)) for i in range(count)]
    by_value = time.perf_counter() - began
    began = time.perf_counter()
    handles = [zart.schedule(first, array) for array in arrays]
    by_reference = time.perf_counter() - began
    assert zart.wait(handles) == [float(i) for i in range(count)] and len(zart.wait(small)) == count
    return by_value, by_reference

count, kb, folder = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
by_value, by_reference = zart.run(flow, (count, kb * 1000 // 8), execution_id="b",
                                  journal=os.path.join(folder, "j.duckdb"), display=False)
print(json.dumps({"by_value": by_value, "by_reference": by_reference}))
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--kb", type=int, default=1200, help="size of each array in kB (default 1200)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    env = {**os.environ, "ZART_WORKERS": str(args.workers), "ZART_MONITOR": "0"}
    import zart_nb

    print(f"zart_nb from {os.path.dirname(zart_nb.__file__)}, {args.kb} kB arrays, {args.workers} workers, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'arrays':>7} {'by value ms/call':>17} {'by reference ms/call':>21} {'ratio':>6}")
    for count in args.counts:
        with tempfile.TemporaryDirectory(prefix="zart-byref-") as folder:
            out = subprocess.run([sys.executable, "-P", "-c", CHILD, str(count), str(args.kb), folder], env=env,
                                 capture_output=True, text=True, check=True, timeout=1800)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        value_ms, reference_ms = (1000 * result[key] / count for key in ("by_value", "by_reference"))
        print(f"{count:>7} {value_ms:>17.3f} {reference_ms:>21.3f} {reference_ms / value_ms:>6.1f}")


if __name__ == "__main__":
    main()
