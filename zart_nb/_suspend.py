"""Suspension: a long durable sleep or event wait ends the run instead of blocking its thread.

When a body reaches ``zart.sleep`` with more than :func:`suspend_after` seconds left (``$ZART_SUSPEND_AFTER``,
default 60), or a ``zart.wait_for_event`` finds no event after waiting that long, it raises
:class:`Suspend` (a ``BaseException``: a body's ``except Exception`` does not catch it). The engine lets
the steps in flight finish, journals the execution ``sleeping`` or ``waiting`` with what it waits for,
until when and a lease (``_journal.suspension``), and lets go of the thread, the workers and the
journal. Nothing is lost: the body replays from the journal when it continues.

Who continues it (the ownership model):

- The process that suspended it holds its lease: ``lease_until`` is :func:`lease_time` seconds ahead,
  renewed by its :class:`Continuer` (one thread for every suspended execution of the process) each
  time it looks at the file with less than half of that left. While it lives, the continuer continues
  the execution when due: at its wake time, or at once when an event is delivered to it (a send in
  this process; a ping on its wake channel, ``_monitor.wake``, from a process that wrote an event or a
  ``zart wake`` into the file; or found on its look at the file every :data:`EVENT_LOOK` seconds, the
  fallback).
- ``zart serve`` continues due suspended executions whose lease is free (expired: its owner stopped
  renewing it, on any host; or its owner's process is gone, known at once on this host) as one more
  source of due work (``_serve.wakeups``).
- ``zart resume ID`` continues one now whoever holds the lease (a sleep then sleeps only what is left).
- Every run takes the lease in the same transaction as it begins (``Journal.begin_run``); a continuation
  checks it there first, so two processes never both run one execution.
"""
from __future__ import annotations

import atexit
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._errors import ConfigurationError, ZartError
from ._handles import journal_of
from ._handover import desk, is_handover
from ._journal import suspension
from ._options import RunPlan
from ._runtime import runtime
from ._status import ExecutionStatus, RunTrigger

if TYPE_CHECKING:
    from ._definitions import WorkflowDef
    from ._handles import Execution
    from ._journal import Journal
    from ._monitor.wake import WakeChannel
    from ._options import RunOptions

logger = logging.getLogger("zart_nb")

DEFAULT_SUSPEND_AFTER = 60.0  # seconds: a sleep longer than this suspends; a wait this long suspends
LEASE_TIME = 60.0  # seconds a suspending process's lease lasts from its last renewal (renewed at half)
MIN_LEASE_TIME = 1.0
EVENT_LOOK = 5.0  # seconds between looks in the file for events sent to waiting executions of this process
WOKEN_BY_PING = "woken by a ping on its wake channel"  # in the continuing run's trigger detail
BUSY_RETRY = 2.0  # another process holds the journal at a due time: try again this much later
PING_SETTLE = 0.1  # seconds between a ping and its look: the sender pings as it closes the file
PING_RETRY = 5.0  # seconds a pinged look is tried again while the file is still held (its sender closing it)

Execute = Callable[["Execution", "WorkflowDef", Any, "RunOptions", "RunPlan | None"], None]


def suspend_after() -> float:
    """The suspension threshold in seconds: ``$ZART_SUSPEND_AFTER`` (a number >= 0, or ``inf`` to never
    suspend), default 60."""
    raw = os.environ.get("ZART_SUSPEND_AFTER", "").strip()
    if not raw:
        return DEFAULT_SUSPEND_AFTER
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if math.isnan(value) or value < 0:
        raise ConfigurationError(f"$ZART_SUSPEND_AFTER must be seconds >= 0 (or inf), got {raw!r}")
    return value


