"""Reading what an execution published: ``zart.published`` and ``zart.stream`` (``_messages`` re-exports them).

Where the values are read from, in order of preference:

- another process's engine holds the journal: through its monitor endpoint, over one connection kept for the
  whole read, and for ``stream`` one subscription, whose execution events say when the execution ends and
  wake the next read at once (published values are read every :data:`LIVE_POLL` seconds on that connection;
  before, every look opened two new connections);
- this process holds it, or nobody does: the file (this process's journal, or the file opened for a
  moment); an execution journaled as running that no live process runs has ended for a reader.

When the engine releases the journal in the middle of a stream, the stream reads the file (or the next
holder's endpoint) from where it was: every value once, in order. An execution the journal does not know
(and that this process did not just start) is :class:`ExecutionNotFound`.
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from ._errors import ExecutionNotFound, MonitorError
from ._journal import inbox
from ._monitor.jsonvalue import decode
from ._runtime import runtime
from ._status import ExecutionStatus

if TYPE_CHECKING:
    from ._events import Event
    from ._monitor.client import MonitorClient

T = TypeVar("T")
LIVE_POLL = 0.1  # seconds between reads of new values while an execution runs (one request each, no connect)
_RUNNING = ExecutionStatus.RUNNING.value


class _Reader:
    """One execution's published values and status, read where they are (see the module's docstring)."""

    def __init__(self, journal: str | os.PathLike[str] | None, execution_id: str) -> None:
        self.held = runtime.journal(journal)
        self.execution_id = execution_id
        self._client: MonitorClient | None = None
        self.file_next = False  # the engine went away or is letting the file go: read the file next

    def client(self) -> MonitorClient | None:
        """The monitor client of the engine (of another process) holding the journal, kept once made."""
        if self.held.is_open or self.file_next:  # this process holds it (no socket), or read the file once
            self.drop()
            return None
        if self._client is None:
            from ._monitor.client import MonitorClient  # sockets only when another process may hold the file

            self._client = MonitorClient.connect(self.held.path)
        return self._client

    def drop(self, *, file_next: bool = False) -> None:
        self.file_next = file_next
        if self._client is not None:
            self._client.close()
            self._client = None

    def status(self) -> str:
        """The execution's status as a reader sees it (``"interrupted"``: journaled as running by a process
        that is gone); :class:`ExecutionNotFound` when the journal does not know it."""
        client = self.client()
        if client is not None:
            try:
                record = client.execution_record(self.execution_id)
            except MonitorError:  # the engine released the journal meanwhile: read the file
                self.drop(file_next=True)
            else:
                if record is None:
                    raise ExecutionNotFound(self.execution_id, self.held.path)
                return record.status.value
        status = self._file(inbox.execution_status, self.execution_id)
        live = runtime.live_execution(self.held, self.execution_id)
        if status is None:
            if live is not None and not live.done:
                return _RUNNING  # zart.start returned and its run is not journaled yet
            raise ExecutionNotFound(self.execution_id, self.held.path)
        if status == _RUNNING and live is None:
            return "interrupted"  # journaled as running by a process that is gone (or not yet marked)
        return status

    def values(self, key: str, after: int) -> list[tuple[int, str]]:
        """``(seq, JSON text)`` of the values published under ``key`` after ``after``."""
        client = self.client()
        if client is not None:
            try:
                return client.published(self.execution_id, key, after)
            except MonitorError:
                self.drop(file_next=True)
        return self.file_values(key, after)

    def file_values(self, key: str, after: int) -> list[tuple[int, str]]:
        """:meth:`values` read from the file."""
        return self._file(inbox.published_values, self.execution_id, key, after)

    def _file(self, read: Callable[..., T], *args: Any) -> T:
        """``read`` on the file (this process's open journal, or opened for a moment, waiting for an engine
        that is letting it go); then the monitor is preferred again."""
        self.file_next = False
        return self.held.query(read, *args)

    def live(self, client: MonitorClient, key: str, after: int) -> Generator[tuple[int, str], None, bool]:
        """Values after ``after`` while ``client``'s engine serves the journal; True once the execution
        is no longer running there and every value is read, False when the engine went away or let the
        journal go first (an engine answers no read once its run is over: the rest is in the file)."""
        ended, changed = threading.Event(), threading.Event()
        execution_id = self.execution_id

        def on_events(events: list[Event], resync: bool) -> None:
            if any(event.kind == "execution" and event.execution_id == execution_id and event.status != _RUNNING
                   for event in events):
                ended.set()
            changed.set()

        try:
            subscription = client.subscribe(on_events, lambda reason: changed.set())
        except MonitorError:
            self.drop(file_next=True)
            return False
        try:
            try:  # subscribed first, then read: an end in between is not missed
                record = client.execution_record(execution_id)
            except MonitorError:
                self.drop(file_next=True)
                return False
            if record is None:
                raise ExecutionNotFound(execution_id, self.held.path)
            if record.status.value != _RUNNING:
                ended.set()
            while True:
                over = ended.is_set()  # read before the values: those published as it ended come with them
                try:
                    rows = client.published(execution_id, key, after)
                except MonitorError:
                    self.drop(file_next=True)
                    return False
                for seq, text in rows:
                    after = seq
                    yield seq, text
                if over:
                    return True
                if not subscription.active:  # the engine released the journal
                    self.drop(file_next=True)
                    return False
                changed.wait(LIVE_POLL)
                changed.clear()
        finally:
            subscription.close()

    def close(self) -> None:
        self.drop()


def published(execution_id: str, key: str, timeout: float | None = None, default: Any = None,
              journal: str | os.PathLike[str] | None = None) -> Any:
    """The latest value an execution published under ``key``; waits up to ``timeout`` seconds for a
    first one (None: does not wait), else returns ``default``. An execution the journal does not know is
    :class:`ExecutionNotFound` (one ``zart.start`` just started in this process is known). Unlike
    ``zart.events`` (this process's stream of state changes), published values are journaled and
    readable from any process (through the monitor of the engine holding the journal, else the file)."""
    reader = _Reader(journal, execution_id)
    try:
        reader.status()  # known, or ExecutionNotFound
        deadline = time.monotonic() + (timeout or 0.0)
        while True:
            found = reader.values(key, -1)
            if found:
                return decode(found[-1][1])
            if time.monotonic() >= deadline:
                return default
            time.sleep(min(LIVE_POLL, max(0.0, deadline - time.monotonic())))
    finally:
        reader.close()


def stream(execution_id: str, key: str, journal: str | os.PathLike[str] | None = None) -> Iterator[Any]:
    """Every value an execution published under ``key``, in order and once each, following it live until
    it ends (it also ends when the execution is not running anywhere, a suspended one included: resume
    it to go on). An execution the journal does not know is :class:`ExecutionNotFound`, raised here.
    While another process's engine holds the journal, it follows through one monitor connection and one
    subscription; else it reads the file."""
    reader = _Reader(journal, execution_id)
    try:
        reader.status()
    except BaseException:
        reader.close()
        raise
    return _stream(reader, key)


def _stream(reader: _Reader, key: str) -> Iterator[Any]:
    after = -1
    try:
        while True:
            client = reader.client()
            if client is not None:
                following = reader.live(client, key, after)
                while True:
                    try:
                        seq, text = next(following)
                    except StopIteration as stop:
                        ended = bool(stop.value)
                        break
                    after = seq
                    yield decode(text)
                if ended:
                    return
                time.sleep(LIVE_POLL)  # the engine went away: the file, or the next holder's endpoint
                continue
            status = reader.status()  # first: what was published before it ended is read after
            if status != _RUNNING:  # over (or not running anywhere): the rest is in the file
                for seq, text in reader.file_values(key, after):
                    after = seq
                    yield decode(text)
                return
            for seq, text in reader.values(key, after):
                after = seq
                yield decode(text)
            time.sleep(LIVE_POLL)
    finally:
        reader.close()
