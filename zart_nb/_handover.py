"""Handing a journal over: a run that needs a journal ``zart serve`` holds asks serve for it, through the
monitor endpoint, instead of failing with ``JournalLocked`` after its lock timeout.

The asker (:func:`hold_for_run`, where the engine takes the journal for a run): when another process
serves the journal's monitor endpoint, it sends a ``handover`` request (its pid, no pickle; the server
checks that the socket's peer is that pid). A process that is not ``zart serve`` refuses, and the asker
waits for the file as before (``JournalLocked``, with the holder's pid, after its lock timeout). Serve
accepts; the asker says so in one line and waits, however long serve's running steps take, until serve
has let the file go (its endpoint gone and no descriptor of the file left in that process), then takes
it. Ctrl-C while it waits is a plain ``KeyboardInterrupt``: nothing was journaled.

Serve (:class:`Desk`): every run of that journal in the process stops at its next durable call (a step
call, a sleep, an event wait, a capture...): the steps in flight finish first, the body unwinds, and the
execution is journaled ``sleeping`` with ``waits_for`` = ``handed over to pid N``, ``wake_at`` = now and
a free lease (``_suspend``'s path, no schema change). Once the last run ends, the engine releases the
file. Serve then leaves the journal alone until the asker has it (or :data:`WINDOW` passed, or the
asker died); after that its looks meet ``JournalLocked`` and retry (``BUSY_RETRY``) until the file is free,
and its ``Wakeups`` source continues the handed-over executions (trigger ``resume``). Nothing runs twice:
a step either finished and was journaled before the body unwound (a replay reuses it) or never started.

Its cost where nothing is handed over: a run reads one attribute per durable call (``RunState.handover``),
one dict lookup as it begins, and a journal opened cold one ``stat`` of the endpoint file. Counted with
callgrind against main b2e62c3 (``bench_outcomes.py``, repeats 3 less 1, halved): the replay loop 41.62 k ->
41.76 k instructions a step (+0.3%), ``schedule`` of new steps 52.92 k -> 53.08 k (+0.3%); a whole P1 driver
(``bench_counted.py p1``, N=4 less N=1, over 3) 657.6 M -> 659.9 M (+0.35%; a second sample -0.2%).
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import JournalLocked, MonitorError
from ._handles import journal_of, run_of
from ._journal.file import alive
from ._runtime import runtime

if TYPE_CHECKING:
    from ._journal import Journal
    from ._monitor.endpoint import Endpoint

logger = logging.getLogger("zart_nb")

PREFIX = "handed over to pid "  # the start of ``waits_for`` of an execution serve handed over
WINDOW = 5.0  # seconds after serve let a journal go that it leaves the journal to its asker
POLL = 0.05  # seconds between two looks of the asker at whether serve let the file go
ENDPOINT_SUFFIX = ".monitor"  # _monitor.endpoint.SUFFIX (not imported: a journal's cold open needs no _monitor)


def waits_for(asker: int) -> str:
    """What a handed-over execution waits for, as journaled (``handed over to pid 4242``)."""
    return f"{PREFIX}{asker}"


def is_handover(waits: str | None) -> bool:
    """Whether a suspended execution's ``waits_for`` says serve handed it over."""
    return waits is not None and waits.startswith(PREFIX)


def holds_file(pid: int, path: Path) -> bool:
    """Whether process ``pid`` has ``path`` open (Linux: its ``/proc/PID/fd``); False where that cannot
    be read, or when the process is gone."""
    target = str(path)
    try:
        descriptors = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in descriptors:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                return True
        except OSError:
            continue
    return False


# --- serve's side ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Asked:
    asker: int
    released_at: float | None = None  # when this process let the file go


