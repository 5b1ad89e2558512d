"""Driver for tests/tui/test_tui_stepbar.py: QUICK steps complete, then two gated steps run on the two
workers until WORKDIR/release exists (the app watches meanwhile).

    python stepbar_driver.py JOURNAL WORKDIR EXECUTION_ID QUICK"""
from __future__ import annotations

import os
import sys
import time

import zart_nb as zart


@zart.step("quick-{i:04d}")
def quick(i: int) -> int:
    return i


@zart.step("slow-{i}")
def slow(i: int, workdir: str) -> int:
    deadline = time.monotonic() + 60  # the test's wait_for_release, in a script that cannot import it
    while not os.path.exists(os.path.join(workdir, "release")) and time.monotonic() < deadline:
        time.sleep(0.02)
    return i


@zart.workflow("stepbar")
def stepbar(data: dict) -> int:
    done = zart.wait([zart.schedule(quick, i) for i in range(data["quick"])])
    return sum(done) + sum(zart.wait([zart.schedule(slow, i, data["workdir"]) for i in range(2)]))


if __name__ == "__main__":
    journal, workdir, execution_id, count = sys.argv[1:5]
    result = zart.run(stepbar, {"quick": int(count), "workdir": workdir}, execution_id=execution_id,
                      journal=journal, workers=2)
    print(f"RESULT {result}", flush=True)
