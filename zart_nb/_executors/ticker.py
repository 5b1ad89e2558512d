"""Unfinished lines of steps that run on threads: passed on after ``capture.PARTIAL_SECONDS``, as the
local pool's workers do.

A local pool worker's descriptor thread (``fdcapture``) ticks the capture of its one running step. A
process that runs steps on threads (the inline executor's driver, a Dask worker) has no such thread:
the runner adds each step's capture here while it runs, and one daemon thread of the process ticks them
every ``INTERVAL`` seconds while any is registered (it waits, without waking, while none is). So a step
killed or cancelled mid-line (``print("waiting for the server...", end="")``, a progress bar) keeps
that line in the output journaled from what the driver received, on every executor.
"""
from __future__ import annotations

import logging
import os
import threading
import time

from .capture import Capture

INTERVAL = 0.1  # seconds between two ticks while a step runs (as fdcapture's POLL_SECONDS)


class _Ticker:
    """The process's ticking thread and the captures it ticks (started at the first ``add``)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._captures: dict[int, Capture] = {}  # by id: Capture has slots and no __hash__ of note
        self._started = False

    def add(self, capture: Capture) -> None:
        with self._cond:
            first = not self._captures
            self._captures[id(capture)] = capture
            if not self._started:
                self._started = True
                threading.Thread(target=self._run, name="zart-ticker", daemon=True).start()
            elif first:
                self._cond.notify()

    def discard(self, capture: Capture) -> None:
        with self._cond:
            self._captures.pop(id(capture), None)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._captures:
                    self._cond.wait()
                captures = list(self._captures.values())
            now = time.monotonic()
            for capture in captures:
                try:
                    capture.tick(now)
                except Exception:  # a sink's failure loses a line shown live, never the thread
                    logging.getLogger("zart_nb").debug("zart: an unfinished line was not passed on",
                                                       exc_info=True)
            with self._cond:
                self._cond.wait(INTERVAL)


_ticker = _Ticker()


def _after_fork() -> None:  # a child has none of the parent's threads, and maybe a held lock
    global _ticker
    _ticker = _Ticker()


os.register_at_fork(after_in_child=_after_fork)


def add(capture: Capture) -> None:
    """Tick ``capture`` (a running step's, with a sink) until :func:`discard`."""
    _ticker.add(capture)


def discard(capture: Capture) -> None:
    """Stop ticking ``capture`` (its step ended; ``Capture.close`` passes on what is left)."""
    _ticker.discard(capture)
