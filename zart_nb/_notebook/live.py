"""Keeps a progress view up to date with one execution.

ipykernel 7 routes a thread's output by the parent header in its *context*; a thread that did not
inherit the cell's context sends under whichever cell ran last (or nowhere). The updating thread
therefore runs in a copy of the context of the cell that started the workflow, for ``zart.run``
(blocking: the cell's own thread only makes the final update, so that a body busy in the driver
cannot freeze the view) and ``zart.start`` (the view keeps moving after the cell returns) alike.
"""
from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable

from .progress import Snapshot, Tracker

logger = logging.getLogger("zart_nb")

INTERVAL = 0.1  # at most ~10 frontend updates a second, whatever the step rate


class Live:
    """Renders ``tracker`` through ``update`` every ``INTERVAL`` until the execution ends, then
    ``finish`` once (from ``close()``, or from the thread itself when nobody waits)."""

    def __init__(self, tracker: Tracker, update: Callable[[Snapshot], None],
                 finish: Callable[[Snapshot], None], background: bool) -> None:
        self._tracker = tracker
        self._update = update
        self._finish = finish
        self._background = background
        self._stop = threading.Event()
        self._closed = False
        self._rendered_by: set[int] = set()  # threads that rendered the final state
        self._lock = threading.Lock()
        tracker.execution._on_result.append(self.close)
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._loop,), name="zart-progress",
                                        daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        done = self._tracker.execution._done
        # The widget was displayed with the first state: a run shorter than INTERVAL costs no update.
        while not self._stop.is_set():
            done.wait(INTERVAL)
            if done.is_set() or self._stop.is_set():
                break
            self._render(self._update)
        if self._background and not self._stop.is_set():
            self.close()

    def _render(self, view: Callable[[Snapshot], None]) -> None:
        try:
            view(self._tracker.snapshot())
        except Exception:  # a broken view must never break the workflow
            logger.debug("zart: progress view failed", exc_info=True)

    def close(self) -> None:
        """Stop updating and render the final state.

        Called again (``Execution.result()`` calls it from whichever cell waits), it renders the
        final state once more from the caller's context: a saved notebook (nbclient keeps only
        messages of the cell it runs) then holds the final widget state too."""
        me = threading.get_ident()
        with self._lock:
            first = not self._closed
            self._closed = True
            if first:
                self._stop.set()
                if threading.current_thread() is not self._thread:
                    self._thread.join(5)
                self._tracker.close()
            elif me in self._rendered_by:
                return
            self._rendered_by.add(me)
            self._render(self._finish)
