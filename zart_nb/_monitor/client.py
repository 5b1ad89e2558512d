"""The monitor client: a :class:`JournalReader` of a journal a live engine holds, plus its event stream and
control actions. Everything it receives is JSON; nothing is unpickled."""
from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
from collections.abc import Callable
from datetime import datetime
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection, answer_challenge, deliver_challenge
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import (
    ConfigurationError,
    DefinitionError,
    DefinitionNotFound,
    ExecutionNotFound,
    MonitorError,
    NonDeterminism,
    SerializationError,
    StateConflict,
)
from .._events import Event
from .._progress import RunProgress
from .._reader import JournalReader, check_sort, check_step_status
from .._records import (
    AttemptRecord,
    DefinitionRecord,
    ExecutionRecord,
    ExecutionStatus,
    PendingEvent,
    RunRecord,
    StepRecord,
    StepStatus,
)
from . import endpoint as endpoint_file
from .endpoint import Endpoint
from .protocol import (
    MAX_RESPONSE_BYTES,
    EventBatch,
    MessageType,
    ProtocolError,
    Request,
    Response,
    event_from_json,
    progress_from_json,
    record_from_json,
)

if TYPE_CHECKING:
    from .._stored import StoredValue

logger = logging.getLogger("zart_nb")

_ERRORS: dict[str, type[Exception]] = {
    cls.__name__: cls for cls in (ConfigurationError, DefinitionError, DefinitionNotFound, NonDeterminism,
                                  ProtocolError, MonitorError, SerializationError, StateConflict)}


def _connect(endpoint: Endpoint) -> Connection:
    """A connection that proved the key both ways (as ``Client(authkey=)`` does, but closed on failure)."""
    try:
        conn = Client(endpoint.address, family="AF_UNIX")
    except (OSError, EOFError) as exc:
        raise MonitorError(f"cannot reach the monitor of {endpoint.journal} (pid {endpoint.pid}): {exc}") \
            from None
    try:
        answer_challenge(conn, endpoint.authkey)
        deliver_challenge(conn, endpoint.authkey)
    except AuthenticationError as exc:
        conn.close()
        raise MonitorError(f"the monitor of {endpoint.journal} refused the key: {exc}") from None
    except (OSError, EOFError) as exc:
        conn.close()
        raise MonitorError(f"the monitor of {endpoint.journal} (pid {endpoint.pid}) hung up: {exc}") from None
    return conn


class Subscription:
    """A running event stream, as :meth:`MonitorClient.subscribe` returns it; :meth:`close` ends it.
    ``on_lost`` is called once if the engine goes away."""

    def __init__(self, conn: Connection, on_events: Callable[[list[Event], bool], None],
                 on_lost: Callable[[str], None] | None) -> None:
        self._conn = conn
        self._on_events = on_events
        self._on_lost = on_lost
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="zart-monitor-events", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        reason = "the engine released the journal"
        try:
            while not self._closed.is_set():
                if not self._conn.poll(0.2):
                    continue
                batch = EventBatch.from_json(self._conn.recv_bytes(MAX_RESPONSE_BYTES))
                events = []
                for value in batch.events:
                    with contextlib.suppress(ProtocolError):
                        events.append(event_from_json(value))
                self._on_events(events, batch.resync)
        except (EOFError, OSError, ProtocolError) as exc:
            if not isinstance(exc, EOFError):
                reason = f"the event stream broke: {exc}"
        except Exception:
            logger.exception("zart: an event subscriber failed")
            reason = "an event subscriber failed"
        finally:
            if not self._closed.is_set() and self._on_lost is not None:
                self._on_lost(reason)
            self._closed.set()
            with contextlib.suppress(OSError):
                self._conn.close()

    @property
    def active(self) -> bool:
        """Whether events still arrive (``False`` once closed or once the engine went away)."""
        return not self._closed.is_set()

    def close(self) -> None:
        """End the stream (the engine is told); waits up to 2 s for its thread."""
        if self._closed.is_set():
            return
        self._closed.set()
        with contextlib.suppress(OSError, ValueError):
            self._conn.send_bytes(b"{}")  # tells the server to end the stream
        if threading.current_thread() is not self._thread:  # on_lost may close it from its own thread
            self._thread.join(timeout=2)


