"""Which execution and step the current code runs in (contextvars, so threads and tasks stay apart)."""
from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ._errors import NotInWorkflow

if TYPE_CHECKING:
    from ._journal import Journal, RunBeat, StoredStep
    from ._progress import RunProgress
    from ._replay import Kind
    from ._status import ExecutionStatus, StepStatus


class Run(Protocol):
    """What code in a workflow body needs of its run (the engine's ``RunState`` implements it)."""

    execution_id: str
    run_number: int
    cancelled: bool
    journal: Journal
    store: tuple[str, int]

    def schedule(self, step: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                 key: str | None = None, queue: Any = None) -> Any: ...

    def wait_for(self, handles: list[Any], timeout: float | None = None,
                 tick: Callable[[], None] | None = None) -> None: ...

    def wait_any(self, handles: list[Any], timeout: float | None = None) -> None: ...

    def child_id(self, workflow: str) -> str: ...

    def capture(self, kind: Any, name: str, identity: tuple[Any, ...], choose: Callable[[], Any],
                preview: Callable[[Any], str]) -> Any: ...

    def cancel(self, interrupted: bool = False, origin: str | None = None) -> None: ...

    def progress(self, listed: int = 8) -> RunProgress: ...

    def beat(self) -> RunBeat: ...

    def output_so_far(self, step_key: str) -> tuple[int, str] | None: ...

    def in_flight(self) -> list[tuple[str, str, int, StepStatus, str, float | None]]: ...

    # durable calls of other kinds than steps (``_durable``, ``_messages``)
    def recall(self, kind: Kind, name: str) -> tuple[str, int, StoredStep | None]: ...

    def journal_call(self, kind: Kind, key: str, seq: int, name: str, blob: bytes, preview: str,
                     args_preview: str = "", finished_at: float | None = None, supersede: bool = False) -> None: ...

    def pause(self, until: float, call: tuple[str, int, str] | None = None) -> None: ...

    def wake(self) -> bool: ...

    def doze(self, until: float) -> None: ...

    def poke(self) -> None: ...

    def suspend(self, status: ExecutionStatus, waits_for: str, wake_at: float | None,
                call: tuple[str, int, str] | None = None) -> None: ...

    def hand_over(self, waits_for: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Context:
    """Where the calling code runs: ``step_key``/``attempt`` are set inside a step, else ``None``."""

    execution_id: str
    step_key: str | None
    attempt: int | None
    run_number: int | None = None


_run: ContextVar[Run | None] = ContextVar("zart_run", default=None)
_step: ContextVar[Context | None] = ContextVar("zart_step", default=None)


def current_run() -> Run | None:
    return _run.get()


def require_run(what: str) -> Run:
    run = _run.get()
    if run is None:
        raise NotInWorkflow(f"zart.{what}() must be called inside a running workflow "
                            "(zart.run(...), zart.start(...) or a DurableScheduler)")
    return run


def enter_run(run: Run) -> Token[Run | None]:
    return _run.set(run)


def leave_run(token: Token[Run | None]) -> None:
    _run.reset(token)


def in_step() -> bool:
    """True while a step's function runs (in a worker, or on a thread of the inline executor)."""
    return _step.get() is not None


def enter_step(execution_id: str, step_key: str, attempt: int) -> Token[Context | None]:
    return _step.set(Context(execution_id, step_key, attempt))


def leave_step(token: Token[Context | None]) -> None:
    _step.reset(token)


def context() -> Context:
    """The current execution id, step key and attempt number.

    Inside a step (in its worker) all three are set; in a workflow body ``step_key`` and ``attempt``
    are ``None``. Outside both, raises :class:`NotInWorkflow`.
    """
    step = _step.get()
    if step is not None:
        return step
    run = _run.get()
    if run is not None:
        return Context(run.execution_id, None, None, run.run_number)
    raise NotInWorkflow("zart.context() is only available inside a workflow or a step")
