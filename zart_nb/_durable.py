"""Durable calls of a workflow body other than steps: ``zart.capture``, ``zart.now``, ``zart.sleep`` and
``zart.sleep_until``. Each is journaled at its first call and answered from the journal on replay
(the rules are ``_kinds``'; the keys ``_replay``'s)."""
from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast, overload

from . import _context
from . import _kinds as kinds
from . import _serialization as ser
from . import _values as values
from ._errors import DefinitionError, SerializationError, ValueStoreError
from ._replay import Kind
from ._status import ExecutionStatus
from ._suspend import suspend_after

T = TypeVar("T")


def _run(what: str) -> _context.Run:
    return _context.require_run(what)


def capture(name: str, fn: Callable[[], T]) -> T:
    """Call ``fn()`` once and journal its value; on replay return the journaled value without calling it.

    For what a body reads that would differ on a re-run: the time, a uuid, a random number, the
    state of a file at that moment. Calls are keyed by ``name`` and their order (``capture:name#0``,
    ``#1``). Unlike a step's output, nothing runs in a worker: ``fn`` runs in the workflow's thread,
    at once, and is never retried. The value must pickle."""
    name = kinds.check_name("capture", name)
    if not callable(fn):
        raise DefinitionError(f"zart.capture() needs a function to call, got {fn!r}")
    run = _run("capture")
    key, seq, stored = run.recall(Kind.CAPTURE, name)
    blob = kinds.recalled(stored)
    if blob is not None:
        return cast(T, values.load(blob, run.journal.path, Path(run.store[0])))
    value = fn()
    try:
        blob, preview = values.dumps(value, run.store)
    except Exception as exc:
        if isinstance(exc, ValueStoreError):
            raise
        raise SerializationError(f"the value captured as {key!r} cannot be pickled: {exc}") from exc
    run.journal_call(Kind.CAPTURE, key, seq, name, blob, preview)
    return value


def now(name: str | None = None) -> datetime:
    """The current time (an aware UTC ``datetime``), journaled at the first call and the same on every
    replay. ``zart.now()`` calls are keyed by their order; ``zart.now("start")`` by name and order."""
    return capture("now" if name is None else name, lambda: datetime.now(UTC))


@overload
def sleep(name: str, seconds: float | Any) -> Awaitable[None] | None: ...
@overload
def sleep(name: float | Any, seconds: None = None) -> Awaitable[None] | None: ...


def sleep(name: Any, seconds: Any = None) -> Awaitable[None] | None:
    """Sleep durably: ``zart.sleep("cool-down", 60)`` or ``zart.sleep(60)`` (keyed by call order).
    ``seconds`` is a number or a ``timedelta``.

    The wake time is journaled at the first call: a resumed execution sleeps only what is left, and one
    whose wake time passed does not sleep. A cancel ends the sleep (``Cancelled``). In an ``async def``
    body it returns a done awaitable, so ``await zart.sleep(...)`` works too (the sleep, or the
    suspension, happens at the call)."""
    if seconds is None:
        name, seconds = "sleep", name
    _sleep("sleep", kinds.check_name("sleep", name), kinds.duration(seconds), None)
    return _slept()


def sleep_until(name: str, when: datetime | float) -> Awaitable[None] | None:
    """Sleep durably until ``when``: a ``datetime`` (a naive one is local time) or POSIX seconds. A
    moment in the past returns at once (journaled all the same). Awaitable in an async body, as
    :func:`sleep`."""
    _sleep("sleep_until", kinds.check_name("sleep_until", name), None, kinds.moment(when))
    return _slept()


def _slept() -> Awaitable[None] | None:
    """A done awaitable in an ``async def`` body (``await zart.sleep(...)``), else None."""
    from . import _aio

    return _aio.SLEPT if _aio.in_async_body() else None


def _sleep(what: str, name: str, seconds: float | None, until: float | None) -> None:
    run = _run(what)
    key, seq, stored = run.recall(Kind.SLEEP, name)
    blob = kinds.recalled(stored)
    if blob is not None:
        wake_at = float(ser.loads(blob))
    else:
        wake_at = until if until is not None else kinds.wake_time(None, time.time(), cast(float, seconds))
        preview = kinds.until(wake_at)
        run.journal_call(Kind.SLEEP, key, seq, name, ser.dumps(wake_at), preview,
                         f"{seconds:g}s" if seconds is not None else preview, finished_at=wake_at)
    left = kinds.left(wake_at, time.time())
    if left > 0:
        if left > suspend_after():  # a long sleep ends the run; it continues when due (``_suspend``)
            run.suspend(ExecutionStatus.SLEEPING, name, wake_at, (key, seq, name))
        run.pause(wake_at, (key, seq, name))
