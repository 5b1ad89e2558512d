"""Where the value store's threshold belongs (``$ZART_VALUE_THRESHOLD``, issue 14): the same steps with
their outputs in the journal row against in the store, by output size.

Run by hand, never by the test suite:

    python bench/bench_threshold.py                     # 64, 128, 256 and 512 kB, 200 steps, 3 repeats
    python bench/bench_threshold.py --kb 192 384 --steps 500

For each size, a workflow of ``--steps`` steps each returning that many kB of random float64 (numpy) runs
as a fan-out (``schedule`` all, ``wait``) and one step after another, each as whole processes on a fresh
journal: a first run that fails after its steps, then the re-run that reuses them (it loads every output).
Once with the threshold above the outputs (``row``: each a pickle carried by the worker's socket, the side
log and DuckDB), once below them (``store``: each a file the worker writes and fsyncs, mapped on reuse).
Printed: seconds (medians of the repeats, alternated), and ``store / row``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

CHILD = r'''
import os, sys
import numpy as np
import zart_nb as zart

@zart.step("part-{i}")
def part(i, n):
    return np.random.default_rng(i).random(n)

@zart.workflow("bench-threshold")
def flow(params):
    count, n, sequential, flag = params
    if sequential:
        values = [part(i, n) for i in range(count)]
    else:
        values = zart.wait([zart.schedule(part, i, n) for i in range(count)])
    if os.path.exists(flag):
        raise RuntimeError("failing after the steps")
    return sum(float(value[0]) for value in values)

shape, steps, kb, journal, first = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5] == "1"
flag = journal + ".fail"
if first:
    open(flag, "w").close()
elif os.path.exists(flag):
    os.unlink(flag)
try:
    zart.run(flow, (steps, kb * 1000 // 8, shape == "sequential", flag), execution_id="t", journal=journal,
             display=False)
except zart.TaskError:
    pass
'''

STORE_ALL, ROW_ALL = 1000, 1 << 30  # bytes: every output above the first, below the second


def _process(args: list[str], env: dict[str, str]) -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-P", "-c", CHILD, *args], env=env, check=True, timeout=1800)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kb", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    import zart_nb

    print(f"zart_nb from {os.path.dirname(zart_nb.__file__)}, {args.steps} steps, {args.workers} workers, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'shape':<11} {'kB':>5} {'first: row':>11} {'store':>7} {'ratio':>6} {'re-run: row':>12} {'store':>7} "
          f"{'ratio':>6}")
    for shape in ("fan-out", "sequential"):
        for kb in args.kb:
            times: dict[str, list[float]] = {"row-first": [], "store-first": [], "row-again": [], "store-again": []}
            for _ in range(args.repeats):
                for where, threshold in (("row", ROW_ALL), ("store", STORE_ALL)):
                    env = {**os.environ, "ZART_WORKERS": str(args.workers), "ZART_MONITOR": "0",
                           "ZART_VALUE_THRESHOLD": str(threshold)}
                    with tempfile.TemporaryDirectory(prefix="zart-threshold-") as folder:
                        journal = os.path.join(folder, "j.duckdb")
                        run = [shape, str(args.steps), str(kb), journal]
                        times[f"{where}-first"].append(_process([*run, "1"], env))
                        times[f"{where}-again"].append(_process([*run, "0"], env))
            med = {key: statistics.median(values) for key, values in times.items()}
            print(f"{shape:<11} {kb:>5} {med['row-first']:>11.3f} {med['store-first']:>7.3f} "
                  f"{med['store-first'] / med['row-first']:>6.2f} {med['row-again']:>12.3f} {med['store-again']:>7.3f} "
                  f"{med['store-again'] / med['row-again']:>6.2f}")


if __name__ == "__main__":
    main()
