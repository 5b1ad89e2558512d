"""The heartbeat: while runs are open, this process journals every ``INTERVAL`` seconds that it is alive.

Each beat sets the open runs' ``alive_at`` and counts, and lists the attempts they are running. When
the process dies (SIGKILL, a kernel death), the next process to open the journal ends those runs at
their last beat (or their last journaled step, if later) with ``process died``, so a dead run's
duration is fixed, and lists the attempts of the last beat as ``interrupted``. A beat is one small
transaction on the run-control connection, off the hot path: a run shorter than ``INTERVAL`` writes
none, so P1/P2 pay only for starting this thread once per process.
"""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._handles import journal_of, run_of

if TYPE_CHECKING:
    from ._handles import Execution
    from ._journal import Journal, RunBeat

logger = logging.getLogger("zart_nb")

INTERVAL = 2.0  # seconds ($ZART_HEARTBEAT): a dead run's end time is at most this early


def interval_from_env() -> float:
    try:
        value = float(os.environ.get("ZART_HEARTBEAT", INTERVAL))
    except ValueError:
        return INTERVAL
    return value if value > 0 else INTERVAL


class Heartbeat:
    """Beats while ``active()`` says runs are open; started again by :meth:`ensure_running`."""

    def __init__(self, live: Callable[[], list[Execution]], active: Callable[[], bool],
                 interval: float | None = None) -> None:
        self._live = live
        self._active = active
        self.interval = interval_from_env() if interval is None else interval
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()

    def ensure_running(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._loop, name="zart-heartbeat", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            with self._lock:
                if not self._active():
                    self._thread = None
                    return
            self.beat()

    def beat(self) -> None:
        """Journal one beat now for every open run of this process."""
        by_journal: dict[int, tuple[Journal, list[RunBeat]]] = {}
        for execution in self._live():
            run = run_of(execution)
            if run is None or execution.done:
                continue
            journal = journal_of(execution)
            entry = by_journal.setdefault(id(journal), (journal, []))
            entry[1].append(run.beat())
        for journal, beats in by_journal.values():
            try:
                journal.heartbeat(beats)
            except Exception as exc:  # a missed beat only makes a dead run's end time earlier
                logger.debug("zart: heartbeat of %s failed: %s", journal.path, exc)
