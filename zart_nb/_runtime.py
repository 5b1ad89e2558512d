"""What a process shares between its executions, in one object (``runtime``): the executor (the warm
worker pool), the committer that makes outcomes durable, the open journals and the live executions.

The monitor endpoint lists this process's live executions and journals from here.
"""
from __future__ import annotations

import atexit
import importlib
import logging
import os
import sys
import threading
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import ConfigurationError, DefinitionError
from ._executors import choice
from ._executors.base import Executor, Outcome, OutcomeConsumer, OutcomeSink
from ._handles import journal_of
from ._heartbeat import Heartbeat
from ._journal import Journal, db
from ._journal import file as journal_file

if TYPE_CHECKING:
    from ._handles import Execution

logger = logging.getLogger("zart_nb")
PRESTART_GATE = 0.2

DEFAULT_JOURNAL = Path(".zart") / "journal.duckdb"


def default_journal_path() -> Path:
    """``$ZART_JOURNAL``; in a kernel that knows its notebook, ``.zart/<notebook stem>.duckdb`` beside
    the notebook (two notebooks of one folder never wait for each other); else ``./.zart/journal.duckdb``."""
    env = os.environ.get("ZART_JOURNAL")
    if env:
        return Path(env)
    notebook = notebook_path()
    if notebook is not None:
        return notebook.parent / ".zart" / f"{notebook.stem}.duckdb"
    return DEFAULT_JOURNAL


def notebook_path() -> Path | None:
    """The notebook this process is the kernel of, when the kernel knows it: ``__vsc_ipynb_file__``
    (VS Code) or ``$JPY_SESSION_NAME`` (Jupyter Server). None in scripts (a script started from a
    notebook inherits the variable, so it only counts inside a kernel)."""
    if "ipykernel" not in sys.modules:
        return None
    main = sys.modules.get("__main__")
    vscode = getattr(main, "__vsc_ipynb_file__", None)
    name = vscode if isinstance(vscode, str) and vscode else os.environ.get("JPY_SESSION_NAME")
    if not name or not name.endswith(".ipynb"):
        return None
    path = Path(name)
    if not path.is_absolute():  # Jupyter Server may give it relative to its root; the kernel runs beside it
        path = Path.cwd() / path.name
    return path


def default_worker_count() -> int:
    """``$ZART_WORKERS``, or the CPU count."""
    env = os.environ.get("ZART_WORKERS")
    if env:
        try:
            count = int(env)
        except ValueError:
            raise ConfigurationError(f"ZART_WORKERS must be a positive integer, got {env!r}") from None
        if count < 1:
            raise ConfigurationError(f"ZART_WORKERS must be a positive integer, got {env!r}")
        return count
    return os.cpu_count() or 2


def _plain_module_name(name: str) -> bool:
    """A dotted module name and nothing else (a worker names it: checked before it is imported)."""
    return 0 < len(name) <= 200 and all(part.isidentifier() for part in name.split("."))


