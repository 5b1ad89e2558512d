"""One read in flight per screen: reads run on a worker thread and every result is shown.

A screen asks for a read whenever something changed (events arrived, a key changed the filter or the
page). While one read runs, further asks only mark it dirty: when it ends its result is shown and one
more read starts. So however fast events come (12-15k steps/s), reads never pile up or cancel each other
before they land (textual's ``exclusive`` workers did: under load every read was superseded before it
ended and the list froze for ~20 s), and the app's thread only ever draws.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Generic, TypeVar

from textual.css.query import NoMatches
from textual.widget import Widget

T = TypeVar("T")


class Refresher(Generic[T]):
    def __init__(self, owner: Widget, read: Callable[[], T], show: Callable[[T], None], *, name: str) -> None:
        """``read`` runs on a worker thread; ``show`` gets its value on the app's thread."""
        self._owner = owner
        self._read = read
        self._show = show
        self._name = name
        self.running = False
        self.dirty = False
        self.reads = 0  # reads started (tests look at it)

    def request(self) -> None:
        """Read soon: now if no read runs, else once the running one has been shown."""
        if self.running:
            self.dirty = True
            return
        self._start()

    def _start(self) -> None:
        self.running, self.dirty = True, False
        self.reads += 1
        self._owner.run_worker(self._work, thread=True, group=self._name, name=self._name)

    def _work(self) -> None:
        done: Callable[[], None]
        try:
            done = partial(self._show, self._read())
        except Exception as exc:  # shown as a message, never a traceback
            done = partial(self._owner.notify, f"{type(exc).__name__}: {exc}", severity="error")
        try:
            self._owner.app.call_from_thread(self._done, done)
        except RuntimeError:  # the app is closing
            pass

    def _done(self, show: Callable[[], None]) -> None:
        self.running = False
        if not self._owner.is_attached:
            return
        try:
            show()
        except NoMatches:  # the app is closing: the screen's widgets went before the screen (seen in CI)
            return
        if self.dirty:
            self._start()
