"""Driver for tests/test_run_end.py: an execution whose steps print, then block until WORKDIR/release.

    python printing_driver.py JOURNAL WORKDIR EXECUTION_ID [queue | QUICK [rerun]]

Two quick steps (QUICK, when given) complete first; then two gated steps print a line each and wait.
The test kills this process (SIGKILL) while the gated steps run. With ``queue``, the gated steps go
through a ``zart.Queue("slow", concurrency=1)``: one runs, the other waits on the queue. With ``rerun``,
every step completes, then ``zart.rerun_steps`` runs ``slow-0`` again, gated."""
from __future__ import annotations

import os
import sys
import time

import zart_nb as zart


@zart.step("quick-{i}")
def quick(i: int) -> int:
    return i


@zart.step("slow-{i}")
def slow(i: int, workdir: str) -> int:
    print(f"slow {i} started", flush=True)
    deadline = time.monotonic() + 60
    while not os.path.exists(os.path.join(workdir, "release")) and time.monotonic() < deadline:
        time.sleep(0.02)
    return i


ONE_AT_A_TIME = zart.Queue("slow", concurrency=1)


@zart.workflow("printing")
def printing(data: dict) -> list:
    first = zart.wait([zart.schedule(quick, i) for i in range(data["quick"])])
    return first + zart.wait([zart.schedule(slow, i, data["workdir"]) for i in range(2)])


@zart.workflow("printing-queued")
def printing_queued(data: dict) -> list:
    first = zart.wait([zart.schedule(quick, i) for i in range(data["quick"])])
    return first + zart.wait([ONE_AT_A_TIME.schedule(slow, i, data["workdir"]) for i in range(2)])


if __name__ == "__main__":
    journal, workdir, execution_id = sys.argv[1:4]
    flow = printing_queued if sys.argv[4:] == ["queue"] else printing
    data = {"workdir": workdir, "quick": int(sys.argv[4]) if sys.argv[4:5] not in ([], ["queue"]) else 2}
    print(f"DRIVER_PID {os.getpid()}", flush=True)
    if sys.argv[5:] == ["rerun"]:  # every step completes, then a rerun of slow-0 waits for the release file
        release = os.path.join(workdir, "release")
        open(release, "w").close()
        zart.run(flow, data, execution_id=execution_id, journal=journal, workers=2)
        os.unlink(release)
        print(f"RESULT {zart.rerun_steps(execution_id, ['slow-0'], journal=journal).result(120)}", flush=True)
    else:
        print(f"RESULT {zart.run(flow, data, execution_id=execution_id, journal=journal, workers=2)}", flush=True)
