"""Workflows of the live-kernel suspension tests (wake channel, leases across hosts, async bodies),
importable by reference: the tests folder is on the path of every process they start."""
from __future__ import annotations

import asyncio

from serve_lib import note
from suspend_lib import add, noted

import zart_nb as zart


@zart.step("live-double")
async def double(x: int) -> int:
    return 2 * x


@zart.workflow("live-async-sleepy")
async def async_sleepy(data: dict) -> dict:
    """Awaited steps around a plain durable sleep that suspends (over ``$ZART_SUSPEND_AFTER``)."""
    first = await asyncio.gather(double(1), double(2))
    zart.sleep("nap", data["seconds"])
    after = await zart.call(noted, data["log"], "after")
    return {"first": first, "after": after, "sum": add(*first)}


@zart.workflow("live-async-awaited-sleep")
async def async_awaited_sleep(data: dict) -> dict:
    """``await zart.sleep(...)`` over the threshold: it suspends at the call; awaited on replay, it is done."""
    before = await double(5)
    await zart.sleep("nap", data["seconds"])
    await zart.sleep_until("past", 0)  # a moment in the past: returns at once
    return {"before": before, "after": await zart.call(noted, data["log"], "after")}


@zart.workflow("live-async-approval")
async def async_approval(data: dict) -> dict:
    """Waits (plainly, in an async body) for the event ``go``, then awaits a step."""
    note(data.get("started"), "waiting")
    got = zart.wait_for_event("go", timeout=data.get("timeout"))
    return {"got": got, "doubled": await double(got["n"]), "after": await zart.call(noted, data["log"], "after")}


def wait_suspended(execution: zart.Execution) -> str:
    """Wait until a started execution has suspended and its process listens on its wake channel."""
    import time

    from zart_nb._monitor import wake

    for _ in range(1200):
        if execution.status is zart.ExecutionStatus.SLEEPING and any(wake.folder_of(execution.journal).glob("*.sock")):
            return execution.status.value
        time.sleep(0.05)
    raise TimeoutError("the execution did not suspend")
