"""Driver process for tests/test_faults.py: runs one workflow on a journal and reports on stdout.

    python fault_driver.py MODE JOURNAL WORKDIR EXECUTION_ID

The steps and workflows live in this script's ``__main__``, so they reach the workers cloudpickled by
value (the path a notebook takes). Steps leave evidence in WORKDIR: ``counter.log`` gets one line
``<label> <pid>`` per attempt (appended with O_APPEND, so concurrent workers never interleave), and
gated steps block until the file ``WORKDIR/release`` exists.

Modes:
  phased     5 steps fanned out and waited for, then 15 gated steps fanned out (test: SIGKILL driver)
  interrupt  2 quick sequential steps, then one gated step (test: SIGINT driver)
  hold       one gated step; after the run, stay alive until WORKDIR/quit exists (test: two engines)
  quick      two quick steps (test: the second engine)
The output is printed as ``RESULT <json>``; a ZartError as ``ERROR <type>: <message>`` on stderr (exit 1).
"""
from __future__ import annotations

import json
import os
import sys
import time

import zart_nb as zart

FIRST = 5
TOTAL = 20
GATE_DEADLINE = 60.0  # a gated step gives up after this long (so a broken test leaves no process behind)


def note(workdir: str, label: str) -> None:
    """Append ``label pid`` to the counter file in one O_APPEND write."""
    fd = os.open(os.path.join(workdir, "counter.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, f"{label} {os.getpid()}\n".encode())
    finally:
        os.close(fd)


def wait_for_release(workdir: str) -> None:
    release = os.path.join(workdir, "release")
    deadline = time.monotonic() + GATE_DEADLINE
    while not os.path.exists(release):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{release} did not appear within {GATE_DEADLINE}s")
        time.sleep(0.02)


@zart.step("work-{i}")
def work(i: int, workdir: str, gated: bool) -> int:
    note(workdir, f"work-{i}")
    if gated:
        wait_for_release(workdir)
    return i * i


@zart.step("quick")
def quick(i: int, workdir: str) -> int:
    note(workdir, f"quick-{i}")
    return i + 100


@zart.step("gate")
def gate(workdir: str) -> str:
    note(workdir, "gate")
    wait_for_release(workdir)
    return "gate-open"


@zart.workflow("phased")
def phased(workdir: str) -> dict:
    first = zart.wait([zart.schedule(work, i, workdir, False) for i in range(FIRST)])
    rest = zart.wait([zart.schedule(work, i, workdir, True) for i in range(FIRST, TOTAL)])
    squares = first + rest
    return {"squares": squares, "total": sum(squares)}


@zart.workflow("interrupt")
def interrupt(workdir: str) -> list:
    return [quick(0, workdir), quick(1, workdir), gate(workdir)]


@zart.workflow("hold")
def hold(workdir: str) -> str:
    return gate(workdir)


@zart.workflow("quick")
def quick_flow(workdir: str) -> list:
    return zart.wait([zart.schedule(quick, i, workdir) for i in range(2)])


WORKFLOWS = {"phased": phased, "interrupt": interrupt, "hold": hold, "quick": quick_flow}


def report_worker_after_interrupt(workdir: str) -> None:
    """On Ctrl-C: say whether the worker that ran the gated step is already gone (before atexit)."""
    pids = [int(line.split()[1]) for line in open(os.path.join(workdir, "counter.log"))
            if line.startswith("gate ")]
    alive = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            continue
        if state not in ("Z", "X"):
            alive.append(pid)
    print(f"GATE_WORKERS_ALIVE {json.dumps(alive)}", file=sys.stderr, flush=True)


def main() -> int:
    mode, journal, workdir, execution_id = sys.argv[1:5]
    print(f"DRIVER_PID {os.getpid()}", flush=True)
    try:
        output = zart.run(WORKFLOWS[mode], workdir, execution_id=execution_id, journal=journal,
                          workers=2)
    except zart.ZartError as exc:
        print(f"ERROR {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        report_worker_after_interrupt(workdir)
        raise
    print(f"RESULT {json.dumps(output)}", flush=True)
    if mode == "hold":
        quit_file = os.path.join(workdir, "quit")
        deadline = time.monotonic() + GATE_DEADLINE
        while not os.path.exists(quit_file) and time.monotonic() < deadline:
            time.sleep(0.02)
    return 0


if __name__ == "__main__":
    sys.exit(main())
