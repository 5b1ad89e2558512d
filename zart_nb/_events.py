"""An in-process stream of execution and step state changes, as typed events.

The notebook widget and the monitor endpoint subscribe here instead of polling the journal; both
serialize events as they are (``to_dict`` gives JSON-ready values). Callbacks run on engine threads
and must return quickly (hand the event to a queue).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

from ._status import ExecutionStatus, RunReason, StepStatus


class _StepFields(NamedTuple):
    execution_id: str
    step_key: str
    status: StepStatus
    name: str = ""
    attempt: int = 1
    reused: bool = False
    reason: RunReason | None = None  # why it runs in this run (scheduled events)
    error: str | None = None
    preview: str | None = None  # of the output (completed events)
    worker: str | None = None
    delay: float | None = None  # seconds before the next attempt (retrying events)
    started_at: float | None = None
    at: float = 0.0


# Events are immutable tuples: the engine builds two per step while anyone listens, and a frozen
# dataclass costs ~1.8 µs to build where a tuple costs ~0.5 µs.
class StepEvent(_StepFields):
    """A step changed state: scheduled, retrying (``attempt`` is the next one), completed, failed, cancelled.

    ``reused`` marks a completed step taken from the journal (no attempt ran in this run). ``at``
    defaults to now."""

    __slots__ = ()
    kind: ClassVar[str] = "step"

    def __new__(cls, execution_id: str, step_key: str, status: StepStatus, name: str = "", attempt: int = 1,
                reused: bool = False, reason: RunReason | None = None, error: str | None = None,
                preview: str | None = None, worker: str | None = None, delay: float | None = None,
                started_at: float | None = None, at: float | None = None) -> StepEvent:
        return tuple.__new__(cls, (execution_id, step_key, status, name, attempt, reused, reason, error, preview,
                                   worker, delay, started_at, time.time() if at is None else at))

    def to_dict(self) -> dict[str, Any]:
        """Its fields as JSON-ready values (statuses and reasons as their value), with ``kind``."""
        return {"kind": self.kind, "execution_id": self.execution_id, "step_key": self.step_key,
                "status": self.status.value, "name": self.name, "attempt": self.attempt,
                "reused": self.reused, "reason": None if self.reason is None else self.reason.value,
                "error": self.error, "preview": self.preview, "worker": self.worker, "delay": self.delay,
                "started_at": self.started_at, "at": self.at}


class _ExecutionFields(NamedTuple):
    execution_id: str
    status: ExecutionStatus
    workflow: str = ""
    run_number: int | None = None
    journal: str = ""
    error: str | None = None
    at: float = 0.0


class ExecutionEvent(_ExecutionFields):
    """An execution changed state (running when a run starts; then how it ended). ``at`` defaults to now."""

    __slots__ = ()
    kind: ClassVar[str] = "execution"

    def __new__(cls, execution_id: str, status: ExecutionStatus, workflow: str = "", run_number: int | None = None,
                journal: str = "", error: str | None = None, at: float | None = None) -> ExecutionEvent:
        return tuple.__new__(cls, (execution_id, status, workflow, run_number, journal, error,
                                   time.time() if at is None else at))

    @property
    def step_key(self) -> None:
        """Always ``None``: lets a subscriber read ``event.step_key`` of either kind of event."""
        return None

    def to_dict(self) -> dict[str, Any]:
        """Its fields as JSON-ready values (the status as its value), with ``kind``."""
        return {"kind": self.kind, "execution_id": self.execution_id, "status": self.status.value,
                "workflow": self.workflow, "run_number": self.run_number, "journal": self.journal,
                "error": self.error, "at": self.at}


Event = StepEvent | ExecutionEvent
Subscriber = Callable[[Event], None]


class EventBus:
    """Fan-out of engine events to subscribers (``zart.events`` is the process's bus)."""

    def __init__(self) -> None:
        self._subscribers: tuple[Subscriber, ...] = ()
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        """Someone listens (the engine builds events only then)."""
        return bool(self._subscribers)

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback`` for every event from now on; returns a function that unsubscribes."""
        with self._lock:
            self._subscribers = self._subscribers + (callback,)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = tuple(s for s in self._subscribers if s is not callback)

        return unsubscribe

    def publish(self, event: Event) -> None:
        """Call every subscriber with ``event``, in this thread; a subscriber that raises is skipped."""
        for callback in self._subscribers:
            try:
                callback(event)
            except Exception:  # a broken subscriber must not break the engine
                pass


events = EventBus()
