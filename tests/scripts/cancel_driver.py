"""Driver process for the monitor's cancel tests: an engine in another process whose body is slow to stop.

    python cancel_driver.py JOURNAL WORKDIR

Runs execution ``slow``: its body schedules a step that writes its worker's pid to ``WORKDIR/nap.pid`` and
sleeps (up to 90 s), then waits in the
body itself, outside any step, until ``WORKDIR/gate`` exists, and only then asks for the step's result.
A cancel kills the step's worker at once, but the body notices only at that last call: until the gate
opens, the execution is cancelling, not stopped. Prints ``SLOW <status>``, then exits.
"""
from __future__ import annotations

import os
import sys
import time

import zart_nb as zart

DEADLINE = 90.0


@zart.step("nap")
def nap(workdir: str, seconds: float) -> str:
    with open(os.path.join(workdir, "nap.pid.tmp"), "w") as handle:
        handle.write(str(os.getpid()))
    os.replace(os.path.join(workdir, "nap.pid.tmp"), os.path.join(workdir, "nap.pid"))
    time.sleep(seconds)
    return "rested"


@zart.workflow("slow-to-stop")
def slow_to_stop(workdir: str) -> str:
    handle = zart.schedule(nap, workdir, DEADLINE)
    deadline = time.monotonic() + DEADLINE
    while not os.path.exists(os.path.join(workdir, "gate")) and time.monotonic() < deadline:
        time.sleep(0.02)
    return handle.result()


def main() -> int:
    journal, workdir = sys.argv[1], sys.argv[2]
    slow = zart.start(slow_to_stop, workdir, execution_id="slow", journal=journal)
    try:
        slow.result(timeout=2 * DEADLINE)
    except (zart.ZartError, zart.Cancelled):
        pass
    print(f"SLOW {slow.status.value}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
