"""Driver process for the retention and bulk tests: an engine in another process with finished and running
executions.

    python retention_driver.py JOURNAL WORKDIR

Runs ``old-1``..``old-3`` (each step and output a value above the test's value threshold, so each leaves
files in the value store) and ``bad-1`` (failed), then starts ``live-1`` and ``live-2``, whose steps wait
for ``WORKDIR/gate``; writes ``WORKDIR/ready`` and prints each live execution's end (``live-1 completed``,
``live-2 cancelled``) before it exits.
"""
from __future__ import annotations

import os
import sys

import zart_nb as zart


@zart.step("blob")
def blob(tag: str) -> bytes:
    return tag.encode() * 20_000


@zart.step("gated")
def gated(gate: str) -> str:
    import time

    deadline = time.monotonic() + 90
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.02)
    return "released"


@zart.workflow("blobs")
def blobs(tag: str) -> bytes:
    return zart.wait([zart.schedule(blob, tag)])[0]


@zart.workflow("failing")
def failing(tag: str) -> None:
    raise RuntimeError(f"{tag} fails")


@zart.workflow("waiting")
def waiting(gate: str) -> str:
    return zart.wait([zart.schedule(gated, gate)])[0]


def main() -> int:
    journal, workdir = sys.argv[1], sys.argv[2]
    for n in (1, 2, 3):
        zart.run(blobs, f"old-{n}", execution_id=f"old-{n}", journal=journal, display=False, workers=2)
    try:
        zart.run(failing, "bad", execution_id="bad-1", journal=journal, display=False, workers=2)
    except zart.ZartError:
        pass
    gate = os.path.join(workdir, "gate")
    live = [zart.start(waiting, gate, execution_id=f"live-{n}", journal=journal, display=False, workers=2)
            for n in (1, 2)]
    open(os.path.join(workdir, "ready"), "w").close()
    for execution in live:
        try:
            execution.result(timeout=120)
        except BaseException:  # cancelled from the tests: say so below
            pass
        print(execution.execution_id, execution.status.value, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
