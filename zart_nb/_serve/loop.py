"""``zart serve``: a long-running process that continues the due work of one or more journals.

Who holds the journal: serve holds a journal only around due work: for a moment to ask its sources what
is due (``poll``), and while an execution it started runs (the engine holds the file then, and serves
the monitor endpoint). It never waits for a journal another process holds: it asks again a second later
(``BUSY_RETRY``), so a notebook's run goes first and its due work starts once the notebook has released
the file. A run of another process that needs the journal while serve runs executions on it asks serve,
through the monitor endpoint, to hand it over (``_handover``): serve's executions stop at their next
durable call (steps in flight finish first) and are journaled sleeping, due at once; serve lets the file
go, leaves it to the asker, and continues them (``Wakeups``) once the file is free again.

Due work comes from *sources* (:class:`Source`: when is the next due, take what is due now), asked in
turn with the journal held: executions whose last run ended because their process died (or a stopping
serve interrupted it), continued once as serve starts (:class:`Recoveries`), recurring schedules
(:class:`Ticks`), and suspended executions whose time came (``wakeups.Wakeups``).
"""
from __future__ import annotations

import functools
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .. import _serialization as ser
from .._definitions import as_workflow
from .._errors import ConfigurationError, DefinitionNotFound, JournalLocked, ZartError
from .._handover import desk
from .._journal import schedules as sql
from .._runtime import runtime
from .._status import ExecutionStatus, RunTrigger
from . import recurring
from .wakeups import Wakeups
from .work import DueWork, Source

if TYPE_CHECKING:
    from .._handles import Execution
    from .._journal import Journal

logger = logging.getLogger("zart_nb")

POLL = 5.0  # seconds between two looks at a journal with nothing due sooner (new schedules, events)
BUSY_RETRY = 1.0  # another process holds the journal: look again this much later
RUN_START_WAIT = 30.0  # a started execution's run has begun (or failed to) within this
STOP_WAIT = 30.0  # stopping: how long interrupted executions get to record their end


# --- running an execution from the journal ------------------------------------------------------------


def _wait_begun(execution: Execution) -> Execution:
    """Wait until ``execution``'s run has begun (the engine holds the journal then) or it is done."""
    deadline = time.monotonic() + RUN_START_WAIT
    while execution.run_number is None and not execution.done and time.monotonic() < deadline:
        time.sleep(0.01)
    return execution


def continue_execution(journal: Journal, execution_id: str,
                       trigger: RunTrigger = RunTrigger.RECOVER) -> Execution:
    """The next run of a journaled execution from its journaled definition, in the background (what
    ``zart resume`` does, through ``_actions``); returns once its run has begun."""
    from .._actions import prepare_resume, start_here
    from .._engine import execute

    return start_here(journal, prepare_resume(journal, execution_id, trigger=trigger), execute)


def start_journaled(journal: Journal, workflow: str, data: Any, execution_id: str, *,
                    def_id: str | None = None) -> Execution:
    """Start ``execution_id`` of the journaled workflow ``workflow`` (definition ``def_id``, else its latest)
    with ``data``, in the background; returns once its run has begun. ``DefinitionNotFound`` when the
    journal has no such workflow."""
    from .._api import start

    found = journal.query(sql.pickled_workflow, workflow, def_id)
    if found is None:
        raise DefinitionNotFound(f"the journal {journal.path} holds no workflow named {workflow!r}"
                                 + (f" of definition {def_id!r}" if def_id else ""))
    definition = as_workflow(ser.loads(found[1]), workflow)
    execution = start(definition, data, execution_id=execution_id, journal=journal.path, display=False)
    return _wait_begun(execution)


# --- sources -------------------------------------------------------------------------------------------


