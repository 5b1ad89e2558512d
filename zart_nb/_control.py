"""Control of executions for the CLI, the monitor and the TUI: cancel and delete (the actions that start
a run, resume, retry, restart, rerun and fork, are in ``_actions``).

``cancel``/``delete`` go through the live engine's monitor endpoint when another process holds the
journal (so a cancel really stops that engine's steps), and act on the file in this process otherwise.
:class:`EngineControl` is what the monitor server of an engine does on request: it answers a cancel as
soon as the cancel is requested (``"cancelling"``), and whoever asked polls the status to see it end,
so the server never waits for an execution to stop. The engine starts that server (``start_monitor``)
as a run begins: this module never imports the engine.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from . import _stores as stores
from ._errors import Cancelled, ConfigurationError, DefinitionError, ExecutionNotFound, MonitorError, ZartError
from ._handles import journal_of, run_of
from ._journal import Journal
from ._monitor.control import Control
from ._runtime import runtime
from ._status import ExecutionStatus

if TYPE_CHECKING:
    from ._monitor.client import MonitorClient
    from ._progress import RunProgress
    from ._reader import JournalReader
    from ._records import ExecutionRecord

_T = TypeVar("_T")
logger = logging.getLogger("zart_nb")

CANCEL_WAIT = 30.0
MONITOR_LISTED = 200  # running steps a monitor's progress lists (a pool rarely has more workers)
CANCELLING = "cancelling"  # the monitor's reply to a cancel of a live execution: requested, not yet done
MAX_ORIGIN = 200
_POLL = 0.05

def origin_here(program: str) -> str:
    """How a cancel made by ``program`` in this process names where it came from."""
    return f"{program} (pid {os.getpid()})"


def cancel_here(journal: Journal, execution_id: str, origin: str | None = None) -> ExecutionStatus:
    """Cancel in this process: stop the live execution (its steps' workers killed and the status
    journaled as ``cancelled``; waits up to ``CANCEL_WAIT`` for that) or mark an unfinished journaled one
    cancelled. Returns the status it had. ``origin``: who asked (shown where it runs)."""
    live = runtime.live_execution(journal, execution_id)
    if live is not None and not live.done:
        was = live.status
        live.cancel(origin=origin)
        try:
            live.result(timeout=CANCEL_WAIT)
        except (ZartError, Cancelled, Exception):
            pass
        return was
    return _cancel_journaled(journal, execution_id)


def request_cancel(journal: Journal, execution_id: str, origin: str | None = None) -> dict[str, str]:
    """Cancel without waiting: a live execution is stopped on a thread of its own (its body may take a
    while to notice) and ``status`` is ``"cancelling"``; otherwise as :func:`cancel_here`, with the
    status it has now. ``was``: the status it had; ``origin``: who asked (another process's words,
    cut to ``MAX_ORIGIN`` characters)."""
    live = runtime.live_execution(journal, execution_id)
    if live is not None and not live.done:
        was = live.status
        said = None if origin is None else origin[:MAX_ORIGIN]
        threading.Thread(target=live.cancel, kwargs={"origin": said}, name=f"zart-cancel-{execution_id}",
                         daemon=True).start()
        return {"was": was.value, "status": CANCELLING}
    was = _cancel_journaled(journal, execution_id)
    return {"was": was.value, "status": (was if was.finished else ExecutionStatus.CANCELLED).value}


def _cancel_journaled(journal: Journal, execution_id: str) -> ExecutionStatus:
    from ._messages import owner_to_ping, ping

    status = journal.execution_status(execution_id)
    if status is None:
        raise ExecutionNotFound(execution_id, journal.path)
    if not status.finished:
        owner = owner_to_ping(journal, execution_id)  # suspended by a live process: it ends at once, not on its look
        journal.set_status(execution_id, ExecutionStatus.CANCELLED)
        if owner is not None:
            ping(journal, owner)
        _cancel_children(journal, execution_id)
    return status


def _cancel_children(journal: Journal, parent_id: str) -> None:
    """The unfinished children of a journaled execution cancelled with it (a live one is stopped)."""
    from ._journal import queries

    for child in journal.query(queries.list_executions, parent=parent_id, limit=1_000_000):
        if child.status.finished:
            continue
        live = runtime.live_execution(journal, child.execution_id)
        if live is not None and not live.done:
            live.cancel(origin=f"its parent execution {parent_id!r}")
        else:
            _cancel_journaled(journal, child.execution_id)


def delete_here(journal: Journal, execution_id: str) -> None:
    """Delete a finished (or interrupted, sleeping, waiting) execution from the journal, with the files of
    its value store only it pointed to (``_stores.delete``); a running one is refused. One suspended in
    this process is no longer continued here."""
    live = runtime.live_execution(journal, execution_id)
    if live is not None and live.suspension is not None:
        live.cancel(origin="its deletion")
        live.wait_done(CANCEL_WAIT)  # (it may be handing itself to its continuer this moment)
        live = None
    status = journal.execution_status(execution_id)
    if status is None:
        raise ExecutionNotFound(execution_id, journal.path)
    if (live is not None and not live.done) or status in (ExecutionStatus.RUNNING, ExecutionStatus.PENDING):
        raise DefinitionError(f"execution {execution_id!r} is {status.value}; cancel it before deleting it")
    from ._messages import owner_to_ping, ping

    owner = owner_to_ping(journal, execution_id)  # suspended by another live process: told after the commit
    stores.delete(journal, execution_id)  # and the files of its value store only it pointed to
    if owner is not None:
        ping(journal, owner)


class EngineControl(Control):
    """The monitor server's cancel, delete and live reads, run in the engine's process; the actions that
    start runs (resume, retry, restart, ...) are ``_actions.ActionControl``'s."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    def cancel(self, execution_id: str, origin: str | None = None) -> dict[str, Any]:
        return request_cancel(self._journal, execution_id, origin)

    def delete(self, execution_id: str) -> dict[str, Any]:
        delete_here(self._journal, execution_id)
        return {"deleted": True}

    def garbage_collect(self, *, keep: int | None, older_than: float | None, workflow: str | None,
                        dry_run: bool, min_age: float | None) -> dict[str, Any]:
        from . import _retention as retention
        from . import _values as values

        keep, seconds, workflow, age = retention.check_rule(
            keep, older_than, workflow, values.MIN_AGE if min_age is None else min_age)
        return retention.collect_here(self._journal, keep=keep, older_than=seconds, workflow=workflow,
                                      dry_run=dry_run, min_age=age).to_json()

    def progress(self, execution_id: str) -> RunProgress | None:
        live = runtime.live_execution(self._journal, execution_id)
        run = None if live is None or live.done else run_of(live)
        return None if run is None else run.progress(listed=MONITOR_LISTED)

    def live_output(self, execution_id: str, step_key: str) -> tuple[int, str] | None:
        live = runtime.live_execution(self._journal, execution_id)
        run = None if live is None or live.done else run_of(live)
        return None if run is None else run.output_so_far(step_key)

    def send_event(self, execution_id: str, name: str, payload: str, idempotency_key: str | None,
                   sender: str | None) -> bool:
        from ._messages import deliver

        return deliver(self._journal, execution_id, name, payload, idempotency_key, sender)

    def wake(self, execution_id: str) -> bool:
        from ._messages import wake_here

        return wake_here(self._journal, execution_id)

    def published(self, execution_id: str, key: str, after: int) -> list[tuple[int, str]]:
        from ._journal import inbox

        return self._read(inbox.published_values, execution_id, key, after)

    def pending_events(self, execution_id: str) -> list[tuple[int, str, str, float, str | None]]:
        from ._journal import inbox

        return [tuple(event) for event in self._read(inbox.pending_events, execution_id)]  # type: ignore[misc]

    def _read(self, read: Callable[..., _T], *args: Any) -> _T:
        """``read(cursor, *args)`` on the journal this engine holds, as the monitor's other reads (``lend``):
        never opening it. Through ``Journal.query`` a request that came as the engine let the file go
        opened it again, on a monitor thread, and a process exiting then aborted inside DuckDB."""
        journal = self._journal
        journal.fold_pending()  # what was published a moment ago is read
        with journal.borrow() as cursor:
            if cursor is None:
                raise MonitorError(f"the engine is releasing {journal.path}; read the file instead")
            return read(cursor, *args)

    def handover(self, pid: int) -> dict[str, Any]:
        """``zart serve`` hands the journal over to process ``pid`` (``_handover``); other engines refuse."""
        from ._handover import desk

        return desk.request(self._journal, pid)