class _Committer:
    """Takes outcomes off the executor's I/O thread and makes them durable in groups.

    The I/O thread only receives and dispatches; this thread appends and fsyncs whatever arrived
    during the previous fsync (group commit), then resolves the handles.
    """

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._cond = threading.Condition()
        self._outcomes: list[Outcome] = []
        self._thread: threading.Thread | None = None
        self._busy = False
        self._imports: list[str] = []

    def deliver(self, outcomes: list[Outcome]) -> None:
        executor = self._runtime.executor
        with self._cond:
            inline = (not self._busy and not self._outcomes and executor is not None
                      and not executor.has_queued)
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
                    if self._outcomes or self._imports:
                        self._cond.notify()
            return
        with self._cond:
            self._outcomes.extend(outcomes)
            self._start_locked()
            self._cond.notify()

    def prepare(self, modules: list[str]) -> None:
        """Import ``modules``, which outputs on their way from workers need (``WireImport``: numpy for an
        array), on this committer's thread, before those outputs arrive: a large output's loading then
        does not start with them. Here and not on a thread of its own: outcomes are loaded (unpickled)
        where they are committed, one commit at a time, and two threads importing numpy at once can
        fail one of them ("partially initialized module"). Never on the pool's I/O thread (imports
        take tens of ms); a module that cannot be imported here is left for the output's loading to
        report."""
        fresh = [name for name in modules if name not in sys.modules and _plain_module_name(name)]
        if not fresh:
            return
        with self._cond:
            self._imports.extend(fresh)
            self._start_locked()
            self._cond.notify()

    def _start_locked(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="zart-committer", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not (self._outcomes or self._imports) or self._busy:
                    self._cond.wait()
                batch, self._outcomes = self._outcomes, []
                imports, self._imports = self._imports, []
                self._busy = True
            try:
                for name in imports:
                    if name not in sys.modules:
                        try:
                            importlib.import_module(name)
                        except BaseException:  # noqa: BLE001 - the output's loading meets it and says so
                            pass
                if batch:
                    self._commit(batch)
            finally:
                # Not kept while this thread waits for the next batch: the last one's tasks hold their run
                # (its keys, its replayed steps), whose memory a notebook's kernel would otherwise keep.
                batch = []
                with self._cond:
                    self._busy = False
                    if self._outcomes or self._imports:
                        self._cond.notify()

    @staticmethod
    def _commit(batch: list[Outcome]) -> None:
        by_consumer: dict[OutcomeConsumer, list[Outcome]] = {}
        for outcome in batch:
            consumer = outcome.task.consumer
            assert consumer is not None
            by_consumer.setdefault(consumer, []).append(outcome)
        for consumer, outcomes in by_consumer.items():
            try:
                consumer.on_outcomes(outcomes)
            except Exception as exc:
                consumer.fail_outcomes(outcomes, exc)


class Runtime:
    """The process-wide state of zart_nb. There is one, ``runtime``; worker processes never use it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.executor: Executor | None = None
        # What builds the executor: the local pool unless a test installs another (the inline one).
        self.executor_factory: Callable[[int, OutcomeSink], Executor] | None = None
        self.committer = _Committer(self)
        self._open_runs = 0
        self._overlaps = 0  # runs opened while another was open (see ``overlapped``)
        self._warned_sizes: set[int] = set()
        self._live: dict[tuple[Hashable, str], Execution] = {}
        self._remote: dict[tuple[str, Any], Executor] = {}  # Dask executors, by address or client
        self._remote_lock = threading.Lock()  # held while connecting: not the runtime's lock
        self._serving: dict[object, Callable[[], None]] = {}  # journal identity -> stop its server
        self._serve_lock = threading.Lock()
        self._heartbeat = Heartbeat(self.live_executions, lambda: self._open_runs > 0)
        # The journals of this process, by resolved path and by (device, inode): see ``journal``.
        self._journals_lock = threading.Lock()
        self._by_path: dict[Path, Journal] = {}
        self._by_file: dict[tuple[int, int], Journal] = {}

    # --- the executor ------------------------------------------------------------------------

    def run_opened(self, workers: int | None = None) -> int:
        """A run started: the pool must not be restarted under it (see ``get_executor``). Returns the
        run's mark for ``overlapped``.

        When no other run is open and the idle pool has another size than ``workers`` asks for, it is
        stopped here, so the run's first dispatch starts one of the size asked for."""
        stale = None
        with self._lock:
            executor = self.executor
            if (self._open_runs == 0 and executor is not None and not executor.closed
                    and executor.size != (workers or default_worker_count()) and executor.idle):
                stale, self.executor = executor, None
            if self._open_runs:
                self._overlaps += 1
                mark = -1  # another run is open beside this one
            else:
                mark = self._overlaps
            self._open_runs += 1
        self._heartbeat.ensure_running()
        if stale is not None:
            stale.shutdown()
        return mark

    def overlapped(self, mark: int) -> bool:
        """Whether the run ``run_opened`` gave ``mark`` has had another run open beside it (each run
        opened while another is open counts one overlap: one counted since that run opened overlapped it)."""
        return mark < 0 or self._overlaps != mark

    def run_closed(self) -> None:
        with self._lock:
            self._open_runs -= 1

    def get_executor(self, workers: int | None = None, executor: choice.ExecutorSpec = None, *,
                     prestart: bool = False) -> Executor:
        """The executor for ``executor=`` (default ``$ZART_EXECUTOR``, else the local pool).

        The warm local pool is shared by every execution of this process. Asking for another size
        restarts it when it is idle; while other executions use it, it keeps its size (restarting
        would kill their steps) and says so. A Dask executor is kept per client or address."""
        where = choice.target(executor)
        if where is not None:
            return self._dask_executor(where)
        size = workers or default_worker_count()
        with self._lock:
            current = self.executor
            if current is not None and (current.closed or current.size != size):
                if current.closed or (self._open_runs == 0 and current.idle):
                    current.shutdown()
                    current = self.executor = None
                elif size not in self._warned_sizes:
                    self._warned_sizes.add(size)
                    logger.warning("zart: the worker pool is in use with %d workers; keeping that size "
                                   "instead of %d while executions run", current.size, size)
            if current is None:
                factory = self.executor_factory
                if factory is None:
                    from ._executors.local import LocalPool

                    # Started ahead of need (while a journal is read), a pool starts the workers that
                    # leave the driver a core; the rest start as attempts queue beyond the idle workers.
                    start = max(1, (os.cpu_count() or 2) - 1) if prestart else None
                    current = self.executor = LocalPool(size, self.committer.deliver, start=start,
                                                        prepare=self.committer.prepare,
                                                        umask=journal_file.umask_for_children)
                else:
                    current = self.executor = factory(size, self.committer.deliver)
            return current

    def prestart(self, workers: int | None = None, executor: choice.ExecutorSpec = None,
                 gate: threading.Event | None = None) -> threading.Thread | None:
        """Start the local pool on a thread of its own when this process has none, so its worker
        processes start up while the journal is opened and read. Returns that thread (else None).

        The thread waits for ``gate`` (up to ``PRESTART_GATE`` seconds): set as DuckDB starts opening
        the file, which releases the GIL for ~20 ms, it keeps the pool's imports and process starts
        from competing with the caller's own Python work."""
        if choice.target(executor) is not None or self.executor is not None:
            return None
        with self._lock:
            if self.executor is not None or self._open_runs:
                return None

        def start() -> None:
            if gate is not None:
                gate.wait(PRESTART_GATE)
            try:
                self.get_executor(workers, prestart=True)
            except Exception:  # noqa: BLE001 - the first dispatch meets the same error and reports it
                pass

        thread = threading.Thread(target=start, name="zart-pool-start", daemon=True)
        thread.start()
        return thread

    def stop_if_unused(self, started: threading.Thread) -> None:
        """Stop the pool ``prestart`` started if nothing used it: a completed execution returns its
        output without leaving worker processes behind."""
        started.join()
        with self._lock:
            executor = self.executor
            if executor is None or self._open_runs or not executor.idle:
                return
            self.executor = None
        executor.shutdown()

    def _dask_executor(self, where: str | Any) -> Executor:
        key = choice.cache_key(where)
        with self._remote_lock:
            executor = self._remote.get(key)
            if executor is None or not choice.usable(executor):
                if executor is not None:
                    executor.shutdown()
                executor = self._remote[key] = choice.dask_executor(where, self.committer.deliver)
            return executor

    def shutdown_executor(self) -> None:
        with self._lock:
            executor, self.executor = self.executor, None
        if executor is not None:
            executor.shutdown()

    def shutdown_remote_executors(self) -> None:
        """Stop the Dask executors (their attempts end cancelled; clients made from an address close)."""
        with self._remote_lock:
            executors = list(self._remote.values())
            self._remote.clear()
        for executor in executors:
            try:
                executor.shutdown()
            except Exception:
                logger.exception("zart: stopping a Dask executor failed")

    # --- live executions ---------------------------------------------------------------------

    def claim(self, journal: Journal, execution_id: str, make: type[Execution],
              fingerprint: tuple[str, str]) -> tuple[Execution, bool]:
        """Register a new execution of this id, or return the one already live: ``(execution, is_new)``."""
        key = (journal.identity, execution_id)
        with self._lock:
            current = self._live.get(key)
            if current is None or current.done:
                execution = make(execution_id, journal)
                execution.fingerprint = fingerprint
                self._live[key] = execution
                return execution, True
        return current, False

    def enter(self, execution: Execution) -> None:
        """``execution`` starts running here; refused if another object of its id is live."""
        key = (journal_of(execution).identity, execution.execution_id)
        with self._lock:
            current = self._live.get(key)
            if current is not None and current is not execution and not current.done:
                raise DefinitionError(f"execution {execution.execution_id!r} is already running in this "
                                      "process; wait for it (or cancel it) before starting it again")
            self._live[key] = execution

    def release(self, execution: Execution) -> None:
        """Forget a live execution (it finished, or was claimed and never ran)."""
        key = (journal_of(execution).identity, execution.execution_id)
        with self._lock:
            if self._live.get(key) is execution:
                del self._live[key]

    def live_execution(self, journal: Journal, execution_id: str) -> Execution | None:
        with self._lock:
            return self._live.get((journal.identity, execution_id))

    def live_executions(self) -> list[Execution]:
        """Every execution running in this process, on any journal."""
        with self._lock:
            return list(self._live.values())

    def has_live_executions(self) -> bool:
        return bool(self._live)

    # --- journals ----------------------------------------------------------------------------

    def journal(self, path: str | os.PathLike[str] | None = None, *, lock_timeout: float | None = None,
                grace: float | None = None) -> Journal:
        """The process's one :class:`Journal` of the file at ``path`` (default ``$ZART_JOURNAL`` or
        ``./.zart/journal.duckdb``), whatever path names it (a symlink, a hard link, ``..``).

        The front door of the registry: a journal is built whole under the registry's lock before
        anyone else can find it (a half-built one, found by a second thread, crashed the TUI).
        ``lock_timeout``/``grace`` given for a known journal change it."""
        given = Path(path or default_journal_path()).expanduser()
        resolved = given.resolve()
        found = journal_file.identity(resolved)
        with self._journals_lock:
            journal = None
            if found is not None:
                journal = self._by_file.get(found)
                if journal is not None and journal_file.identity(journal.path) != found:
                    # Its file was deleted or renamed, and this one may even reuse its inode: not the same.
                    del self._by_file[found]
                    journal = None
            if journal is None:
                journal = self._by_path.get(resolved)
            if journal is None and found is not None:  # created here since, under another of its names
                journal = next((j for j in self._by_path.values() if journal_file.identity(j.path) == found),
                               None)
            if journal is None:
                journal = Journal(given, lock_timeout=lock_timeout, grace=grace)
                self._by_path[resolved] = journal
            else:
                journal.configure(lock_timeout=lock_timeout, grace=grace)
            if found is not None:
                self._by_file.setdefault(found, journal)
            return journal

    def open_journals(self) -> list[Journal]:
        """Every journal this process has looked up (open or not)."""
        with self._journals_lock:
            return list(dict.fromkeys([*self._by_path.values(), *self._by_file.values()]))

    def forget_journal(self, journal: Journal) -> None:
        """Close ``journal`` and drop it from the registry (benchmarks and tests that remove its folder;
        the next lookup of its path builds a new one)."""
        journal.close()
        with self._journals_lock:
            for key in [key for key, value in self._by_path.items() if value is journal]:
                del self._by_path[key]
            for found in [key for key, value in self._by_file.items() if value is journal]:
                del self._by_file[found]

    def serve(self, journal: Journal, start: Callable[[Journal], Callable[[], None] | None]) -> None:
        """Serve the monitor endpoint of ``journal`` (held by this process's engine) until it is released.

        ``start`` (the engine passes the monitor's, so every process that runs executions serves, a
        ``zart resume`` as a kernel) starts a server and returns its stop function; a failure to serve
        is logged there, never raised into a run. ``$ZART_MONITOR=0`` turns it off."""
        if os.environ.get("ZART_MONITOR", "1") == "0":
            return
        with self._serve_lock:
            if journal.identity in self._serving:
                return
            stop = start(journal)
            if stop is None:
                return
            self._serving[journal.identity] = stop

        def released() -> None:
            with self._serve_lock:
                self._serving.pop(journal.identity, None)
            stop()

        journal.on_release(released)

    def close_all(self) -> None:
        self.shutdown_executor()
        self.shutdown_remote_executors()
        for journal in self.open_journals():
            try:
                journal.close()
            except Exception:
                logger.exception("zart: closing %s failed", journal.path)


runtime = Runtime()
atexit.register(runtime.close_all)


def _close_before_duckdb_exits() -> None:
    # DuckDB registers exit handlers as it is imported, after ours, and atexit runs the last first:
    # those handlers interrupted a fold still running on the journal writer's thread (seen ~1 process
    # exit in 150). Registered again once DuckDB is in, journals are folded and closed before them.
    atexit.unregister(runtime.close_all)
    atexit.register(runtime.close_all)


db.on_load(_close_before_duckdb_exits)


def shutdown_pool() -> None:
    """Stop the worker processes (they are started again on the next dispatch)."""
    runtime.shutdown_executor()
