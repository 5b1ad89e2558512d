"""Where a step's completion waits on its way to ``zart.wait``: folds, the journal lock, the side log.

Wraps a few private methods of the journal and engine (in this process only; nothing is changed on
disk) and runs one P1- or P2-sized workflow, then prints call counts and times:

    python bench/trace_commit_path.py p1 --workers 2
    python bench/trace_commit_path.py p2

A healthy engine folds rarely (every ``FOLD_INTERVAL`` or ``FOLD_BATCH`` rows), and the pool's I/O
thread barely waits for the journal lock.
"""
from __future__ import annotations

import argparse
import collections
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_core  # noqa: E402

import zart_nb as zart  # noqa: E402
import zart_nb._engine as engine  # noqa: E402
import zart_nb._journal.journal as journal  # noqa: E402
import zart_nb._journal.sidelog as sidelog  # noqa: E402
from zart_nb._runtime import runtime  # noqa: E402

STATS: dict[str, list] = collections.defaultdict(lambda: [0, 0.0])


def _wrap(cls: type, name: str, label: str) -> None:
    original = getattr(cls, name)

    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            entry = STATS[label]
            entry[0] += 1
            entry[1] += time.perf_counter() - t0

    setattr(cls, name, wrapper)


def _instrument() -> None:
    original_record = journal.Journal.record

    def record(self, *args, **kwargs):
        t0 = time.perf_counter()
        with self._log_lock:  # record() takes it again right after (it is not reentrant)
            pass
        entry = STATS["Journal.record: wait for the side-log lock"]
        entry[0] += 1
        entry[1] += time.perf_counter() - t0
        return original_record(self, *args, **kwargs)

    journal.Journal.record = record
    _wrap(journal.Journal, "record", "Journal.record (whole)")
    _wrap(journal.Journal, "_fold_locked", "Journal._fold_locked (DuckDB transaction)")
    _wrap(sidelog.SideLog, "append", "SideLog.append (write + fdatasync)")
    _wrap(engine.RunState, "on_outcomes", "RunState.on_outcomes (pool I/O thread)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("benchmark", choices=["p1", "p2"])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    workflow, steps = {"p1": (bench_core.fan_out, 2000), "p2": (bench_core.sequential, 500)}[args.benchmark]
    scratch = tempfile.mkdtemp(prefix="zart-trace-")
    try:
        zart.run(bench_core.fan_out, 100, execution_id="warm", journal=os.path.join(scratch, "w.duckdb"),
                 workers=args.workers)
        _instrument()
        t0 = time.perf_counter()
        zart.run(workflow, steps, execution_id="trace", journal=os.path.join(scratch, "j.duckdb"),
                 workers=args.workers)
        elapsed = time.perf_counter() - t0
        print(f"{args.benchmark.upper()}: {steps} steps in {elapsed:.3f} s ({elapsed / steps * 1e6:.0f} µs/step)")
        for label, (calls, total) in STATS.items():
            print(f"  {label:44s} {calls:6d} calls  {total:7.3f} s  {total / calls * 1e6:8.0f} µs/call")
    finally:
        zart.shutdown_pool()
        for path in Path(scratch).glob("*.duckdb"):
            runtime.journal(path).close()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
