"""Driver process for the test of a table input read beside a running engine: a workflow given a DataFrame
as its input (stored as Parquet when the run starts), whose step blocks until ``WORKDIR/go`` exists, so the
engine holds the journal meanwhile.

    python table_input_driver.py JOURNAL WORKDIR

Prints ``DONE <status>`` and exits. The gate gives up after 90 s, so a broken test leaves no process behind.
"""
from __future__ import annotations

import os
import sys
import time

import pandas as pd

import zart_nb as zart

GATE_DEADLINE = 90.0


@zart.step("gate")
def gate(workdir: str, rows: int) -> int:
    deadline = time.monotonic() + GATE_DEADLINE
    while not os.path.exists(os.path.join(workdir, "go")):
        if time.monotonic() > deadline:
            raise TimeoutError("the gate did not open")
        time.sleep(0.02)
    return rows


@zart.workflow("input-beside")
def input_beside(frame: pd.DataFrame) -> int:
    return gate(os.environ["ZART_TEST_WORKDIR"], len(frame))


def main() -> int:
    journal, workdir = sys.argv[1], sys.argv[2]
    os.environ["ZART_TEST_WORKDIR"] = workdir
    frame = pd.DataFrame({"cat": pd.Categorical(["a", "b"] * 3), "x": [float(i) for i in range(6)]})
    execution = zart.start(input_beside, frame, execution_id="held", journal=journal)
    try:
        execution.result(timeout=120)
    except zart.ZartError as exc:
        print(f"DONE error {exc}", flush=True)
    print(f"DONE {execution.status.value}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
