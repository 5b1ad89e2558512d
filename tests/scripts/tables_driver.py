"""Driver process for the tests of zart.sql and zart.stored beside a running engine: a workflow whose
first step returns a DataFrame (stored as Parquet), then a step that blocks until ``WORKDIR/go`` exists,
so the engine holds the journal meanwhile; with ``input``, a workflow given that DataFrame as its input
(stored as Parquet as the run starts) whose one step is the gate.

    python tables_driver.py JOURNAL WORKDIR [input]

Prints ``DONE <status>`` and exits. The gate gives up after 90 s, so a broken test leaves no process behind.
"""
from __future__ import annotations

import os
import sys
import time

import pandas as pd

import zart_nb as zart

GATE_DEADLINE = 90.0


def sales(n: int) -> pd.DataFrame:
    return pd.DataFrame({"cat": pd.Categorical(["a", "b"] * n), "x": [float(i) for i in range(2 * n)]})


@zart.step("frame:sales-{n}")
def frame(n: int) -> pd.DataFrame:
    return sales(n)


@zart.step("gate")
def gate(workdir: str, rows: int = 1) -> int:
    deadline = time.monotonic() + GATE_DEADLINE
    while not os.path.exists(os.path.join(workdir, "go")):
        if time.monotonic() > deadline:
            raise TimeoutError("the gate did not open")
        time.sleep(0.02)
    return rows


@zart.workflow("tables-beside")
def tables_beside(workdir: str) -> int:
    return len(frame(3)) + gate(workdir)


@zart.workflow("input-beside")
def input_beside(table: pd.DataFrame) -> int:
    return gate(os.environ["ZART_TEST_WORKDIR"], len(table))


def main() -> int:
    journal, workdir = sys.argv[1], sys.argv[2]
    if sys.argv[3:] == ["input"]:
        os.environ["ZART_TEST_WORKDIR"] = workdir
        execution = zart.start(input_beside, sales(3), execution_id="held", journal=journal)
    else:
        execution = zart.start(tables_beside, workdir, execution_id="held", journal=journal)
    try:
        execution.result(timeout=120)
    except zart.ZartError as exc:
        print(f"DONE error {exc}", flush=True)
    print(f"DONE {execution.status.value}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
