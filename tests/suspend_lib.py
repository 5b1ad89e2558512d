"""Workflows of the suspension tests with real processes (importable by reference: the tests folder is on
the path of every process they start)."""
from __future__ import annotations

import os
import signal
import uuid

from serve_lib import note

import zart_nb as zart


@zart.step("sus-add")
def add(x: int, y: int) -> int:
    return x + y


@zart.step("sus-noted")
def noted(log: str, text: str) -> str:
    note(log, text)
    return text


@zart.workflow("sus-sleepy")
def sleepy(data: dict) -> list:
    first = add(1, 2)
    zart.sleep("nap", data["seconds"])
    return [first, noted(data["log"], "after"), add(first, 10)]


@zart.workflow("sus-approval")
def approval(data: dict) -> dict:
    got = zart.wait_for_event("go")
    return {"got": got, "after": noted(data["log"], "after")}


def _point(n: int) -> None:
    """Where the mixed workflow's driver kills itself: after its ``n``-th durable call."""
    if os.environ.get("SUS_KILL_AT") == str(n):
        os.kill(os.getpid(), signal.SIGKILL)


@zart.workflow("sus-mixed")
def mixed(data: dict) -> dict:
    a = add(1, 2)
    _point(1)
    stamp = zart.capture("id", lambda: uuid.uuid4().hex)
    _point(2)
    zart.publish("id", stamp)
    _point(3)
    fan = zart.wait([zart.schedule(add, a, i) for i in range(4)])
    _point(4)
    zart.sleep("short", 0.2)
    _point(5)
    b = add(a, fan[-1])
    _point(6)
    zart.sleep("long", data["long"])  # over $ZART_SUSPEND_AFTER: it suspends
    _point(7)
    got = zart.wait_for_event("go")
    _point(8)
    c = add(b, got["n"])
    _point(9)
    zart.publish("done", c)
    _point(10)
    return {"a": a, "fan": fan, "b": b, "got": got, "c": c, "id": stamp}


def send_go(journal: str, execution_id: str) -> None:
    """Send ``go`` to the mixed workflow's execution once (its idempotency key), as soon as it exists."""
    import time

    for _ in range(1200):
        try:
            zart.send_event(execution_id, "go", {"n": 5}, journal=journal, idempotency_key="go")
            return
        except (zart.ExecutionNotFound, zart.JournalError, zart.MonitorError):
            time.sleep(0.05)