class Suspend(BaseException):  # noqa: N818 - a control-flow signal, like GeneratorExit
    """Raised in a body to suspend its execution (never seen by user code that catches ``Exception``)."""

    def __init__(self, status: ExecutionStatus, waits_for: str, wake_at: float | None,
                 sleep_key: str | None = None, *, handed_over: bool = False) -> None:
        super().__init__(status, waits_for, wake_at)
        self.sleep_key = sleep_key  # the sleep's step key (its row's finished_at is its wake time)
        self.handed_over = handed_over  # zart serve lets another process have the journal (``_handover``)
        self.status = status
        self.waits_for = waits_for  # the sleep's or the event's name
        self.wake_at = wake_at  # the wake time, or the wait's timeout (None: none)

    def describe(self) -> str:
        """What it waits for, in words (the run's end detail, ``zart show``)."""
        return describe(self.status, self.waits_for, self.wake_at)


def describe(status: ExecutionStatus, waits_for: str | None, wake_at: float | None) -> str:
    """``sleep 'nap' until 2026-12-06T01:00:00+00:00``, ``event 'approve' (no timeout)``."""
    from datetime import UTC, datetime

    if is_handover(waits_for):
        return f"{waits_for}: zart serve let that process have the journal; continued once it lets go"
    what = f"{'sleep' if status is ExecutionStatus.SLEEPING else 'event'} {waits_for!r}"
    if wake_at is None:
        return what + " (no timeout)"
    return f"{what} until {datetime.fromtimestamp(wake_at, UTC).isoformat(timespec='seconds')}"


def lease_time() -> float:
    """How long a suspending process's lease lasts from its last renewal: ``$ZART_LEASE_TIME`` seconds
    (a number >= 1), default :data:`LEASE_TIME`. How long ``zart serve`` waits before it takes over an
    execution whose process stopped renewing it (a process on another host that went away; one on this
    host that is gone is known at once)."""
    raw = os.environ.get("ZART_LEASE_TIME", "").strip()
    if not raw:
        return LEASE_TIME
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < MIN_LEASE_TIME:
        raise ConfigurationError(f"$ZART_LEASE_TIME must be seconds >= {MIN_LEASE_TIME:g}, got {raw!r}")
    return value


def lease_until(now: float) -> float:
    """When a lease taken or renewed at ``now`` by the suspending process ends unless renewed again (an
    execution handed over by ``zart serve`` has none: free from its wake time, which is now)."""
    return now + lease_time()


def _look_every() -> float:
    """Seconds between the continuer's looks at the file: :data:`EVENT_LOOK`, or often enough to renew
    a short lease (at least twice before it would expire)."""
    return min(EVENT_LOOK, lease_time() / 4)


def due_at(row: suspension.SuspendedRow, me: str, now: float,
           alive: Callable[[str], bool] = suspension.alive) -> float | None:
    """When ``me`` (a lease owner) may continue a suspended execution: its wake time (a waiting one: now
    if its event is there, else its timeout), and not before its lease is free; ``None``: not foreseeable
    (a wait without timeout and no event, or a lease held while its owner lives)."""
    if row.status is ExecutionStatus.WAITING and row.has_event:
        due: float | None = now
    else:
        due = row.wake_at
    if due is None:
        return None
    if suspension.lease_free(row.lease_owner, row.lease_until, me, max(due, now), alive):
        return due
    if row.lease_until is None:
        return None
    return max(due, row.lease_until)


@dataclass(slots=True)
class _Entry:
    execution: Execution
    workflow: WorkflowDef
    data: Any
    options: RunOptions
    execute: Execute
    status: ExecutionStatus
    waits_for: str
    due: float | None  # None: a wait without timeout, due when its event comes
    woken: str | None = None  # why it is due early (an event here, a ping, a look at the file)