class Recoveries:
    """Executions whose last run ended because their process died (or a stopping ``zart serve`` interrupted
    it): continued once, as serve starts. Those their user interrupted (Ctrl-C) are left alone."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self._done = False

    def next_due(self, now: float) -> tuple[float, str] | None:
        return None if self._done else (now, "recover interrupted executions")

    def take_due(self, now: float) -> list[DueWork]:
        self._done = True
        journal = self._journal
        return [DueWork(f"resume {execution_id}", functools.partial(continue_execution, journal, execution_id))
                for execution_id in journal.query(sql.resumable_at_start)]


class Ticks:
    """Recurring schedules: one execution per tick (see ``recurring``), with their overlap rule."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    def next_due(self, now: float) -> tuple[float, str] | None:
        upcoming = [(recurring.next_tick(row.cron, row.every, row.tz, row.last_tick), row)
                    for row in self._journal.query(sql.schedule_rows) if not row.paused]
        if not upcoming:
            return None
        when, row = min(upcoming, key=lambda pair: pair[0])
        return when, recurring.tick_execution_id(row.workflow, when, row.tz)

    def take_due(self, now: float) -> list[DueWork]:
        work = []
        for row in self._journal.query(sql.schedule_rows):
            tick = None if row.paused else recurring.due_tick(row.cron, row.every, row.tz, row.last_tick, now)
            if tick is None:
                continue
            try:
                work += self._tick(row, tick)
            except Exception as exc:  # its data cannot be loaded here, say: this tick is lost, not the others
                logger.error("zart serve: the tick %s of %r is skipped: %s: %s",
                             recurring.tick_execution_id(row.workflow, tick, row.tz), row.workflow,
                             type(exc).__name__, exc)
                self._journal.transact(sql.advance, row.workflow, tick, None)
        return work

    def _tick(self, row: sql.ScheduleRow, tick: float) -> list[DueWork]:
        journal = self._journal
        execution_id = recurring.tick_execution_id(row.workflow, tick, row.tz)
        previous = row.last_execution
        if previous is not None and _running(journal, previous):
            if row.overlap == "skip":
                logger.info("zart serve: %s skipped: %s still runs", execution_id, previous)
                journal.transact(sql.advance, row.workflow, tick, None)
                return []
            if row.overlap == "cancel":
                _cancel(journal, previous, f"zart serve (pid {os.getpid()}): tick {execution_id}")
        if journal.execution_status(execution_id) is not None:  # started already (serve died just after)
            journal.transact(sql.advance, row.workflow, tick, execution_id)
            return []
        blob = journal.query(sql.pickled_schedule_data, row.workflow)
        data = None if blob is None else ser.loads(blob)
        journal.transact(sql.advance, row.workflow, tick, execution_id)

        def start() -> Execution:
            return start_journaled(journal, row.workflow, data, execution_id, def_id=row.def_id)

        return [DueWork(execution_id, start)]


def _running(journal: Journal, execution_id: str) -> bool:
    live = runtime.live_execution(journal, execution_id)
    if live is not None and not live.done:
        return True
    return journal.execution_status(execution_id) in (ExecutionStatus.RUNNING, ExecutionStatus.PENDING)


def _cancel(journal: Journal, execution_id: str, origin: str) -> None:
    from .._control import cancel_here

    try:
        cancel_here(journal, execution_id, origin)
    except ZartError as exc:
        logger.warning("zart serve: cannot cancel %s: %s", execution_id, exc)


def sources_of(journal: Journal) -> list[Source]:
    """The sources of due work of one journal: interrupted executions, recurring ticks, and suspended
    executions whose time came (``wakeups``)."""
    return [Recoveries(journal), Ticks(journal), Wakeups(journal)]


# --- the loop ------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Served:
    journal: Journal
    sources: list[Source]
    next_look: float = 0.0
    next_due: tuple[float, str] | None = None
    busy: str | None = None  # who holds the journal, when the last look found it held


