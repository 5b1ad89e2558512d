"""``zart.wait_first`` and ``zart.as_completed`` (handles in the order they finish, the same on replay), and
``zart.call`` (an awaitable durable call, for ``async def`` bodies: see ``_aio``).

Which handle finished first is a race; a workflow that branches on it must take the same branch when it
is replayed. So in a workflow body each choice is journaled as a durable call of its own kind
(``Kind.WAIT``: keys ``wait:first#0``, ``wait:as_completed#0``, ...), identified by the handles it chose
among: a replay reads the journaled choice back and waits for that handle, whatever finishes first now.
Outside a workflow (``zart.start`` handles in a notebook) nothing is journaled.

When several handles are found finished at one look, the first of them in the order given is taken.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from . import _context
from . import _serialization as ser
from ._aio import result_of
from ._definitions import NamedCall, Step
from ._errors import DefinitionError, WaitTimeout
from ._handles import Execution, StepHandle
from ._replay import Kind

H = TypeVar("H", StepHandle, Execution)
R = TypeVar("R")
POLL = 0.05  # how often executions (which have no shared condition) are looked at


def _key(handle: StepHandle | Execution) -> str:
    return handle.key if isinstance(handle, StepHandle) else f"execution:{handle.execution_id}"


def _checked(handles: Iterable[Any], what: str) -> list[Any]:
    if isinstance(handles, (StepHandle, Execution)):
        raise DefinitionError(f"zart.{what}() takes a list of handles, got one handle ({handles!r})")
    listed = list(handles)
    if not listed:
        raise ValueError(f"zart.{what}() needs at least one handle, got an empty list")
    kinds = {type(handle) for handle in listed}
    if not kinds <= {StepHandle, Execution} or len(kinds) != 1:
        bad = next((h for h in listed if not isinstance(h, (StepHandle, Execution))), listed[-1])
        raise DefinitionError(f"zart.{what}() takes step handles (zart.schedule) or executions (zart.start), "
                              f"all of one kind; got {bad!r}")
    keys = [_key(handle) for handle in listed]
    if len(set(keys)) != len(keys):
        raise DefinitionError(f"zart.{what}() got the same handle twice")
    return listed


def _run_of(handles: list[Any], what: str) -> _context.Run | None:
    """The run that journals the choice: the step handles' (which must be the caller's), or the
    caller's when it waits for executions in a workflow body; None outside a workflow."""
    current = _context.current_run()
    if isinstance(handles[0], StepHandle):
        from ._api import _handles_run

        return _handles_run(handles)
    if _context.in_step():
        raise DefinitionError(f"zart.{what}() cannot wait for executions inside a step")
    return current


def _wait_any(run: _context.Run | None, handles: list[Any], deadline: float | None) -> None:
    remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
    if isinstance(handles[0], StepHandle):
        (run or handles[0]._run).wait_any(handles, remaining)
        return
    while not any(handle.done for handle in handles):
        if run is not None and run.cancelled:
            from ._errors import Cancelled

            raise Cancelled(f"execution {run.execution_id!r} was cancelled")
        if deadline is not None and time.monotonic() >= deadline:
            raise WaitTimeout(f"no execution of {len(handles)} finished in time (they keep running)")
        handles[0].wait_done(POLL)


def _wait_one(run: _context.Run | None, handle: Any, deadline: float | None) -> None:
    _wait_any(run, [handle], deadline)


def _choose(run: _context.Run | None, name: str, by_key: dict[str, Any], identity: tuple[Any, ...],
            deadline: float | None, every: bool = False) -> list[Any]:
    """The first of the handles ``by_key`` to finish, or with ``every`` all those found finished at that
    look, in the order given (journaled in a workflow under ``identity``, what it chooses among; read
    back on replay, where the caller waits for each before it takes it)."""
    handles = list(by_key.values())

    def first_done() -> list[str]:
        _wait_any(run, handles, deadline)
        if every:
            return [_key(handle) for handle in handles if handle.done]
        return [next(_key(handle) for handle in handles if handle.done)]

    if run is None:
        chosen = first_done()
    else:
        chosen = run.capture(Kind.WAIT, name, identity, first_done, _preview)
    found = [by_key.get(key) for key in chosen] if isinstance(chosen, list) else [None]
    if not found or None in found:  # a journal written by other code: never here (the keys are its identity)
        raise DefinitionError(f"the journaled choice {chosen!r} is not among the handles waited for")
    return found


def _preview(keys: list[str]) -> str:
    text = ", ".join(keys)
    return f"first: {text if len(text) <= 200 else text[:199] + '…'}"


def wait_first(handles: Iterable[H], timeout: float | None = None) -> H:
    """Block until one of ``handles`` has finished and return it (the handle, not its result: call
    ``.result()`` on it). In a workflow body the choice is journaled, so a replay returns the same
    handle, even when another would finish first this time.

    ``handles``: step handles (``zart.schedule``) or executions (``zart.start``). An empty list is a
    ``ValueError``; ``WaitTimeout`` after ``timeout`` seconds (the steps keep running)."""
    __tracebackhide__ = True
    listed = _checked(handles, "wait_first")
    run = _run_of(listed, "wait_first")
    deadline = None if timeout is None else time.monotonic() + timeout
    by_key = {_key(handle): handle for handle in listed}
    (handle,) = _choose(run, "first", by_key, tuple(by_key), deadline)
    if not handle.done:  # on replay: the journaled first, whatever finishes first now
        _wait_one(run, handle, deadline)
    return handle  # type: ignore[no-any-return]


def as_completed(handles: Iterable[H], timeout: float | None = None) -> Iterator[H]:
    """Yield ``handles`` as they finish, each once. In a workflow body the order is journaled, so a
    replay yields the same order. ``timeout`` bounds the whole iteration (``WaitTimeout``).

    An empty list is a ``ValueError`` (raised at the call, not at the first ``next``)."""
    listed = _checked(handles, "as_completed")
    run = _run_of(listed, "as_completed")
    deadline = None if timeout is None else time.monotonic() + timeout
    return _completed(run, listed, deadline)


def _completed(run: _context.Run | None, listed: list[H], deadline: float | None) -> Iterator[H]:
    # One journaled record per look (every handle found finished then, in the order given), identified
    # by the whole list (hashed once) and the position it starts at: small, however many handles.
    by_key = {_key(handle): handle for handle in listed}
    whole = ser.args_hash(tuple(by_key), {})
    position = 0
    while by_key:
        batch: list[H] = _choose(run, "as_completed", by_key, (whole, position), deadline, every=True)
        position += len(batch)
        for handle in batch:
            del by_key[_key(handle)]
        for handle in batch:
            if not handle.done:  # on replay: in the journaled order, whatever finishes first now
                _wait_one(run, handle, deadline)
            yield handle


def call(target: Step[..., R] | NamedCall[..., R], *args: Any, **kwargs: Any) -> Any:
    """Run a step durably and return an awaitable of its result, for ``async def`` workflow bodies:
    ``value = await zart.call(step, x)``. Any step, plain or ``async def``; the call is scheduled now (so
    ``asyncio.gather(zart.call(a, 1), zart.call(b, 2))`` runs both in parallel), and awaiting it never
    blocks the event loop. A ``NamedCall`` (``step.named("key")``) gives the call its key."""
    run = _context.require_run("call")
    if isinstance(target, NamedCall):
        handle: StepHandle = run.schedule(target.step, args, kwargs, key=target.key)
    elif isinstance(target, Step):
        handle = run.schedule(target, args, kwargs)
    else:
        raise DefinitionError(f"zart.call() needs a @zart.step function, got {target!r}")
    return result_of(handle)
