"""P4: the reads behind `zart ls`, `zart show`, the widget and the TUI on a big journal.

Run by hand, never by the test suite:

    python bench/bench_p4.py [--executions 10000] [--steps 100] [--repeats 7] [--keep PATH]

Builds a journal of ``executions * steps`` step rows (1,000,000 by default, in 10,000 executions) with
bulk SQL (no workflow runs: a few seconds), then times, through the public reader (``zart.journal``):

- the executions list: first page (50), newest first, with step counts;
- one execution's first page of steps (100);
- beside them, ``SELECT count(*) FROM steps`` on the same connection as a yardstick.

Each read is timed cold (the first after opening the file) and warm (median of ``--repeats``).
Target (issue 8): <= 50 ms each.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time

import zart_nb as zart
from zart_nb._journal import STEP_COLUMNS
from zart_nb._journal.schema import RECOUNT_STEPS
from zart_nb._runtime import runtime


def build(path: str, executions: int, steps: int) -> None:
    # the engine's own writer path is not what is measured: one transaction of bulk inserts
    journal = runtime.journal(path)

    def insert(conn) -> None:
        conn.execute("BEGIN")
        conn.execute(f"""
            INSERT INTO executions
            SELECT 'wf-' || left(md5(i::VARCHAR), 12), 'wf' || (i % 7), 'def', ''::BLOB, 'h', '(' || i || ',)',
                   CASE WHEN i % 10 = 0 THEN 'failed' ELSE 'completed' END, NULL, '42', NULL, NULL,
                   1, 'rerun', 1.7e9 + i, 1.7e9 + i, 1.7e9 + i + 5, 1, 'host'
            FROM range({executions}) t(i)""")
        conn.execute(f"""
            INSERT INTO runs
            SELECT 'wf-' || left(md5(i::VARCHAR), 12), 1, 'completed', 1.7e9 + i, 1.7e9 + i + 5, 1, {steps}, 0
            FROM range({executions}) t(i)""")
        conn.execute(f"""
            INSERT INTO steps ({", ".join(STEP_COLUMNS[:22])})
            SELECT 'wf-' || left(md5((i // {steps})::VARCHAR), 12), 'step#' || (i % {steps}), 1, i % {steps}, 'step',
                   'def', ''::BLOB, 'h', '(' || (i % {steps}) || ',)',
                   CASE WHEN i % 97 = 0 THEN 'failed' ELSE 'completed' END, NULL, '1', NULL, NULL, NULL,
                   1, 'new', true, 1.7e9, 1.7e9, 1.7e9 + 0.01, 'w1'
            FROM range({executions * steps}) t(i)""")
        conn.execute(RECOUNT_STEPS)  # what the fold keeps up to date row by row
        conn.execute("COMMIT")
        conn.execute("CHECKPOINT")

    with journal.hold():  # read-write: query() then uses this connection
        journal.query(insert)
    journal.close()


def timed(read, repeats: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    read()
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        read()
        warm.append(time.perf_counter() - t0)
    return cold, statistics.median(warm)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executions", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=100, help="steps per execution")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--keep", help="build (or reuse) the journal at this path and keep it")
    args = parser.parse_args()
    scratch = None
    if args.keep:
        path = args.keep
    else:
        scratch = tempfile.mkdtemp(prefix="zart-p4-")
        path = os.path.join(scratch, "journal.duckdb")
    try:
        if not os.path.exists(path):
            t0 = time.perf_counter()
            build(path, args.executions, args.steps)
            print(f"built {args.executions * args.steps:,} step rows in {args.executions:,} executions "
                  f"in {time.perf_counter() - t0:.1f} s ({os.path.getsize(path) / 1e6:.0f} MB)")
        journal = runtime.journal(path)
        reader = zart.journal(path, live=False)
        target = reader.list_executions(limit=1, offset=args.executions // 2)[0].execution_id
        journal.close()
        t0 = time.perf_counter()
        first = reader.list_executions(limit=50)
        open_and_list = time.perf_counter() - t0
        assert len(first) == 50 and first[0].steps_total == args.steps, first[0]
        rows = {
            "executions list (first 50, newest first, with counts)":
                timed(lambda: reader.list_executions(limit=50), args.repeats),
            f"steps of one execution (first 100 of {target})":
                timed(lambda: reader.list_steps(target, limit=100), args.repeats),
            "filtered list (status=failed, first 50)":
                timed(lambda: reader.list_executions("failed", limit=50), args.repeats),
            "yardstick: SELECT count(*) FROM steps":
                timed(lambda: journal.query(lambda c: c.execute("SELECT count(*) FROM steps").fetchone()),
                      args.repeats),
        }
        print(f"open (read-only) + first executions page: {open_and_list * 1000:7.1f} ms")
        print(f"{'read':58s} {'first':>9s} {'warm':>9s}   target <= 50 ms")
        for name, (cold, warm) in rows.items():
            print(f"{name:58s} {cold * 1000:7.1f}ms {warm * 1000:7.1f}ms")
        reader.close()
    finally:
        if scratch:
            runtime.forget_journal(runtime.journal(path))
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