class Serve:
    """The serve loop over ``paths``' journals (see the module docstring). ``run()`` returns once
    :meth:`stop` was called (SIGTERM and Ctrl-C call it), after interrupting what it runs so that the
    next ``zart serve`` continues it."""

    def __init__(self, paths: Sequence[str | os.PathLike[str]], *, poll: float = POLL,
                 out: TextIO | None = None, discover: Callable[[], Sequence[Path]] | None = None) -> None:
        if not paths and discover is None:
            raise ConfigurationError("zart serve needs at least one journal")
        if not (poll > 0):
            raise ConfigurationError(f"poll must be a number of seconds > 0, got {poll!r}")
        self.poll = poll
        # grace 0: a journal is released the moment its due work ends; lock_timeout 0: never wait for it
        self.served = [_Served(journal, sources_of(journal)) for journal in
                       dict.fromkeys(runtime.journal(path, lock_timeout=0.0, grace=0.0) for path in paths)]
        self._out = out if out is not None else sys.stderr
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._running: list[tuple[Journal, Execution]] = []
        self._lock = threading.Lock()
        self._last_status = ""
        self._on_stop: list[Callable[[], None]] = []
        self._discover = discover  # the folder's journals, looked up again every poll (new notebooks)
        self._discovered_at = time.monotonic()
        desk.accept()  # a run of another process that needs a journal served here is handed it (``_handover``)

    def rediscover(self) -> None:
        """Serve the journals that appeared in the folder since the last look (every ``poll`` seconds)."""
        if self._discover is None or time.monotonic() - self._discovered_at < self.poll:
            return
        self._discovered_at = time.monotonic()
        known = {served.journal for served in self.served}
        for path in self._discover():
            journal = runtime.journal(path, lock_timeout=0.0, grace=0.0)
            if journal not in known:
                known.add(journal)
                self.served.append(_Served(journal, sources_of(journal)))

    @property
    def journals(self) -> list[Journal]:
        return [served.journal for served in self.served]

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` as serve stops, before it interrupts what runs (the HTTP API stops there)."""
        self._on_stop.append(callback)

    def running(self) -> list[Execution]:
        with self._lock:
            self._running = [(j, e) for j, e in self._running if not e.done]
            return [e for _, e in self._running if e.suspension is None]  # a suspended one runs nowhere

    def track(self, journal: Journal, execution: Execution | None) -> None:
        """An execution started in this process for ``journal`` (by a source or over HTTP)."""
        if execution is not None:
            with self._lock:
                self._running.append((journal, execution))

    # --- one look --------------------------------------------------------------------------------

    def look(self, served: _Served, now: float) -> None:
        """Take and start what is due in one journal, holding it meanwhile; note its next due work."""
        journal = served.journal
        asker = desk.blocked(journal)
        if asker is not None:  # handed over (or being handed over) to another process's run: it goes first
            served.busy = None if desk.asker(journal) is not None else f"process {asker} (handed over to it)"
            served.next_look = now + BUSY_RETRY
            return
        try:
            with journal.hold():
                served.busy = None
                for source in served.sources:
                    due = source.next_due(now)
                    if due is not None and due[0] <= now:
                        try:
                            taken = source.take_due(now)
                        except Exception as exc:  # one source failing must not stop the others, nor serve
                            if isinstance(exc, JournalLocked):
                                raise
                            logger.error("zart serve: %s of %s failed: %s: %s", type(source).__name__,
                                         journal.path, type(exc).__name__, exc)
                            continue
                        for work in taken:
                            self._start(journal, work)
                upcoming = [due for source in served.sources if (due := source.next_due(time.time())) is not None]
        except JournalLocked as exc:
            served.busy = exc.owner
            served.next_look = now + BUSY_RETRY
            return
        except Exception as exc:  # a journal serve cannot use now (say it), never the end of serve
            logger.error("zart serve: %s: %s", journal.path,
                         exc if isinstance(exc, ZartError) else f"{type(exc).__name__}: {exc}")
            served.next_look = now + self.poll
            return
        served.next_due = min(upcoming, default=None)
        served.next_look = min(now + self.poll, max(now, served.next_due[0]) if served.next_due else math.inf)

    def _start(self, journal: Journal, work: DueWork) -> None:
        try:
            execution = work.start()
        except Exception as exc:  # one bad piece of work must not stop the others
            logger.error("zart serve: %s could not start: %s", work.what, exc)
            return
        self.track(journal, execution)

    # --- status line -----------------------------------------------------------------------------

    def status(self) -> str:
        """One line: what it runs, what is due next (and which journal another process holds)."""
        running = [e.execution_id for e in self.running()]
        parts = [f"zart serve: {len(self.served)} journal{'s' if len(self.served) != 1 else ''}",
                 f"running {len(running)}" + (f" ({', '.join(running[:3])}{', ...' if len(running) > 3 else ''})"
                                              if running else "")]
        due = [served.next_due for served in self.served if served.next_due is not None]
        if due:
            when, what = min(due)
            parts.append(f"next: {what} at {datetime.fromtimestamp(when).astimezone().isoformat(timespec='seconds')}")
        else:
            parts.append("nothing due")
        handing = [f"{served.journal.path.name} to pid {asker}" for served in self.served
                   if (asker := desk.asker(served.journal)) is not None]
        if handing:
            parts.append("handing over: " + "; ".join(handing) + " (running steps finish first)")
        busy = [f"{served.journal.path.name} held by {served.busy}" for served in self.served if served.busy]
        if busy:
            parts.append("waiting: " + "; ".join(busy))
        return " | ".join(parts)

    def _show_status(self) -> None:
        line = self.status()
        if line != self._last_status:
            self._last_status = line
            if self._out.isatty():
                self._out.write("\r\x1b[2K" + line)
            else:
                self._out.write(line + "\n")
            self._out.flush()

    # --- the loop --------------------------------------------------------------------------------

    def run(self) -> None:
        """Serve until :meth:`stop`; then interrupt what runs here (the next serve continues it)."""
        try:
            while not self._stop.is_set():
                self.rediscover()
                now = time.time()
                for served in self.served:
                    if served.next_look <= now and not self._stop.is_set():
                        self.look(served, now)
                self._show_status()
                wake_at = min((served.next_look for served in self.served), default=time.time() + self.poll)
                # while something runs, the status line follows it every second
                limit = min(self.poll, 1.0) if self.running() else self.poll
                self._wake.wait(max(0.0, min(wake_at - time.time(), limit)))
                self._wake.clear()
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        desk.accept(False)
        for callback in self._on_stop:
            try:
                callback()
            except Exception:
                logger.exception("zart serve: stopping failed")
        running = self.running()
        with self._lock:
            tracked = list(self._running)
        for execution in running:
            execution.interrupt()
        deadline = time.monotonic() + STOP_WAIT
        for execution in running:
            execution.wait_done(max(0.0, deadline - time.monotonic()))
        detail = f"{sql.STOPPED_BY_SERVE} (pid {os.getpid()}); the next zart serve continues it"
        for journal, execution in tracked:
            if execution in running and execution.status is ExecutionStatus.INTERRUPTED \
                    and execution.run_number is not None:
                try:
                    journal.transact(sql.mark_stopped_by_serve, execution.execution_id, execution.run_number,
                                     detail)
                except ZartError as exc:
                    logger.error("zart serve: %s", exc)
        for journal in self.journals:
            journal.close()
        if self._out.isatty():
            self._out.write("\n")
        self._out.write(f"zart serve: stopped ({len(running)} running execution"
                        f"{'s' if len(running) != 1 else ''} interrupted, to continue at the next start)\n")
        self._out.flush()


def install_signals(serve: Serve) -> None:
    """SIGTERM and Ctrl-C (SIGINT) stop ``serve`` cleanly (main thread only)."""
    def handler(signum: int, frame: object) -> None:
        serve.stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def folder_paths(given: Sequence[str] | None) -> list[Path]:
    """``--journal`` paths, else ``$ZART_JOURNAL``, else every journal of ``./.zart/`` (as ``zart ls``)."""
    from .. import _discovery as discovery

    if given:
        missing = [path for path in given if not Path(path).exists()]
        if missing:
            raise ConfigurationError(f"no journal at {', '.join(missing)} (zart serve serves journals a run "
                                     "has made; it does not create one)")
        return [Path(path) for path in given]
    env = os.environ.get("ZART_JOURNAL")
    if env:
        return [Path(env)]
    _, paths = discovery.folder_journals()
    return list(paths)
