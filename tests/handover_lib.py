"""Workflows of tests/test_handover.py (importable by reference: the tests folder is on the path of every
process they start). Each step notes in a log when it starts and ends, so a test counts how often it ran."""
from __future__ import annotations

import os
import time

import zart_nb as zart


def note(log: str, text: str) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.write(fd, f"{text}\n".encode())
    os.close(fd)


def lines(log: object) -> list[str]:
    try:
        with open(str(log)) as handle:
            return handle.read().split()
    except FileNotFoundError:
        return []


@zart.step("mark")
def mark(name: str, log: str, gate: str | None = None) -> str:
    """Notes ``start:NAME``, runs until the file ``gate`` exists (if given), notes ``done:NAME``."""
    note(log, f"start:{name}")
    while gate is not None and not os.path.exists(gate):
        time.sleep(0.02)
    note(log, f"done:{name}")
    return name


@zart.workflow("long")
def long(data: dict) -> list[str]:
    """Suspends at once where ``$ZART_SUSPEND_AFTER`` is 0 (so ``zart serve`` continues it), then a step
    gated on ``data["gate"]`` and one more step."""
    zart.sleep("nap", data.get("nap", 0.0))
    first = zart.schedule(mark, "first", data["log"], data["gate"]).result()
    second = zart.schedule(mark, "second", data["log"]).result()
    return [first, second]


@zart.workflow("quick")
def quick(data: dict) -> str:
    return zart.schedule(mark, data.get("name", "quick"), data["log"], data.get("gate")).result()


@zart.workflow("dozer")
def dozer(data: dict) -> list[str]:
    """As ``long``, with a durable sleep of ``data["rest"]`` seconds (under the suspension threshold: the body
    blocks in it) between its two steps."""
    zart.sleep("nap", data.get("nap", 0.0))
    first = zart.schedule(mark, "first", data["log"]).result()
    zart.sleep("rest", data["rest"])
    second = zart.schedule(mark, "second", data["log"]).result()
    return [first, second]


@zart.workflow("fanned")
def fanned(data: dict) -> list[str]:
    """Five steps gated on ``data["gate"]`` fanned out and waited for, then one more step."""
    names = zart.wait([zart.schedule(mark, f"fan{i}", data["log"], data["gate"]) for i in range(5)])
    return [*names, zart.schedule(mark, "after", data["log"]).result()]
