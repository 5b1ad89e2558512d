"""An ``async def`` workflow of tests/test_handover_async.py (importable by reference: the tests folder is on the
path of every process they start). Its steps note in a log when they start and end (``handover_lib.mark``)."""
from __future__ import annotations

import asyncio

from handover_lib import mark

import zart_nb as zart


@zart.step("async-mark")
async def amark(name: str, log: str) -> str:
    """An ``async def`` step: notes ``start:NAME`` and ``done:NAME`` (as ``mark`` does)."""
    return mark(name, log)


@zart.workflow("async-long")
async def async_long(data: dict) -> dict:
    """``handover_lib.long`` as an ``async def`` body: suspends at once where ``$ZART_SUSPEND_AFTER`` is 0 (so
    ``zart serve`` continues it), awaits a step gated on ``data["gate"]``, then a step, a fan-out of two async
    steps and an awaited durable sleep under the threshold."""
    await zart.sleep("nap", data.get("nap", 0.0))
    first = await zart.call(mark, "first", data["log"], data["gate"])
    second = await zart.call(mark, "second", data["log"])
    fanned = await asyncio.gather(amark("third", data["log"]), amark("fourth", data["log"]))
    await zart.sleep("rest", 0.1)
    return {"steps": [first, second, *fanned], "seen": zart.now("at") is not None}