class MonitorClient(JournalReader):
    """Reads (and controls) a journal through the live engine that holds it.

    ``MonitorClient.connect(path)`` returns one when a live engine of another process serves the journal,
    else None (also, with a warning, when the endpoint file or the socket's folder could be someone
    else's: see ``endpoint.read``). Calls raise :class:`MonitorError` when the engine goes away
    (read the file then)."""

    def __init__(self, endpoint: Endpoint) -> None:
        """Connect to ``endpoint``; :class:`MonitorError` if its socket's folder could be someone else's."""
        endpoint_file.check_socket_folder(endpoint)
        self.endpoint = endpoint
        self._conn: Connection | None = _connect(endpoint)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._subscriptions: list[Subscription] = []

    @classmethod
    def connect(cls, journal: str | os.PathLike[str]) -> MonitorClient | None:
        """A client of the engine serving ``journal``, or ``None`` when no live engine of another process
        serves it (or its endpoint file is refused, with a warning): then read the file."""
        try:
            endpoint = endpoint_file.find_live(journal)
        except MonitorError as exc:  # refused as a stale file is: the caller reads the journal file
            logger.warning("zart: %s", exc)
            return None
        if endpoint is None:
            return None
        try:
            return cls(endpoint)
        except MonitorError:
            return None  # it stopped between reading the file and connecting

    def __repr__(self) -> str:
        return f"<MonitorClient {self.location} pid={self.endpoint.pid}>"

    @property
    def location(self) -> str:
        return self.endpoint.journal

    @property
    def path(self) -> str:
        """The journal file's path, as its engine names it."""
        return self.endpoint.journal

    @property
    def pid(self) -> int:
        """The process id of the engine that holds the journal."""
        return self.endpoint.pid

    def request(self, kind: MessageType, **args: Any) -> Any:
        """One request and its reply's result; a failure reply raises the matching ``ZartError``."""
        with self._lock:
            if self._conn is None:
                raise MonitorError(f"the monitor client of {self.location} is closed")
            request = Request(next(self._ids), kind, {k: v for k, v in args.items() if v is not None})
            try:
                self._conn.send_bytes(request.to_json())
                response = Response.from_json(self._conn.recv_bytes(MAX_RESPONSE_BYTES))
            except (EOFError, OSError) as exc:
                self._conn.close()
                self._conn = None
                raise MonitorError(f"the engine serving {self.location} went away ({exc or 'closed'})") \
                    from None
        if response.ok:
            return response.result
        error_type, message = response.error_type or "MonitorError", response.error or ""
        if error_type == "ExecutionNotFound":
            raise ExecutionNotFound(str(args.get("execution_id", "")), self.location)
        if error_type == "StateConflict":
            raise StateConflict(str(args.get("execution_id", "")), "", message)
        cls = _ERRORS.get(error_type)
        if cls is not None:
            raise cls(message)
        raise MonitorError(f"{error_type}: {message}")

    # --- JournalReader ---------------------------------------------------------------------------

    def list_executions(self, status: ExecutionStatus | str | None = None, *, search: str | None = None,
                        limit: int = 200, offset: int = 0, sort: str = "created",
                        descending: bool = True, parent: str | None = None) -> list[ExecutionRecord]:
        rows = self.request(MessageType.LIST_EXECUTIONS, status=None if status is None else str(status),
                            search=search, limit=limit, offset=offset, sort=check_sort(sort),
                            descending=descending, parent=parent)
        return [record_from_json(ExecutionRecord, row) for row in _list(rows)]

    def execution_record(self, execution_id: str) -> ExecutionRecord | None:
        row = self.request(MessageType.EXECUTION, execution_id=execution_id)
        return None if row is None else record_from_json(ExecutionRecord, row)

    def list_steps(self, execution_id: str, *, current_only: bool = True, offset: int = 0,
                   limit: int | None = None, status: StepStatus | str | None = None, after: str | None = None,
                   before: str | None = None, from_end: bool = False) -> list[StepRecord]:
        rows = self.request(MessageType.LIST_STEPS, execution_id=execution_id, current_only=current_only,
                            offset=offset, limit=limit, status=None if status is None else check_step_status(status),
                            after=after, before=before, from_end=from_end)
        return [record_from_json(StepRecord, row) for row in _list(rows)]

    def count_steps(self, execution_id: str, *, current_only: bool = True,
                    status: StepStatus | str | None = None) -> int:
        value = self.request(MessageType.COUNT_STEPS, execution_id=execution_id, current_only=current_only,
                             status=None if status is None else check_step_status(status))
        if not isinstance(value, int) or isinstance(value, bool):
            raise ProtocolError("a step count must be an integer")
        return value

    def step_index(self, execution_id: str, step_key: str, *, current_only: bool = True,
                   status: StepStatus | str | None = None) -> int | None:
        value = self.request(MessageType.STEP_INDEX, execution_id=execution_id, step_key=step_key,
                             current_only=current_only,
                             status=None if status is None else check_step_status(status))
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ProtocolError("a step index must be an integer or null")
        return value

    def list_attempts(self, execution_id: str, step_key: str | None = None) -> list[AttemptRecord]:
        rows = self.request(MessageType.LIST_ATTEMPTS, execution_id=execution_id, step_key=step_key)
        return [record_from_json(AttemptRecord, row) for row in _list(rows)]

    def list_runs(self, execution_id: str) -> list[RunRecord]:
        rows = self.request(MessageType.LIST_RUNS, execution_id=execution_id)
        return [record_from_json(RunRecord, row) for row in _list(rows)]

    def stats(self) -> dict[ExecutionStatus, int]:
        value = self.request(MessageType.STATS)
        if not isinstance(value, dict):
            raise ProtocolError("stats must be a JSON object")
        try:
            return {ExecutionStatus(k): int(v) for k, v in value.items()}
        except (TypeError, ValueError) as exc:
            raise ProtocolError(f"stats do not fit: {exc}") from None

    def list_definitions(self) -> list[DefinitionRecord]:
        return [record_from_json(DefinitionRecord, row) for row in _list(self.request(MessageType.LIST_DEFINITIONS))]

    def stored_values(self, execution_id: str | None = None, step_key: str | None = None, *,
                      tables_only: bool = False) -> list[StoredValue]:
        from .._stored import StoredValue

        rows = self.request(MessageType.STORED_VALUES, execution_id=execution_id, step_key=step_key,
                            tables_only=tables_only)
        found = [record_from_json(StoredValue, row) for row in _list(rows)]
        return [StoredValue(s.execution_id, s.step_key, s.file, s.size, s.kind, s.check, store=s.store, step=s.step)
                for s in found]

    def value_stores(self) -> list[str]:
        folders = _list(self.request(MessageType.VALUE_STORES))
        if not all(isinstance(folder, str) for folder in folders):
            raise ProtocolError("value stores must be a list of paths")
        return [str(folder) for folder in folders]

    # --- events and control ----------------------------------------------------------------------

    def subscribe(self, on_events: Callable[[list[Event], bool], None],
                  on_lost: Callable[[str], None] | None = None) -> Subscription:
        """Call ``on_events(events, resync)`` (on a background thread) with the engine's events for this
        journal, coalesced (the latest per step, at most 4 batches a second). ``resync`` says some
        were dropped: read the journal again."""
        conn = _connect(self.endpoint)
        try:
            conn.send_bytes(Request(0, MessageType.SUBSCRIBE).to_json())
            response = Response.from_json(conn.recv_bytes(MAX_RESPONSE_BYTES))
        except (EOFError, OSError) as exc:
            conn.close()
            raise MonitorError(f"the engine serving {self.location} went away ({exc or 'closed'})") from None
        if not response.ok:
            conn.close()
            raise MonitorError(f"subscribe refused: {response.error}")
        subscription = Subscription(conn, on_events, on_lost)
        self._subscriptions.append(subscription)
        return subscription

    def cancel(self, execution_id: str, *, origin: str | None = None) -> ExecutionStatus:
        """Stop the execution in the engine (its running steps' workers are killed); returns the
        status it had. It returns once the cancel is requested: the engine stops the execution in the
        background, so poll :meth:`execution_record` to see it end. ``origin`` says who asks, as the
        engine shows it (a notebook cell running the execution ends with "cancelled from <origin>");
        default ``"process <this pid>"``."""
        said = origin if origin is not None else f"process {os.getpid()}"
        return ExecutionStatus(self.request(MessageType.CANCEL, execution_id=execution_id, origin=said)["was"])

    def retry(self, execution_id: str, step_key: str) -> dict[str, Any]:
        """Run a failed step again in a new run of its execution (completed steps are reused); the reply
        as :meth:`restart`'s."""
        return self.act(MessageType.RETRY, execution_id=execution_id, step_key=step_key)

    def resume(self, execution_id: str) -> int | None:
        """Start the next run of an unfinished execution in the engine (it runs in the background);
        returns once that run has begun, with its number (None from an engine that does not say)."""
        reply = self.request(MessageType.RESUME, execution_id=execution_id)
        run = reply.get("run") if isinstance(reply, dict) else None
        return run if isinstance(run, int) and not isinstance(run, bool) else None

    def restart(self, execution_id: str) -> dict[str, Any]:
        """Have the engine run the execution again from scratch; returns once that run has begun:
        ``{"started": True, "run": N, "execution_id": ...}``."""
        return self.act(MessageType.RESTART, execution_id=execution_id)

    def rerun(self, execution_id: str, steps: list[str], after: bool = False) -> dict[str, Any]:
        """Have the engine run ``steps`` again (``after``: and every later one); the reply as
        :meth:`restart`'s, with ``"stale"``: reused steps after them that may depend on them."""
        return self.act(MessageType.RERUN, execution_id=execution_id, steps=list(steps), after=after)

    def fork(self, execution_id: str, from_step: str, new_id: str | None = None, **data: Any) -> dict[str, Any]:
        """Have the engine fork the execution from ``from_step`` (``data=``: a new input, as JSON); the
        reply as :meth:`restart`'s, with the new execution's id."""
        return self.act(MessageType.FORK, execution_id=execution_id, from_step=from_step, new_id=new_id, **data)

    def act(self, kind: MessageType, **args: Any) -> dict[str, Any]:
        """A control request that starts a run in the engine (resume with ``extend``/``trigger``, restart,
        rerun, fork, recover); the engine's reply: ``{"started", "run", "execution_id", "stale"}``."""
        reply = self.request(kind, **{name: value for name, value in args.items() if value is not None})
        if not isinstance(reply, dict):
            raise ProtocolError(f"a {kind.value} reply must be an object")
        return reply

    def progress(self, execution_id: str) -> RunProgress | None:
        value = self.request(MessageType.PROGRESS, execution_id=execution_id)
        return None if value is None else progress_from_json(value)

    def send_event(self, execution_id: str, name: str, payload: str, idempotency_key: str | None = None,
                   sender: str | None = None) -> bool:
        """Have the engine keep an event (``payload``: JSON text) for the execution and wake its body;
        False when that idempotency key was delivered already."""
        reply = self.request(MessageType.SEND_EVENT, execution_id=execution_id, name=name, payload=payload,
                             idempotency_key=idempotency_key, sender=sender)
        return bool(reply.get("sent")) if isinstance(reply, dict) else False

    def wake(self, execution_id: str) -> bool:
        """End the durable sleep the execution is in (in the engine); False when it was not sleeping."""
        reply = self.request(MessageType.WAKE, execution_id=execution_id)
        return bool(reply.get("woken")) if isinstance(reply, dict) else False

    def published(self, execution_id: str, key: str, after: int = -1) -> list[tuple[int, str]]:
        """``(seq, JSON text)`` of the values the execution published under ``key`` after ``after``."""
        rows = self.request(MessageType.PUBLISHED, execution_id=execution_id, key=key, start=after + 1)
        return [(int(seq), str(text)) for seq, text in rows]

    def pending_events(self, execution_id: str) -> list[PendingEvent]:
        """Events sent to the execution that no wait consumed yet, oldest first."""
        rows = self.request(MessageType.PENDING_EVENTS, execution_id=execution_id)
        return [PendingEvent(execution_id, int(seq), str(name), str(payload), datetime.fromtimestamp(float(sent_at)),
                             None if sender is None else str(sender))
                for seq, name, payload, sent_at, sender in rows]

    def live_output(self, execution_id: str, step_key: str) -> tuple[int, str] | None:
        value = self.request(MessageType.LIVE_OUTPUT, execution_id=execution_id, step_key=step_key)
        if value is None:
            return None
        if not isinstance(value, dict) or not isinstance(value.get("attempt"), int) \
                or not isinstance(value.get("text"), str):
            raise ProtocolError("a live output must be an object with 'attempt' and 'text'")
        return value["attempt"], value["text"]

    def delete(self, execution_id: str) -> None:
        """Remove a finished execution from the journal."""
        self.request(MessageType.DELETE, execution_id=execution_id)

    def garbage_collect(self, *, keep: int | None = None, older_than: float | None = None,
                        workflow: str | None = None, dry_run: bool = False,
                        min_age: float | None = None) -> dict[str, Any]:
        """Retention done by the engine (``zart.garbage_collect``): its report, as a JSON object."""
        reply = self.request(MessageType.GARBAGE_COLLECT, keep=keep, older_than=older_than, workflow=workflow,
                             dry_run=dry_run, min_age=min_age)
        if not isinstance(reply, dict):
            raise ProtocolError("a retention report must be a JSON object")
        return reply

    def close(self) -> None:
        for subscription in self._subscriptions:
            subscription.close()
        self._subscriptions = []
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ProtocolError("expected a JSON list")
    return value


def monitor(journal: str | os.PathLike[str]) -> MonitorClient | None:
    """A client of the live engine (another process) serving ``journal``, or None."""
    return MonitorClient.connect(Path(journal))