class Continuer:
    """Continues the executions this process suspended when they are due: one thread for all of them,
    started with the first, and a wake channel per journal while it has any there (see the module
    docstring)."""

    def __init__(self) -> None:
        self._entries: dict[tuple[object, str], _Entry] = {}
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._looked = 0.0
        self._channels: dict[object, WakeChannel | None] = {}  # journal identity -> its wake channel (None: none)
        self._pinged: set[object] = set()  # journals to look at now (a ping came)
        self._pinged_at: dict[object, float] = {}  # journal identity -> when the ping not yet looked upon came
        self._at_exit = False
        self._busy = threading.Lock()  # held while the thread uses a journal (a look, a continuation's start)
        self._stopping = False  # the interpreter exits: the thread uses no journal any more

    def add(self, execution: Execution, workflow: WorkflowDef, data: Any, options: RunOptions,
            execute: Execute) -> None:
        """Continue ``execution`` (just suspended here) when due, with ``execute`` (the engine's)."""
        held = execution.suspension
        if held is None:
            return
        waits_for, wake_at = held
        journal = journal_of(execution)
        key = (journal.identity, execution.execution_id)
        if self._stopping:  # the process is exiting: left suspended in the file, for zart serve or a resume
            return
        entry = _Entry(execution, workflow, data, options, execute, execution.status, waits_for, wake_at)
        execution.on_suspended_cancel(lambda origin: self.cancel(key, origin))
        with self._cond:
            self._entries[key] = entry
            opening = key[0] not in self._channels
            if opening:
                self._channels[key[0]] = None
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="zart-continuer", daemon=True)
                self._thread.start()
            self._cond.notify_all()
        if opening:
            self._open_channel(journal)
        if execution.cancel_requested:  # cancelled while it was suspending
            self.cancel(key, execution.cancelled_by)

    def poke(self, journal: Journal, execution_id: str, why: str = "an event or a wake sent here") -> None:
        """An event was delivered to (or a sleep ended for) a suspended execution of this process: due now."""
        with self._cond:
            entry = self._entries.get((journal.identity, execution_id))
            if entry is not None:
                entry.due = time.time()
                entry.woken = why
                self._cond.notify_all()

    def has(self, journal: Journal, execution_id: str) -> bool:
        with self._cond:
            return (journal.identity, execution_id) in self._entries

    def cancel(self, key: tuple[object, str], origin: str | None) -> None:
        """Cancel a suspended execution of this process: journaled ``cancelled`` and done here."""
        from ._errors import Cancelled

        with self._cond:
            entry = self._entries.pop(key, None)
        if entry is None:
            return
        execution = entry.execution
        journal = journal_of(execution)
        try:
            journal.set_status(execution.execution_id, ExecutionStatus.CANCELLED)
        except ZartError as exc:
            logger.error("zart: cancelling suspended execution %r: %s", execution.execution_id, exc)
        execution.finish(ExecutionStatus.CANCELLED, error=Cancelled(
            f"execution {execution.execution_id!r} was cancelled while {entry.status.value}"
            + (f" (from {origin})" if origin else "")))
        runtime.release(execution)
        execution.set_done()

    # --- the wake channels -----------------------------------------------------------------------

    def _open_channel(self, journal: Journal) -> None:
        """Listen for pings about ``journal`` (``_monitor.wake``); without a channel, the looks remain."""
        from ._monitor.wake import WakeChannel

        identity = journal.identity
        try:
            channel: WakeChannel | None = WakeChannel(journal.path, lambda: self._ping(identity))
        except (OSError, ZartError) as exc:
            logger.warning("zart: no wake channel for %s (%s); events sent from other processes reach its "
                           "suspended executions within %s s", journal.path, exc, EVENT_LOOK)
            channel = None
        with self._cond:
            if self._channels.get(identity, False) is None:
                self._channels[identity] = channel
                if channel is not None and not self._at_exit:
                    self._at_exit = True
                    atexit.register(self._close_channels)
                return
        if channel is not None:  # its executions left meanwhile
            channel.close()

    def _close_channels(self) -> None:
        """At exit: remove this process's sockets (a sender removes those of a killed process)."""
        with self._cond:
            closing = [channel for channel in self._channels.values() if channel is not None]
            self._channels.clear()
        for channel in closing:
            channel.close()

    def _ping(self, identity: object) -> None:
        with self._cond:
            self._pinged.add(identity)
            self._pinged_at.setdefault(identity, time.time())
            self._cond.notify_all()

    def _close_idle_channels(self) -> None:
        """Close the channels of journals with no suspended execution of this process left."""
        with self._cond:
            used = {identity for identity, _ in self._entries}
            idle = [identity for identity in self._channels if identity not in used]
            closing = [self._channels.pop(identity) for identity in idle]
        for channel in closing:
            if channel is not None:
                channel.close()

    # --- the thread ------------------------------------------------------------------------------

    def _stop(self) -> None:
        """As the interpreter exits, before the journals close (``runtime.close_all``, an ``atexit``
        callback): wait for a look in progress and end the thread; executions suspended after this are
        not taken. A daemon thread still opening the journal as the interpreter finalizes aborts the
        process (SIGABRT, "FATAL: exception not rethrown" inside DuckDB's connect): 1 process in about 20
        that exited at once after an execution suspended, at load 4, when its run thread added the
        execution after ``atexit`` had run and the new continuer's first look opened the file."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._busy.acquire(timeout=10.0):
            self._busy.release()
        self._close_channels()

    def _loop(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                now = time.time()
                due = [key for key, entry in self._entries.items() if entry.due is not None and entry.due <= now]
                taken = [(key, self._entries.pop(key)) for key in due]
                pinged, self._pinged = self._pinged, set()
                if not taken and not pinged:
                    soonest = min((entry.due for entry in self._entries.values() if entry.due is not None),
                                  default=now + EVENT_LOOK)
                    if self._entries:
                        soonest = min(soonest, self._looked + _look_every())
                    if soonest > now:
                        self._cond.wait(min(soonest - now, EVENT_LOOK))
                        continue
            with self._busy:
                if self._stopping:
                    return
                for key, entry in taken:
                    self._continue(key, entry)
                if pinged:
                    time.sleep(PING_SETTLE)  # the sender is closing the file: open it once it has
                every = time.time() >= self._looked + _look_every()
                if every or pinged:
                    if every:
                        self._looked = time.time()
                    with self._cond:
                        entries = [(key, entry) for key, entry in self._entries.items()
                                   if every or key[0] in pinged]
                    self._look(entries, pinged)
                self._close_idle_channels()

    def _look(self, entries: list[tuple[tuple[object, str], _Entry]], pinged: set[object]) -> None:
        """What other processes wrote into the file while nobody held it: an event sent to a waiting
        execution or a ``zart wake`` makes it due now; a cancel, a delete or another process continuing
        it (``zart resume``) ends it here. Renews the leases of those still suspended here."""
        by_journal: dict[object, list[tuple[tuple[object, str], _Entry]]] = {}
        for key, entry in entries:
            by_journal.setdefault(key[0], []).append((key, entry))
        with self._cond:
            for identity in pinged - by_journal.keys():
                self._pinged_at.pop(identity, None)  # nothing of it suspended here any more
        for identity, group in by_journal.items():
            journal = journal_of(group[0][1].execution)
            try:
                with journal.hold():
                    self._look_at(journal, group, identity in pinged)
            except ZartError:  # another process holds it: look again later (soon after a ping: its sender
                if identity in pinged:  # lets go of the file as it pings, which may take a moment under load)
                    self._ping_again(identity)
                continue
            with self._cond:
                self._pinged_at.pop(identity, None)
                if identity in self._pinged:  # pinged again while it looked
                    self._pinged_at[identity] = time.time()

    def _ping_again(self, identity: object) -> None:
        """A pinged look found the file held: look again after ``PING_SETTLE``, for up to ``PING_RETRY``."""
        with self._cond:
            if time.time() < self._pinged_at.get(identity, 0.0) + PING_RETRY:
                self._pinged.add(identity)
                self._cond.notify_all()
            else:
                self._pinged_at.pop(identity, None)

    def _woken_by(self, identity: object, pinged: bool) -> str:
        """Why a look found something: a ping came for the journal before (or while) it looked."""
        with self._cond:
            pinged = pinged or identity in self._pinged
        return WOKEN_BY_PING if pinged else "found on a look at the file"

    def _look_at(self, journal: Journal, group: list[tuple[tuple[object, str], _Entry]], pinged: bool) -> None:
        from ._errors import Cancelled, StateConflict

        now = time.time()
        me = suspension.owner()
        renew = []
        for key, entry in group:
            execution = entry.execution
            status, row = journal.query(suspension.state, execution.execution_id)
            if row is not None:
                if row.lease_owner == me and (row.lease_until is None or row.lease_until - now < lease_time() / 2):
                    renew.append(execution.execution_id)
                due = time.time() if row.has_event else row.wake_at
                if due is not None and (entry.due is None or due < entry.due):
                    why = self._woken_by(journal.identity, pinged)
                    logger.info("zart: execution %r is due now (%s)", execution.execution_id, why)
                    self.poke(journal, execution.execution_id, why) if row.has_event else self._move(key, due, why)
                continue
            with self._cond:
                if self._entries.pop(key, None) is None:
                    continue
            why = self._woken_by(journal.identity, pinged)
            error: BaseException
            if status == ExecutionStatus.CANCELLED.value:
                logger.info("zart: execution %r was cancelled from another process (%s)", execution.execution_id, why)
                error = Cancelled(f"execution {execution.execution_id!r} was cancelled while {entry.status.value} "
                                  f"(from another process; {why})")
                execution.finish(ExecutionStatus.CANCELLED, error=error)
            else:
                logger.info("zart: execution %r is %s (%s)", execution.execution_id, status or "deleted", why)
                execution.fail(StateConflict(execution.execution_id, status or "deleted",
                                             f"another process continued it (or it was deleted; {why})"))
            runtime.release(execution)
            execution.set_done()
        if renew:
            journal.transact(suspension.renew, renew, me, lease_until(now))

    def _move(self, key: tuple[object, str], due: float, why: str) -> None:
        with self._cond:
            entry = self._entries.get(key)
            if entry is not None:
                entry.due = due
                entry.woken = why
                self._cond.notify_all()

    def _continue(self, key: tuple[object, str], entry: _Entry) -> None:
        execution = entry.execution
        journal = journal_of(execution)
        try:
            asker = desk.blocked(journal)
            if asker is not None:  # this zart serve handed the journal over: the asker goes first
                raise ZartError(f"zart serve handed the journal over to pid {asker}")
            with journal.hold():
                pass  # it can be opened now (a notebook or serve may hold it: try again shortly)
        except ZartError as exc:
            logger.info("zart: execution %r is due but %s; trying again", execution.execution_id, exc)
            entry.due = time.time() + BUSY_RETRY
            with self._cond:
                self._entries.setdefault(key, entry)
            return
        detail = f"due: {describe(entry.status, entry.waits_for, entry.due)}"
        if entry.woken is not None:
            detail += f" ({entry.woken})"
        plan = RunPlan(RunTrigger.RESUME, detail, lease=True)

        def run() -> None:
            try:
                entry.execute(execution, entry.workflow, entry.data, entry.options, plan)
            except BaseException as exc:  # noqa: BLE001 - the outcome is on the execution
                logger.info("zart: continuing execution %r ended: %s", execution.execution_id, exc)

        threading.Thread(target=run, name=f"zart-continue-{execution.execution_id}", daemon=True).start()


continuer = Continuer()
# The continuer stops in threading's own exit hooks (private, 3.9+; concurrent.futures stops its workers
# so): they run as the main thread ends, before the interpreter waits for non-daemon threads and before
# every atexit callback. Nothing public runs then: an atexit callback runs after those threads were
# joined (one suspending an execution meanwhile could have it continued here), and after
# runtime.close_all when DuckDB was imported later (close_all is registered again then, and atexit runs
# the last first); a thread joined on the main thread wakes only after these hooks (threading._shutdown), alongside
# the threads being joined. tests/test_continuer_exit.py holds the order. Should a Python drop the hook,
# atexit is the nearest (the continuer still stops, later).
_at_thread_shutdown = getattr(threading, "_register_atexit", None)
if _at_thread_shutdown is not None:
    _at_thread_shutdown(continuer._stop)
else:  # pragma: no cover - no such Python yet
    atexit.register(continuer._stop)
