"""Awaiting durable calls in an ``async def`` workflow body: ``await step(x)`` for an ``async def`` step,
``await zart.call(step, x)`` for any step, ``await handle`` for a scheduled one, and ``await zart.sleep(...)``
(the sleep, or the suspension, happens at the call; the awaitable is done).

The call is scheduled when it is made (its key is assigned in call order, as for ``zart.schedule``), so
``asyncio.gather(step(a), step(b))`` runs both in parallel and a replay gives them the same keys. Awaiting
waits for the journaled result on a thread of the loop's default executor: the event loop is never
blocked, and other coroutines of the body run meanwhile. ``asyncio`` is imported only when an awaitable
is made (every process that runs a workflow loads this module; asyncio costs ~50 ms of a cold start).
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # duck-typed at run time: the handles import this module
    from collections.abc import Generator
    from typing import Protocol

    class _Waitable(Protocol):
        @property
        def done(self) -> bool: ...

        def wait_done(self, timeout: float | None = None) -> Any: ...

        def result(self, timeout: float | None = None) -> Any: ...


class Slept:
    """What ``zart.sleep`` returns in an async body: done already (the sleep happened, or its execution
    suspended, at the call), so ``await zart.sleep(...)`` works as the plain call does."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        yield from ()

    def __repr__(self) -> str:
        return "<zart sleep: done>"


SLEPT = Slept()


def in_async_body() -> bool:
    """Whether the calling thread runs an event loop (an ``async def`` workflow body runs in one)."""
    asyncio = sys.modules.get("asyncio")  # not imported here: no event loop can be running
    if asyncio is None:
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def result_of(handle: _Waitable) -> Any:
    """The step's result, awaited: its value, or its ``StepError`` raised."""
    if not handle.done:
        import asyncio

        await asyncio.get_running_loop().run_in_executor(None, handle.wait_done)
    return handle.result()


async def output_of(execution: _Waitable) -> Any:
    """An execution's output, awaited (``await zart.start(...)``)."""
    if not execution.done:
        import asyncio

        await asyncio.get_running_loop().run_in_executor(None, execution.wait_done)
    return execution.result(0)
