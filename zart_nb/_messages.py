"""Values in and out of a running execution: ``zart.publish`` / ``zart.published`` / ``zart.stream`` and
``zart.send_event`` / ``zart.wait_for_event``.

Payloads and published values are JSON values (they cross the monitor endpoint and HTTP, which never
unpickle), at most :data:`MAX_JSON_BYTES` once encoded (one codec for every surface: ``_monitor.jsonvalue``).
Where they travel:

- While an engine holds the journal (DuckDB lets one process open the file), another process reads
  and sends through that engine's monitor endpoint; the engine writes the event and wakes the body.
- When nobody holds it, the sender writes the event into the file (the ``events`` table) and whoever
  runs the execution next delivers it; readers read the file.
- In the process that holds it (a notebook that started the execution), the journal is used directly.

An event is kept until a ``wait_for_event`` of its name consumes it, oldest first, exactly once: the
consumption is one transaction that marks the event with the wait's key, which is what a replay
finds. A wait's timeout is journaled at its first call (a row ``event:<name>#<n>``), and running out
is journaled as a consumption without a payload, so a replay raises :class:`EventTimeout` again.
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

from . import _context
from . import _kinds as kinds
from . import _serialization as ser
from ._errors import (
    ConfigurationError,
    EventTimeout,
    ExecutionNotFound,
    JournalLocked,
    MonitorError,
    StateConflict,
)
from ._follow import published as published  # public: reading what an execution published
from ._follow import stream as stream
from ._handles import run_of
from ._journal import inbox, suspension
from ._monitor.jsonvalue import MAX_JSON_BYTES as MAX_JSON_BYTES  # public: zart.MAX_JSON_BYTES
from ._monitor.jsonvalue import decode, encode, parse
from ._replay import Kind
from ._runtime import runtime
from ._status import ExecutionStatus
from ._suspend import continuer, suspend_after

if TYPE_CHECKING:
    from ._journal import Journal
    from ._monitor.client import MonitorClient
    from ._records import PendingEvent

T = TypeVar("T")

POLL = 0.5  # seconds between looks at the journal while a body waits for an event (a send also wakes it)
_FINISHED = ("completed", "cancelled")  # a failed execution may be resumed: its waits may be ahead


def _run(what: str) -> _context.Run:
    return _context.require_run(what)


# --- in a workflow body ----------------------------------------------------------------------------


def publish(key: str, value: Any) -> None:
    """Record ``value`` (a JSON value) under ``key`` for others to read while the execution runs
    (progress, an intermediate result, a URL to approve): :func:`published`, :func:`stream`.
    Journaled in call order: a replay does not publish again."""
    key = kinds.check_name("publish", key)
    text = encode(value, f"the value published as {key!r}")
    run = _run("publish")
    call, seq, stored = run.recall(Kind.PUBLISH, key)
    if stored is not None:
        return
    run.journal_call(Kind.PUBLISH, call, seq, key, text.encode("utf-8"), ser.cap_text(text, 200))


def wait_for_event(name: str, timeout: float | None = None) -> Any:
    """The payload of the next event ``name`` sent to this execution (:func:`send_event`, ``zart event``),
    waiting for it. An event sent earlier was kept and is returned at once. ``timeout`` (seconds, from
    the first call: journaled) raises :class:`EventTimeout` here when it runs out."""
    name = kinds.check_name("wait_for_event", name)
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or not math.isfinite(timeout) or timeout < 0):
        raise ConfigurationError(f"zart.wait_for_event() timeout must be seconds >= 0 or None, got {timeout!r}")
    run = _run("wait_for_event")
    key, seq, stored = run.recall(Kind.EVENT, name)
    blob = kinds.recalled(stored)
    if blob is not None:
        deadline = cast("float | None", ser.loads(blob))
    else:
        deadline = None if timeout is None else time.time() + timeout
        until = "" if deadline is None else " until " + datetime.fromtimestamp(deadline, UTC).isoformat(
            timespec="seconds")
        run.journal_call(Kind.EVENT, key, seq, name, ser.dumps(deadline), f"waits for event {name!r}{until}")
    journal = run.journal
    suspend_at = time.time() + suspend_after()  # waited this long in this run: it suspends (``_suspend``)
    while True:
        now = time.time()
        found, payload = cast("tuple[bool, str | None]", journal.transact(
            inbox.take_event, run.execution_id, name, key, now, deadline is not None and now >= deadline))
        if found:
            if payload is None:
                raise EventTimeout(run.execution_id, name, timeout)
            return decode(payload)
        if now >= suspend_at and (deadline is None or deadline - now > POLL):
            run.suspend(ExecutionStatus.WAITING, name, deadline)
            suspend_at = math.inf  # a run that cannot suspend (a child's) waits on
        run.doze(now + POLL if deadline is None else min(deadline, now + POLL))


# --- from anywhere ---------------------------------------------------------------------------------


def send_event(execution_id: str, name: str, payload: Any = None, journal: str | os.PathLike[str] | None = None,
               idempotency_key: str | None = None, *, payload_json: str | None = None) -> bool:
    """Send the event ``name`` with ``payload`` (a JSON value) to an execution; a
    ``zart.wait_for_event(name)`` in its body returns it (one wait per event, in the order sent; one
    sent before the body waits is kept). ``payload_json``: the payload as JSON text instead, as a user
    typed it (``zart event --data``, zart-tui), checked here. A payload that is not JSON or is larger than
    :data:`MAX_JSON_BYTES` is :class:`SerializationError`. ``False``: an event with that
    ``idempotency_key`` was already sent to it. An unknown execution is :class:`ExecutionNotFound`; a
    completed or cancelled one :class:`StateConflict` (a failed one takes events: it may be resumed)."""
    kinds.check_name("send_event", name)
    if not isinstance(execution_id, str) or not execution_id:
        raise ConfigurationError(f"zart.send_event() needs an execution id, got {execution_id!r}")
    if idempotency_key is not None and (not isinstance(idempotency_key, str) or not idempotency_key):
        raise ConfigurationError(f"idempotency_key must be a non-empty string or None, got {idempotency_key!r}")
    what = f"the payload of event {name!r}"
    if payload_json is None:
        text = encode(payload, what)
    elif payload is not None:
        raise ConfigurationError("zart.send_event() takes a payload or payload_json, not both")
    else:
        text = parse(payload_json, what)
    sender = f"process {os.getpid()}"
    return _by_holder(runtime.journal(journal),
                      lambda client: client.send_event(execution_id, name, text, idempotency_key, sender),
                      lambda held: deliver(held, execution_id, name, text, idempotency_key, sender))


def deliver(journal: Journal, execution_id: str, name: str, payload: str, idempotency_key: str | None,
            sender: str | None) -> bool:
    """Write an event (JSON text) into ``journal`` and wake the execution if it runs in this process (the
    monitor server's ``send_event``, and a sender when nobody else holds the file)."""
    status, added = cast("tuple[str | None, bool]", journal.transact(
        inbox.add_event, execution_id, name, payload, idempotency_key, time.time(), sender))
    if status == "delivered":
        return False  # that idempotency key was delivered before: a retry, answered as the first time was
    if status is None:
        raise ExecutionNotFound(execution_id, journal.path)
    if status in _FINISHED:
        raise StateConflict(execution_id, status, f"it cannot receive event {name!r}")
    live = runtime.live_execution(journal, execution_id)
    run = None if live is None else run_of(live)
    if live is not None and live.suspension is not None:
        continuer.poke(journal, execution_id)  # suspended here: due now
    elif run is not None:
        run.poke()
    elif added:
        ping_owner(journal, execution_id)
    return added


def ping_owner(journal: Journal, execution_id: str) -> None:
    """After an event or a wake was committed into the file: tell the process that suspended the
    execution (its lease's owner, on this host) to look now, through its wake channel (``_monitor.wake``).
    The owner cannot open the file while this process has it open, so the ping goes as this process
    lets go of it (a second after its last use, or at exit), or at once if it has. Without a ping the
    owner finds it on its next look (``EVENT_LOOK``)."""
    owner = owner_to_ping(journal, execution_id)
    if owner is not None:
        ping(journal, owner)


def owner_to_ping(journal: Journal, execution_id: str) -> str | None:
    """The lease owner of a suspended execution that another process (on any host) holds, which a change
    written into the file concerns; None when it is not suspended or suspended here. A cancel or a
    delete reads it before its commit (the commit ends the suspension) and pings after it (:func:`ping`)."""
    status, owner = journal.query(suspension.lease_of, execution_id)
    if owner is None or status not in suspension.SUSPENDED or owner == suspension.owner():
        return None
    return owner


def ping(journal: Journal, owner: str) -> None:
    """Ping ``owner``'s wake channel for ``journal`` as this process lets go of the file (at once if it has)."""
    from ._monitor import wake  # sockets only when another process may be pinged

    def send() -> None:
        wake.ping(journal.path, owner)

    if journal.is_open:
        journal.on_release(send)
    else:
        send()


def wake(execution_id: str, journal: str | os.PathLike[str] | None = None) -> bool:
    """End the durable sleep an execution is in (``zart wake ID``): in the process running it (through
    its monitor endpoint from another process), or, when nobody holds the journal, in the file, so its
    next run does not sleep. False when it was not sleeping. An unknown execution is
    :class:`ExecutionNotFound`; a completed or cancelled one :class:`StateConflict`."""
    return _by_holder(runtime.journal(journal), lambda client: client.wake(execution_id),
                      lambda held: wake_here(held, execution_id))


def wake_here(journal: Journal, execution_id: str) -> bool:
    """:func:`wake` in the process that holds ``journal`` or may open it (the monitor server's ``wake``)."""
    live = runtime.live_execution(journal, execution_id)
    run = None if live is None or live.done else run_of(live)
    if live is not None and run is not None and live.suspension is None and run.wake():
        return True  # else it is suspending, or suspended: its sleep's row and its wake time move to now
    now = time.time()
    status, woken = cast("tuple[str | None, int]", journal.transact(
        inbox.wake_sleeps, execution_id, now, ser.dumps(now), kinds.until(now, woken=True)))
    if status is None:
        raise ExecutionNotFound(execution_id, journal.path)
    if status in _FINISHED:
        raise StateConflict(execution_id, status, "it has no sleep to end")
    if woken:
        continuer.poke(journal, execution_id)  # suspended here: due now
        journal.transact(suspension.wake_now, execution_id, now)
        if live is None:
            ping_owner(journal, execution_id)
    return woken > 0


def pending_events(execution_id: str, journal: str | os.PathLike[str] | None = None) -> list[PendingEvent]:
    """Events sent to an execution that no wait consumed yet, oldest first (``zart show``, the TUI)."""
    held = runtime.journal(journal)
    if not held.is_open:
        client = _live_client(held.path)
        if client is not None:
            with client:
                try:
                    return client.pending_events(execution_id)
                except MonitorError:  # it is letting the journal go (its run is over): read the file
                    pass
    from ._journal.reader import FileJournalReader

    return FileJournalReader(held).pending_events(execution_id)


def _by_holder(held: Journal, remote: Callable[[MonitorClient], T], here: Callable[[Journal], T]) -> T:
    """``remote`` through the monitor endpoint of the process holding ``held``, else ``here`` in the file.
    An engine may take the file between the look for its endpoint and the open (``zart serve`` beginning
    a due run): the open then meets the lock, and the endpoint, served once that run is journaled, is
    asked instead of failing."""
    if not held.is_open:
        client = _live_client(held.path)
        if client is not None:
            with client:
                return remote(client)
    try:
        return here(held)
    except JournalLocked:
        client = None if held.is_open else _live_client(held.path)
        if client is None:
            raise
        with client:
            return remote(client)


def _live_client(path: os.PathLike[str] | str) -> MonitorClient | None:
    from ._monitor.client import MonitorClient  # sockets only when another process may hold the file

    return MonitorClient.connect(path)
