"""Workflows ``zart serve`` runs in the tests (importable by reference: the tests folder is on the path of
every process they start)."""
from __future__ import annotations

import os
import time

import zart_nb as zart


def note(log: str | None, text: str) -> None:
    if log:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.write(fd, f"{text}\n".encode())
        os.close(fd)


def lines(log) -> list[str]:
    try:
        with open(log) as handle:
            return handle.read().split()
    except FileNotFoundError:
        return []


@zart.step("stamp")
def stamp(data: object) -> dict:
    return {"data": data}


@zart.workflow("ticker")
def ticker(data: object) -> dict:
    return zart.schedule(stamp, data).result()


@zart.step("wait-for-gate")
def wait_for_gate(gate: str, log: str | None = None) -> str:
    """Runs until the file ``gate`` exists (what the test controls), noting that it started."""
    note(log, f"started:{os.getpid()}")
    while not os.path.exists(gate):
        time.sleep(0.02)
    note(log, "passed")
    return "opened"


@zart.workflow("gated")
def gated(data: dict) -> str:
    return zart.schedule(wait_for_gate, data["gate"], data.get("log")).result()


@zart.workflow("approval")
def approval(data: object) -> dict:
    """Waits for the event ``approve`` (sent over HTTP in the tests) and returns its payload."""
    return {"approved": zart.wait_for_event("approve", timeout=120)}