@overload
def cancel(execution_id: str, *, journal: str | os.PathLike[str] | None = None) -> ExecutionStatus: ...
@overload
def cancel(execution_id: list[str] | tuple[str, ...], *,
           journal: str | os.PathLike[str] | None = None) -> list[ControlOutcome]: ...
def cancel(execution_id: str | list[str] | tuple[str, ...], *,
           journal: str | os.PathLike[str] | None = None) -> ExecutionStatus | list[ControlOutcome]:
    """Cancel an execution; returns the status it had. Given a list of ids, cancels each and returns a
    :class:`ControlOutcome` per id, in order: an id that is unknown (or refused) is reported there,
    with its error, and the others are cancelled all the same.

    When another process's engine runs it, the request goes through that engine's monitor endpoint: its
    steps' workers are killed and it ends ``cancelled`` (this waits up to 30 s for that, polling its
    status); a notebook cell running it ends with one line naming this process. Otherwise an
    unfinished journaled execution is marked cancelled (a finished one is left as it is). Given a list of
    ids, cancels each and returns a :class:`ControlOutcome` per id, in order."""
    if isinstance(execution_id, str):
        return cancel_and_wait(execution_id, journal=journal, origin=origin_here("zart.cancel()"))[0]
    return _cancel_many(_ids(execution_id), journal)


