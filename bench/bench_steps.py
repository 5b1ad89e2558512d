"""Pages of one long execution's steps: offset against keyset (issue 13, item 7).

Run by hand, never by the test suite:

    python bench/bench_steps.py [--executions 4] [--steps 250000] [--page 50] [--repeats 7] [--keep PATH]

Builds a journal of ``executions * steps`` step rows (1,000,000 by default: 4 executions of 250,000 steps,
as in the terminal try of issue 13) with bulk SQL (``bench_p4.build``), then times through the public
reader (``zart.journal``) the first, middle and last page of the last execution's steps, by ``offset`` and
by key (``after=`` the step before the page, ``from_end=True`` for the last), and beside them the finding
reads of the TUI: the next failed step after a key, a key's place (``step_index``) and a filtered count.

Each read is timed cold (the first) and warm (median of ``--repeats``). Target: every page <= 50 ms.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

from bench_p4 import build, timed

import zart_nb as zart
from zart_nb._runtime import runtime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executions", type=int, default=4)
    parser.add_argument("--steps", type=int, default=250_000, help="steps per execution")
    parser.add_argument("--page", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--keep", help="build (or reuse) the journal at this path and keep it")
    args = parser.parse_args()
    scratch = None
    if args.keep:
        path = args.keep
    else:
        scratch = tempfile.mkdtemp(prefix="zart-steps-")
        path = os.path.join(scratch, "journal.duckdb")
    try:
        if not os.path.exists(path):
            t0 = time.perf_counter()
            build(path, args.executions, args.steps)
            print(f"built {args.executions * args.steps:,} step rows in {args.executions:,} executions "
                  f"in {time.perf_counter() - t0:.1f} s ({os.path.getsize(path) / 1e6:.0f} MB)")
        reader = zart.journal(path, live=False)
        target = reader.list_executions(limit=1)[0].execution_id
        n, page = args.steps, args.page
        middle = n // 2
        before_middle = reader.list_steps(target, offset=middle - 1, limit=1)[0].step_key
        last_page = reader.list_steps(target, offset=n - page, limit=page)
        assert reader.list_steps(target, from_end=True, limit=page) == last_page
        assert reader.list_steps(target, after=before_middle, limit=page) == \
            reader.list_steps(target, offset=middle, limit=page)
        probe = reader.list_steps(target, offset=n - 1000, limit=1)[0].step_key
        rows = {
            "first page, offset 0": lambda: reader.list_steps(target, limit=page),
            f"middle page, offset {middle:,}": lambda: reader.list_steps(target, offset=middle, limit=page),
            f"last page, offset {n - page:,}": lambda: reader.list_steps(target, offset=n - page, limit=page),
            "middle page, after= its previous key": lambda: reader.list_steps(target, after=before_middle,
                                                                              limit=page),
            "last page, from_end=True": lambda: reader.list_steps(target, from_end=True, limit=page),
            "next failed step after a key near the end": lambda: reader.list_steps(
                target, status="failed", after=probe, limit=1),
            "step_index of a key near the end": lambda: reader.step_index(target, probe),
            "count_steps(status='failed')": lambda: reader.count_steps(target, status="failed"),
        }
        print(f"{args.executions * n:,} step rows; execution {target} has {n:,}; pages of {page}")
        print(f"{'read':48s} {'first':>9s} {'warm':>9s}   target <= 50 ms")
        for name, read in rows.items():
            cold, warm = timed(read, args.repeats)
            print(f"{name:48s} {cold * 1000:7.1f}ms {warm * 1000:7.1f}ms")
        reader.close()
    finally:
        if scratch:
            runtime.forget_journal(runtime.journal(path))
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
