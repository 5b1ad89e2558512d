"""Driver for tests/test_run_end.py: three executions running at once, each with two steps that block
until WORKDIR/release exists.

    python three_driver.py JOURNAL WORKDIR
"""
from __future__ import annotations

import os
import sys
import time

import zart_nb as zart


@zart.step("held-{i}")
def held(i: int, workdir: str) -> int:
    deadline = time.monotonic() + 60
    while not os.path.exists(os.path.join(workdir, "release")) and time.monotonic() < deadline:
        time.sleep(0.02)
    return i


@zart.workflow("pair")
def pair(workdir: str) -> list:
    return zart.wait([zart.schedule(held, i, workdir) for i in range(2)])


if __name__ == "__main__":
    journal, workdir = sys.argv[1:3]
    started = [zart.start(pair, workdir, execution_id=f"ex-{n}", journal=journal, workers=3) for n in range(3)]
    print(f"RESULT {[execution.result(timeout=120) for execution in started]}", flush=True)