class Desk:
    """Handover requests in this process: accepted only while ``zart serve`` runs here (:meth:`accept`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._accepting = False
        self._asked: dict[object, _Asked] = {}  # journal identity -> its handover

    def accept(self, accepting: bool = True) -> None:
        """Serve starts (or stops) handing its journals over when asked."""
        self._accepting = accepting
        if not accepting:
            with self._lock:
                self._asked.clear()

    def request(self, journal: Journal, asker: int) -> dict[str, Any]:
        """Process ``asker`` needs ``journal``: stop every run of it here at its next durable call (see the
        module docstring); answered at once with what stops. ``MonitorError`` outside ``zart serve``."""
        if not self._accepting:
            raise MonitorError(f"process {os.getpid()} is not zart serve: it does not hand its journal over")
        with self._lock:
            asked = self._asked.get(journal.identity)
            fresh = asked is None or asked.released_at is not None
            if fresh:
                asked = self._asked[journal.identity] = _Asked(asker)
        assert asked is not None
        if fresh:
            journal.on_release(functools.partial(self._released, journal.identity))
        text = waits_for(asked.asker)
        stopping = []
        for execution in runtime.live_executions():
            run = run_of(execution)
            if journal_of(execution) is journal and run is not None and not execution.done:
                run.hand_over(text)
                stopping.append(execution.execution_id)
        logger.info("zart serve: handing %s over to pid %d (%d running: %s)", journal.path, asked.asker,
                    len(stopping), ", ".join(stopping))
        return {"pid": os.getpid(), "asker": asked.asker, "stopping": stopping}

    def _released(self, identity: object) -> None:
        with self._lock:
            asked = self._asked.get(identity)
            if asked is not None and asked.released_at is None:
                asked.released_at = time.time()

    def asked(self, journal: Journal) -> str | None:
        """``waits_for`` for a run of ``journal`` beginning while a handover is asked and the file not yet
        let go (it stops at its first durable call); None otherwise (one dict lookup a run)."""
        asked = self._asked.get(journal.identity)
        if asked is None or asked.released_at is not None:
            return None
        return waits_for(asked.asker)

    def asker(self, journal: Journal) -> int | None:
        """The pid ``journal`` is being handed over to (asked, not yet let go), for serve's status line."""
        asked = self._asked.get(journal.identity)
        return None if asked is None or asked.released_at is not None else asked.asker

    def blocked(self, journal: Journal) -> int | None:
        """The asker's pid while this process must leave ``journal`` to it: from the request until the
        asker has the file (or died, or ``WINDOW`` after this process let it go); else None."""
        with self._lock:
            asked = self._asked.get(journal.identity)
            if asked is None:
                return None
            if asked.released_at is None and not journal.is_open:  # let go before the request saw it
                asked.released_at = time.time()
            if asked.released_at is not None and (
                    time.time() > asked.released_at + WINDOW or not alive(asked.asker)
                    or holds_file(asked.asker, journal.path)):
                del self._asked[journal.identity]
                return None
            return asked.asker


desk = Desk()


# --- the asker's side -----------------------------------------------------------------------------------


def hold_for_run(journal: Journal, connecting: Callable[[], None] | None = None
                 ) -> contextlib.AbstractContextManager[Journal]:
    """``journal.hold()`` for a run; when another process's engine serves the journal's monitor (an
    endpoint file beside it), asks that engine to hand it over first (see the module docstring)."""
    if journal.is_open or not os.path.exists(str(journal.path) + ENDPOINT_SUFFIX):
        return journal.hold(connecting=connecting)
    return _taken(journal, connecting)


@contextlib.contextmanager
def _taken(journal: Journal, connecting: Callable[[], None] | None) -> Iterator[Journal]:
    asked: int | None = None
    with contextlib.ExitStack() as stack:
        while True:
            asked = _await_release(journal, asked)
            try:
                stack.enter_context(journal.hold(connecting=connecting))
            except JournalLocked as exc:
                if asked is not None and exc.pid == asked and alive(asked):
                    continue  # serve took it for a moment (it is asked again)
                raise
            break
        yield journal


def _await_release(journal: Journal, asked: int | None) -> int | None:
    """Ask the serve that holds ``journal`` to hand it over and wait until it let the file go; the pid of
    the serve asked (None: no serve holds it, the caller waits for the file as usual)."""
    from ._monitor import endpoint as endpoint_file

    told: int | None = None
    while True:
        try:
            found = endpoint_file.find_live(journal.path)
        except MonitorError as exc:
            logger.debug("zart: not asking for %s: %s", journal.path, exc)
            return asked
        if found is None:
            if asked is None or not holds_file(asked, journal.path):
                return asked
        elif found.pid != told:
            if not _ask(found):
                return asked
            logger.warning("zart serve (pid %d) is handing the journal over: its running steps finish "
                           "first (%s)", found.pid, journal.path)
            told = asked = found.pid
        time.sleep(POLL)  # Ctrl-C here is a KeyboardInterrupt before anything was journaled


def _ask(found: Endpoint) -> bool:
    """Send the handover request; False when that engine refuses (it is not ``zart serve``)."""
    from ._monitor.client import MonitorClient
    from ._monitor.protocol import MessageType

    try:
        client = MonitorClient(found)
        try:
            client.request(MessageType.HANDOVER, pid=os.getpid())
        finally:
            client.close()
    except MonitorError as exc:
        logger.debug("zart: process %d does not hand %s over: %s", found.pid, found.journal, exc)
        return False
    return True
