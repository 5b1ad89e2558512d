"""Keeps a progress view and the steps' printed lines flowing into the cell that started an execution.

ipykernel 7 routes a thread's output by the parent header in its *context*; a thread that did not
inherit the cell's context sends under whichever cell ran last (or nowhere). The updating thread
therefore runs in a copy of the context of the cell that started the workflow, for ``zart.run``
(blocking: the cell's own thread only makes the final update, so that a body busy in the driver
cannot freeze the view) and ``zart.start`` (the view keeps moving after the cell returns) alike.
"""
from __future__ import annotations

import collections
import contextvars
import logging
import sys
import threading
import time
from collections.abc import Callable

from .._executors.capture import prefix_lines
from .progress import Snapshot, Tracker
from .tracebacks import explain_end

logger = logging.getLogger("zart_nb")

INTERVAL = 0.1  # at most ~10 frontend updates a second, whatever the step rate
View = Callable[[Snapshot], None]


class Live:
    """Renders ``tracker`` through ``update`` at most every ``INTERVAL`` and writes the lines the
    execution's steps print as they arrive, until the execution ends; then ``finish`` once (from
    ``close()``, or from the thread itself when nobody waits). Without views it only relays lines."""

    def __init__(self, tracker: Tracker, update: View | None, finish: View | None, background: bool,
                 before_output: Callable[[], None] | None = None,
                 opener: Callable[[], tuple[View, View]] | None = None) -> None:
        self._opener = opener  # displays the view from the thread, while the run starts (P1's cost)
        self._tracker = tracker
        self._update = update
        self._finish = finish
        self._before_output = before_output
        self._background = background
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lines: collections.deque[tuple[str, int, str, str, str | None]] = collections.deque()
        self._closed = False
        self._rendered_by: set[int] = set()  # threads that rendered the final state
        self._lock = threading.Lock()
        execution = tracker.execution
        execution.on_result(self.close)
        execution.add_output_sink(self._printed)
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._loop,), name="zart-progress",
                                        daemon=True)
        self._thread.start()

    def _printed(self, key: str, attempt: int, stream: str, text: str, named: str | None) -> None:
        # On the executor's I/O thread: only hand over. ``named``: the execution's id, once another ran
        # beside it in this process (two started from one cell print into it side by side).
        self._lines.append((key, attempt, stream, text, named))
        self._wake.set()

    def _write_lines(self) -> None:
        if not self._lines:
            return
        if self._before_output is not None:
            self._before_output()
        pending: list[str] = []
        stream = "stdout"
        while self._lines:
            key, attempt, line_stream, text, named = self._lines.popleft()
            if line_stream != stream and pending:
                self._emit(stream, pending)
                pending = []
            stream = line_stream
            pending.append(prefix_lines(key, attempt, text, named))
        self._emit(stream, pending)

    @staticmethod
    def _emit(stream: str, pieces: list[str]) -> None:
        target = sys.stderr if stream == "stderr" else sys.stdout
        try:
            target.write("".join(pieces))
            target.flush()
        except Exception:
            logger.debug("zart: writing step output failed", exc_info=True)

    def _loop(self) -> None:
        execution = self._tracker.execution
        if self._opener is not None:
            try:
                self._update, self._finish = self._opener()
            except Exception:
                logger.debug("zart: progress view could not be displayed", exc_info=True)
        # The view was displayed with the first state: a run shorter than INTERVAL costs no update.
        last = time.monotonic()
        while not self._stop.is_set():
            self._wake.wait(INTERVAL / 2)
            self._wake.clear()
            self._write_lines()
            if execution.done or self._stop.is_set():
                break
            now = time.monotonic()
            if self._update is not None and now - last >= INTERVAL:
                last = now
                self._render(self._update)
        if self._background and not self._stop.is_set():
            self.close()

    def _render(self, view: View | None) -> None:
        if view is None:
            return
        try:
            view(self._tracker.snapshot())
        except Exception:  # a broken view must never break the workflow
            logger.debug("zart: progress view failed", exc_info=True)

    def close(self) -> None:
        """Stop updating, write the last lines and render the final state.

        Called again (``Execution.result()`` calls it from whichever cell waits), it renders the
        final state once more from the caller's context: a saved notebook (nbclient keeps only
        messages of the cell it runs) then holds the final widget state too."""
        me = threading.get_ident()
        with self._lock:
            first = not self._closed
            self._closed = True
            if first:
                self._stop.set()
                self._wake.set()
                if threading.current_thread() is not self._thread:
                    self._thread.join(5)
                sinks = self._tracker.execution.output_sinks
                if self._printed in sinks:
                    sinks.remove(self._printed)
                self._write_lines()
                self._tracker.close()
                explain_end(self._tracker.execution)
            elif me in self._rendered_by:
                return
            self._rendered_by.add(me)
            self._render(self._finish)
