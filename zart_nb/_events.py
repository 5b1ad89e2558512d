"""An in-process stream of execution and step state changes.

The notebook widget and the monitor endpoint subscribe here instead of polling the journal.
Callbacks run on engine threads and must return quickly (hand the event to a queue).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Event:
    """``kind`` is ``execution`` or ``step``; ``status`` the new status value."""

    kind: str
    execution_id: str
    status: str
    step_key: str | None = None
    detail: dict = field(default_factory=dict)
    at: float = field(default_factory=time.time)


Subscriber = Callable[[Event], None]


class EventBus:
    """Fan-out of engine events to subscribers (``zart.events`` is the process's bus)."""

    def __init__(self) -> None:
        self._subscribers: tuple[Subscriber, ...] = ()
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
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
        for callback in self._subscribers:
            try:
                callback(event)
            except Exception:  # a broken subscriber must not break the engine
                pass


events = EventBus()