def cancel_and_wait(execution_id: str, *, journal: str | os.PathLike[str] | None = None,
                    timeout: float = CANCEL_WAIT,
                    origin: str | None = None) -> tuple[ExecutionStatus, ExecutionStatus | None]:
    """:func:`cancel`, returning ``(the status it had, the status it has after waiting up to
    ``timeout`` seconds for it to stop)``; the second is None when it could not be read. ``origin``
    says who asks (``"zart cancel (pid 123)"``), as the process running the execution shows it."""
    from ._monitor.client import MonitorClient
    from ._runtime import default_journal_path

    path = journal or default_journal_path()
    client = MonitorClient.connect(path)
    if client is not None:
        with client:
            was = client.cancel(execution_id, origin=origin)
            if was.finished:
                return was, was
            return was, _wait_stopped(client, execution_id, path, timeout)
    here = runtime.journal(path)
    was = cancel_here(here, execution_id, origin)
    return was, here.execution_status(execution_id)


def _wait_stopped(client: MonitorClient, execution_id: str, path: str | os.PathLike[str],
                  timeout: float) -> ExecutionStatus | None:
    """Poll the engine until the execution is no longer running (the file, once the engine is gone)."""
    record = follow(client, execution_id, path, timeout=timeout)
    return None if record is None else record.status


