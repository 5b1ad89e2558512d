"""Driver process for the monitor and TUI tests: an engine in another process, advanced by gate files.

    python monitor_driver.py JOURNAL WORKDIR [STEPS] [PREFIX]

Runs execution ``first``: STEPS (default 3) sequential steps, step i blocking until ``WORKDIR/go-<i>``
exists; then execution ``second``: one step that writes its worker's pid to ``WORKDIR/second.pid`` and
blocks until ``WORKDIR/never`` exists (the tests cancel it instead). Prints ``FIRST <status>`` and
``SECOND <status>`` (``SECOND cancelled by <origin>`` after a cancel from another process), then exits.
``PREFIX`` goes before both ids (two drivers in one folder). A gate gives up after 90 s, so a broken test
leaves no process behind.
"""
from __future__ import annotations

import os
import sys
import time

import zart_nb as zart

GATE_DEADLINE = 90.0


def gate(path: str) -> None:
    deadline = time.monotonic() + GATE_DEADLINE
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {GATE_DEADLINE}s")
        time.sleep(0.02)


@zart.step("gated-{i}")
def gated(i: int, workdir: str) -> int:
    gate(os.path.join(workdir, f"go-{i}"))
    return i * 10


@zart.step("stuck")
def stuck(workdir: str) -> str:
    with open(os.path.join(workdir, "second.pid.tmp"), "w") as handle:
        handle.write(str(os.getpid()))
    os.replace(os.path.join(workdir, "second.pid.tmp"), os.path.join(workdir, "second.pid"))
    gate(os.path.join(workdir, "never"))
    return "released"


@zart.workflow("gated-flow")
def gated_flow(data: dict) -> int:
    return sum(gated(i, data["workdir"]) for i in range(data["steps"]))


@zart.workflow("stuck-flow")
def stuck_flow(workdir: str) -> str:
    return stuck(workdir)


def main() -> int:
    journal, workdir = sys.argv[1], sys.argv[2]
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    prefix = sys.argv[4] if len(sys.argv) > 4 else ""
    first = zart.start(gated_flow, {"workdir": workdir, "steps": steps}, execution_id=f"{prefix}first",
                       journal=journal)
    try:
        first.result(timeout=120)
    except zart.ZartError as exc:
        print(f"FIRST error {exc}", flush=True)
    print(f"FIRST {first.status.value}", flush=True)
    second = zart.start(stuck_flow, workdir, execution_id=f"{prefix}second", journal=journal)
    try:
        second.result(timeout=120)
    except (zart.ZartError, zart.Cancelled):
        pass
    by = f" by {second.cancelled_by}" if second.cancelled_by else ""  # who cancelled it from elsewhere
    print(f"SECOND {second.status.value}{by}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
