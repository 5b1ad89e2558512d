"""What a process shares between its executions: the warm worker pool, the committer that makes
outcomes durable, and one Journal per file."""
from __future__ import annotations

import atexit
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from ._executors import Outcome
from ._journal import Journal
from ._pool import LocalPool, default_worker_count

if TYPE_CHECKING:
    from ._engine import Run

DEFAULT_JOURNAL = Path(".zart") / "journal.duckdb"


def default_journal_path() -> Path:
    return Path(os.environ.get("ZART_JOURNAL") or DEFAULT_JOURNAL)


# --- the process-wide worker pool ---------------------------------------------------------------

_pool_lock = threading.Lock()
_pool: LocalPool | None = None


class _Committer:
    """Takes outcomes off the pool's I/O thread and makes them durable in groups.

    The I/O thread only receives and dispatches; this thread appends and fsyncs whatever arrived
    during the previous fsync (group commit), then resolves the handles.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._outcomes: list[Outcome] = []
        self._thread: threading.Thread | None = None
        self._busy = False

    def deliver(self, outcomes: list[Outcome]) -> None:
        pool = _pool
        with self._cond:
            inline = not self._busy and not self._outcomes and pool is not None and not pool.has_queued
            if inline:
                self._busy = True
        if inline:
            # Nothing waits to be dispatched: commit on the calling thread and save a thread hop
            # (this is the sequential path: one step at a time).
            try:
                self._commit(outcomes)
            finally:
                with self._cond:
                    self._busy = False
                    if self._outcomes:
                        self._cond.notify()
            return
        with self._cond:
            self._outcomes.extend(outcomes)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="zart-committer", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._outcomes or self._busy:
                    self._cond.wait()
                batch, self._outcomes = self._outcomes, []
                self._busy = True
            try:
                self._commit(batch)
            finally:
                with self._cond:
                    self._busy = False

    @staticmethod
    def _commit(batch: list[Outcome]) -> None:
        by_run: dict[Run, list[Outcome]] = {}
        for outcome in batch:
            by_run.setdefault(outcome.task.owner.run, []).append(outcome)  # type: ignore[attr-defined]
        for run, outcomes in by_run.items():
            try:
                run.on_outcomes(outcomes)
            except Exception as exc:
                run.fail_outcomes(outcomes, exc)


_committer = _Committer()
_deliver = _committer.deliver


_open_runs = 0
_warned_sizes: set[int] = set()


def run_opened() -> None:
    """A run started: the pool must not be restarted under it (see ``get_pool``)."""
    global _open_runs
    with _pool_lock:
        _open_runs += 1


def run_closed() -> None:
    global _open_runs
    with _pool_lock:
        _open_runs -= 1


def get_pool(workers: int | None = None) -> LocalPool:
    """The warm pool shared by every execution of this process.

    Asking for another size restarts it when it is idle; while other executions use it, it keeps
    its size (restarting would kill their steps) and says so."""
    global _pool
    size = workers or default_worker_count()
    with _pool_lock:
        if _pool is not None and _pool.size != size:
            if _open_runs == 0 and _pool.idle:
                _pool.shutdown()
                _pool = None
            elif size not in _warned_sizes:
                _warned_sizes.add(size)
                print(f"zart: the worker pool is in use with {_pool.size} workers; keeping that size "
                      f"instead of {size} while executions run", file=sys.stderr)
        if _pool is None:
            _pool = LocalPool(size, _deliver)
        return _pool


def shutdown_pool() -> None:
    """Stop the worker processes (they are restarted on the next dispatch)."""
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool.shutdown()
            _pool = None


def _close_all() -> None:
    shutdown_pool()
    with Journal._instances_lock:
        journals = list(Journal._instances.values())
    for journal in journals:
        try:
            journal.close()
        except Exception:
            pass


atexit.register(_close_all)


# --- journals by path --------------------------------------------------------------------------


def get_journal(path: str | os.PathLike[str] | None = None) -> Journal:
    """The process's one :class:`Journal` for ``path`` (default ``$ZART_JOURNAL`` or
    ``./.zart/journal.duckdb``). Use it to read executions and steps (``list_executions``, ...)."""
    return Journal(path or default_journal_path())