def follow(client: MonitorClient, execution_id: str, path: str | os.PathLike[str], *, run: int | None = None,
           timeout: float | None = None) -> ExecutionRecord | None:
    """Poll the engine behind ``client`` until the execution has stopped running (and, given ``run``,
    until that run or a later one has): its record then, or when ``timeout`` ran out. Once the engine
    is gone (it released the journal, maybe as this execution ended) the file tells. None when the
    record cannot be read."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            record = client.execution_record(execution_id)
        except MonitorError:  # the engine released the journal (it may have ended with this execution)
            return _record_in_file(execution_id, path)
        if record is None:
            return None
        stopped = (record.status not in (ExecutionStatus.RUNNING, ExecutionStatus.PENDING)
                   and (run is None or record.run_number >= run))
        if stopped or (deadline is not None and time.monotonic() >= deadline):
            return record
        time.sleep(_POLL)


def _record_in_file(execution_id: str, path: str | os.PathLike[str]) -> ExecutionRecord | None:
    from ._journal.reader import FileJournalReader

    try:
        reader = FileJournalReader(runtime.journal(path))
        try:
            return reader.execution_record(execution_id)
        finally:
            reader.close()
    except ZartError as exc:
        logger.info("zart: cannot read the status of %r from %s: %s", execution_id, path, exc)
        return None


@overload
def delete(execution_id: str, *, journal: str | os.PathLike[str] | None = None) -> None: ...
@overload
def delete(execution_id: list[str] | tuple[str, ...], *,
           journal: str | os.PathLike[str] | None = None) -> list[ControlOutcome]: ...
def delete(execution_id: str | list[str] | tuple[str, ...], *,
           journal: str | os.PathLike[str] | None = None) -> list[ControlOutcome] | None:
    """Remove a finished execution (its runs, steps and attempts) from the journal, and the files of its
    value store that only it pointed to; a running one is refused with ``DefinitionError``. Given a list
    of ids, deletes each and returns a :class:`ControlOutcome` per id, in order: an unknown or running one
    is reported there, with its error, and the others are deleted all the same."""
    if not isinstance(execution_id, str):
        return _delete_many(_ids(execution_id), journal)
    from ._monitor.client import MonitorClient
    from ._runtime import default_journal_path

    path = journal or default_journal_path()
    client = MonitorClient.connect(path)
    if client is not None:
        with client:
            client.delete(execution_id)
            return None
    delete_here(runtime.journal(path), execution_id)
    return None


@dataclass(frozen=True, slots=True)
class ControlOutcome:
    """What ``zart.cancel`` or ``zart.delete`` given a list did to one execution of it.

    ``done`` is ``"cancelled"`` (it was running or unfinished; ``status`` says whether it has stopped),
    ``"already finished"`` (a cancel of a finished one: left as it was), ``"deleted"``, or ``"failed"``
    (nothing was done: ``error`` says why, e.g. ``ExecutionNotFound``). ``was`` is the status it had
    (None when it could not be read)."""

    execution_id: str
    done: Literal["cancelled", "already finished", "deleted", "failed"]
    was: ExecutionStatus | None = None
    status: ExecutionStatus | None = None  # after a cancel: the status it has now (None if unread)
    error: ZartError | None = None

    @property
    def ok(self) -> bool:
        """Whether it did what was asked (no ``error``)."""
        return self.error is None

    def __str__(self) -> str:
        if self.error is not None:
            return f"{self.execution_id}: failed: {self.error}"
        if self.done == "already finished":
            return f"{self.execution_id}: already {self.was.value if self.was else 'finished'}"
        was = f" (was {self.was.value})" if self.was is not None else ""
        if self.done == "cancelled" and self.status in (None, ExecutionStatus.RUNNING, ExecutionStatus.PENDING):
            return f"{self.execution_id}: cancelling{was}"
        return f"{self.execution_id}: {self.done}{was}"


def _ids(given: object) -> list[str]:
    if isinstance(given, (bytes, bytearray)) or not isinstance(given, Iterable):
        raise ConfigurationError(f"give an execution id or a list of them, got {given!r}")
    ids = list(given)
    for item in ids:
        if not isinstance(item, str) or not item:
            raise ConfigurationError(f"an execution id is a non-empty string, got {item!r} in {given!r}")
    return ids


def _cancel_many(ids: list[str], journal: str | os.PathLike[str] | None) -> list[ControlOutcome]:
    """Request every cancel first, then wait (up to ``CANCEL_WAIT`` in all) for those to stop."""
    from ._monitor.client import MonitorClient
    from ._runtime import default_journal_path

    path = journal or default_journal_path()
    outcomes: list[ControlOutcome | None] = [None] * len(ids)
    requested: list[tuple[int, ExecutionStatus]] = []
    client = MonitorClient.connect(path)
    here = None if client is not None else runtime.journal(path)
    deadline = time.monotonic() + CANCEL_WAIT
    try:
        for index, execution_id in enumerate(ids):
            try:
                if client is not None:
                    was = client.cancel(execution_id, origin=origin_here("zart.cancel()"))
                else:
                    assert here is not None
                    was = ExecutionStatus(request_cancel(here, execution_id, origin_here("zart.cancel()"))["was"])
            except ZartError as exc:
                outcomes[index] = ControlOutcome(execution_id, "failed", error=exc)
                continue
            if was.finished:
                outcomes[index] = ControlOutcome(execution_id, "already finished", was, was)
            else:
                requested.append((index, was))
        for index, was in requested:
            execution_id = ids[index]
            left = max(0.0, deadline - time.monotonic())
            if client is not None:
                now = _wait_stopped(client, execution_id, path, left)
            else:
                assert here is not None
                live = runtime.live_execution(here, execution_id)
                if live is not None:
                    with contextlib.suppress(BaseException):
                        live.result(timeout=left)
                now = here.execution_status(execution_id)
            outcomes[index] = ControlOutcome(execution_id, "cancelled", was, now)
    finally:
        if client is not None:
            client.close()
    return [outcome for outcome in outcomes if outcome is not None]


def _delete_many(ids: list[str], journal: str | os.PathLike[str] | None) -> list[ControlOutcome]:
    from ._monitor.client import MonitorClient
    from ._runtime import default_journal_path

    path = journal or default_journal_path()
    outcomes = []
    client = MonitorClient.connect(path)
    here = None if client is not None else runtime.journal(path)
    try:
        for execution_id in ids:
            try:
                if client is not None:
                    record = client.execution_record(execution_id)
                    was = None if record is None else record.status
                    client.delete(execution_id)
                else:
                    assert here is not None
                    was = here.execution_status(execution_id)
                    delete_here(here, execution_id)
            except ZartError as exc:
                outcomes.append(ControlOutcome(execution_id, "failed", error=exc))
            else:
                outcomes.append(ControlOutcome(execution_id, "deleted", was))
    finally:
        if client is not None:
            client.close()
    return outcomes


def start_monitor(journal: Journal, control: Control) -> Callable[[], None] | None:
    """Start the monitor server of ``journal`` and return its stop function (None when it cannot
    serve: logged). The engine calls this (through ``_actions.start_monitor`` and ``runtime.serve``)
    as a run of its begins: every process that runs executions (a kernel, a script, ``zart resume``)
    serves one."""
    from ._events import StepEvent, events
    from ._monitor.server import MonitorServer

    def live_ids() -> list[str]:
        return [e.execution_id for e in runtime.live_executions() if journal_of(e) is journal]

    @contextmanager
    def lend() -> Iterator[JournalReader | None]:
        from ._journal.reader import cursor_reader  # with the read API's records: once a client reads

        journal.fold_pending()  # a step an event reported finished is in the read that follows it
        with journal.borrow() as cursor:
            yield None if cursor is None else cursor_reader(cursor, journal.path)

    def in_flight() -> list[StepEvent]:
        found = []
        for execution in runtime.live_executions():
            run = run_of(execution)
            if journal_of(execution) is journal and run is not None and not execution.done:
                found += [StepEvent(execution.execution_id, key, status, name, attempt, worker=worker or None,
                                    started_at=started)
                          for key, name, attempt, status, worker, started in run.in_flight()]
        return found

    try:
        server = MonitorServer(journal.path, control, lend=lend, bus=events,
                               live_ids=live_ids, in_flight=in_flight)
    except OSError as exc:
        logger.warning("zart: cannot serve the monitor of %s: %s", journal.path, exc)
        return None
    return server.stop
