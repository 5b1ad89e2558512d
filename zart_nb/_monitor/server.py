"""The monitor server: while an engine holds a journal, other processes read and control it here.

One thread accepts on a Unix socket in a private (0700) directory; each connection gets a thread that
checks the authkey (HMAC challenge, no pickle), then answers JSON requests with
``send_bytes``/``recv_bytes`` only. Reads go through ``lend``: a reader on a DuckDB cursor of their own, lent
only while the engine holds the journal, so a client never opens or keeps the file; the steps recorded
but not yet folded into DuckDB are folded first (what the writer thread would do within 50 ms), so a
read has every step an event reported. A cancel is answered once requested, never waiting for the
execution to stop. A ``subscribe``
turns the connection into an event stream: the engine's events are buffered (the latest per step,
bounded) and sent at most every ``COALESCE`` seconds, so a slow client never slows the engine.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import struct
import tempfile
import threading
from collections.abc import Callable, Iterable
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection, Listener, answer_challenge, deliver_challenge
from pathlib import Path
from typing import Any

from .._errors import MonitorError, ZartError
from .._events import Event, EventBus, ExecutionEvent
from .._reader import JournalReader, check_sort
from .._status import ExecutionStatus
from . import endpoint as endpoint_file
from . import jsonvalue
from .control import Control
from .protocol import (
    MAX_REQUEST_BYTES,
    PROTOCOL_VERSION,
    EventBatch,
    MessageType,
    ProtocolError,
    Request,
    Response,
    progress_to_json,
    record_to_json,
)

logger = logging.getLogger("zart_nb")

PEER = "_peer"  # set by the server on a handover request: its sender's [pid, uid]
COALESCE = 0.25
MAX_PENDING_EVENTS = 20_000
MAX_PAGE = 5_000
POLL = 0.25


def _arg(args: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = ..., *,
         maximum: int | None = None) -> Any:
    if name not in args or args[name] is None:
        if default is ...:
            raise ProtocolError(f"the request needs {name!r}")
        return default
    value = args[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise ProtocolError(f"{name!r} has the wrong type ({type(value).__name__})")
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ProtocolError(f"{name!r} must not be negative")
        if maximum is not None:
            value = min(value, maximum)
    if isinstance(value, str) and len(value) > 10_000:
        raise ProtocolError(f"{name!r} is too long")
    return value


class _Subscription:
    """The events one subscriber has not been sent yet: the latest per (execution, step)."""

    def __init__(self, journal: str, live_ids: Iterable[str]) -> None:
        self._journal = journal
        self._mine = set(live_ids)
        self._pending: dict[tuple[str, str | None], Event] = {}
        self._overflow = False
        self._cond = threading.Condition()

    def offer(self, event: Event) -> None:  # on engine threads: keep it cheap
        if isinstance(event, ExecutionEvent):
            if event.journal != self._journal:
                return
            self._mine.add(event.execution_id)
        elif event.execution_id not in self._mine:
            return
        key = (event.execution_id, event.step_key)
        with self._cond:
            pending = self._pending
            if len(pending) >= MAX_PENDING_EVENTS and key not in pending and event.kind == "step":
                self._overflow = True
                return
            was_empty = not pending
            pending[key] = event
            if was_empty:
                self._cond.notify()

    def seed(self, events: Iterable[Event]) -> None:
        """What is in flight already (listed after :meth:`offer` began to receive): sent before what was
        offered since, which is newer (an execution's end clears its steps in flight on the client); a
        newer event of the same step wins."""
        with self._cond:
            seeded: dict[tuple[str, str | None], Event] = {}
            for event in events:
                self._mine.add(event.execution_id)
                seeded[(event.execution_id, event.step_key)] = event
            seeded.update(self._pending)
            self._pending = seeded
            if self._pending:
                self._cond.notify()

    def take(self, timeout: float) -> EventBatch | None:
        with self._cond:
            if not self._pending and not self._overflow:
                self._cond.wait(timeout)
            if not self._pending and not self._overflow:
                return None
            pending, self._pending = self._pending, {}
            overflow, self._overflow = self._overflow, False
        return EventBatch([event.to_dict() for event in pending.values()], overflow)


class MonitorServer:
    """Serves one journal's reader, event stream and control until :meth:`stop`."""

    def __init__(self, journal_path: str | os.PathLike[str], control: Control, *,
                 lend: Callable[[], contextlib.AbstractContextManager[JournalReader | None]], bus: EventBus,
                 live_ids: Callable[[], Iterable[str]],
                 in_flight: Callable[[], Iterable[Event]] = tuple) -> None:
        self.journal_path = str(Path(journal_path).expanduser().resolve())
        self._control = control
        self._lend = lend
        self._bus = bus
        self._live_ids = live_ids
        self._in_flight = in_flight
        self._stopped = threading.Event()
        self._connections: set[Connection] = set()
        self._lock = threading.Lock()
        self._dir = tempfile.mkdtemp(prefix="zart-")  # 0700: nobody else reaches the socket
        self.address = os.path.join(self._dir, "monitor.sock")
        self._key = endpoint_file.new_key()
        self._listener = Listener(self.address, family="AF_UNIX")
        os.chmod(self.address, 0o600)
        self.endpoint = endpoint_file.write(self.journal_path, self.address, self._key)
        self._thread = threading.Thread(target=self._accept_loop, name="zart-monitor", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return not self._stopped.is_set()

    def stop(self) -> None:
        """Stop advertising and serving. Never waits for a request in progress (it may hold the
        journal's locks' other side); those threads end at their next step."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        endpoint_file.remove(self.journal_path, self.endpoint)
        with contextlib.suppress(Exception):  # wake the accept loop
            Client(self.address, family="AF_UNIX").close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            _shutdown(conn)
        with contextlib.suppress(Exception):
            self._listener.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    # --- connections -----------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                conn = self._listener.accept()
            except OSError:
                if self._stopped.is_set():
                    return
                continue
            if self._stopped.is_set():
                conn.close()
                return
            threading.Thread(target=self._serve, args=(conn,), name="zart-monitor-conn", daemon=True).start()

    def _serve(self, conn: Connection) -> None:
        with self._lock:
            self._connections.add(conn)
        try:
            try:
                key = bytes.fromhex(self._key)
                deliver_challenge(conn, key)  # as Listener(authkey=) does: both sides prove the key
                answer_challenge(conn, key)
            except (AuthenticationError, OSError, EOFError):
                return  # a wrong key: the client has been told by the challenge; nothing else is said
            while not self._stopped.is_set():
                if not conn.poll(POLL):
                    continue
                try:
                    data = conn.recv_bytes(MAX_REQUEST_BYTES)
                except EOFError:
                    return
                except OSError:  # longer than MAX_REQUEST_BYTES: the rest is unread, so the stream ends
                    _send(conn, Response.failure(None, ProtocolError(
                        f"message longer than {MAX_REQUEST_BYTES} bytes; connection closed")))
                    return
                try:
                    request = Request.from_json(data)
                except ProtocolError as exc:
                    _send(conn, Response.failure(None, exc))
                    continue
                if request.type is MessageType.SUBSCRIBE:
                    self._stream(conn, request)
                    return
                if request.type is MessageType.HANDOVER:  # who sends it, as the kernel says (not the client)
                    request = Request(request.id, request.type, {**request.args, PEER: _peer(conn)})
                if not _send(conn, self._handle(request)):
                    return
        except Exception:  # a connection's failure never reaches the engine
            logger.debug("zart: monitor connection failed", exc_info=True)
        finally:
            with self._lock:
                self._connections.discard(conn)
            conn.close()

    def _stream(self, conn: Connection, request: Request) -> None:
        subscription = _Subscription(self.journal_path, self._live_ids())
        unsubscribe = self._bus.subscribe(subscription.offer)
        subscription.seed(self._in_flight())  # steps scheduled before the client came
        try:
            if not _send(conn, Response(request.id, True, {"subscribed": True})):
                return
            while not self._stopped.is_set():
                batch = subscription.take(COALESCE)
                if batch is not None and not _send(conn, batch):
                    return
                if conn.poll(0):  # the client speaks only to leave
                    with contextlib.suppress(EOFError, OSError):
                        conn.recv_bytes(MAX_REQUEST_BYTES)
                    return
                if batch is not None:
                    self._stopped.wait(COALESCE)
        finally:
            unsubscribe()

    # --- requests --------------------------------------------------------------------------------

    def _handle(self, request: Request) -> Response:
        try:
            return Response(request.id, True, self._result(request))
        except ZartError as exc:
            return Response.failure(request.id, exc)
        except Exception as exc:
            logger.warning("zart: monitor request %s failed", request.type.value, exc_info=True)
            return Response(request.id, False, None, "MonitorError", f"internal error: {type(exc).__name__}: {exc}")

    def _result(self, request: Request) -> Any:
        kind, args = request.type, request.args
        if kind is MessageType.PING:
            return {"pid": os.getpid(), "journal": self.journal_path, "version": PROTOCOL_VERSION}
        if kind is MessageType.CANCEL:
            return self._control.cancel(_arg(args, "execution_id", str), _arg(args, "origin", str, None))
        if kind is MessageType.RETRY:
            return self._control.retry(_arg(args, "execution_id", str), _arg(args, "step_key", str))
        if kind is MessageType.RESUME:
            return self._control.resume(_arg(args, "execution_id", str), _arg(args, "extend", (int, float), None),
                                        _arg(args, "trigger", str, None))
        if kind is MessageType.RESTART:
            return self._control.restart(_arg(args, "execution_id", str))
        if kind is MessageType.RERUN:
            steps = _arg(args, "steps", list)
            if not steps or len(steps) > 10_000 or \
                    not all(isinstance(key, str) and len(key) <= 10_000 for key in steps):
                raise ProtocolError("'steps' must be a non-empty list of step keys")
            return self._control.rerun(_arg(args, "execution_id", str), steps,
                                       bool(_arg(args, "after", bool, False)))
        if kind is MessageType.FORK:
            return self._control.fork(_arg(args, "execution_id", str), _arg(args, "from_step", str),
                                      _arg(args, "new_id", str, None), args["data"] if "data" in args else ...)
        if kind is MessageType.RECOVER:
            return self._control.recover()
        if kind is MessageType.DELETE:
            return self._control.delete(_arg(args, "execution_id", str))
        if kind is MessageType.GARBAGE_COLLECT:
            return self._control.garbage_collect(
                keep=_arg(args, "keep", int, None), older_than=_arg(args, "older_than", (int, float), None),
                workflow=_arg(args, "workflow", str, None), dry_run=_arg(args, "dry_run", bool, False),
                min_age=_arg(args, "min_age", (int, float), None))
        if kind is MessageType.PROGRESS:
            progress = self._control.progress(_arg(args, "execution_id", str))
            return None if progress is None else progress_to_json(progress)
        if kind is MessageType.SEND_EVENT:
            name = _arg(args, "name", str)
            payload = jsonvalue.parse(_arg(args, "payload", str), f"the payload of event {name!r}")
            return {"sent": self._control.send_event(
                _arg(args, "execution_id", str), name, payload,
                _arg(args, "idempotency_key", str, None), _arg(args, "sender", str, None))}
        if kind is MessageType.HANDOVER:
            pid, peer = _arg(args, "pid", int), args.get(PEER)
            if peer is not None and tuple(peer) != (pid, os.getuid()):
                raise MonitorError(f"a handover is asked only by the process that needs the journal: the request "
                                   f"names pid {pid}, its sender is pid {peer[0]} (uid {peer[1]})")
            return self._control.handover(pid)
        if kind is MessageType.WAKE:
            return {"woken": self._control.wake(_arg(args, "execution_id", str))}
        if kind is MessageType.PUBLISHED:
            return [list(row) for row in self._control.published(
                _arg(args, "execution_id", str), _arg(args, "key", str), _arg(args, "start", int, 0) - 1)]
        if kind is MessageType.PENDING_EVENTS:
            return [list(row) for row in self._control.pending_events(_arg(args, "execution_id", str))]
        if kind is MessageType.LIVE_OUTPUT:
            found = self._control.live_output(_arg(args, "execution_id", str), _arg(args, "step_key", str))
            return None if found is None else {"attempt": found[0], "text": found[1]}
        with self._lend() as reader:
            if reader is None or self._stopped.is_set():
                raise MonitorError(f"the engine is releasing {self.journal_path}; read the file instead")
            return self._live(kind, self._read(reader, kind, args))

    def _live(self, kind: MessageType, result: Any) -> Any:
        """A running execution's counts as its run knows them: the file has only its finished steps."""
        if kind is MessageType.LIST_EXECUTIONS or (kind is MessageType.EXECUTION and result is not None):
            rows = result if kind is MessageType.LIST_EXECUTIONS else [result]
            for row in rows:
                if row.get("status") == ExecutionStatus.RUNNING.value:
                    progress = self._control.progress(row["execution_id"])
                    if progress is not None:
                        row.update(steps_total=progress.total, steps_completed=progress.done_steps,
                                   steps_failed=progress.failed, steps_running=progress.running)
        elif kind is MessageType.LIST_RUNS and result:
            last = result[-1]
            if last.get("status") == ExecutionStatus.RUNNING.value:
                progress = self._control.progress(last["execution_id"])
                if progress is not None and progress.run_number == last.get("run_number"):
                    last.update(executed=progress.executed, reused=progress.reused)
        return result

    @staticmethod
    def _read(reader: JournalReader, kind: MessageType, args: dict[str, Any]) -> Any:
        if kind is MessageType.LIST_EXECUTIONS:
            records = reader.list_executions(_arg(args, "status", str, None), search=_arg(args, "search", str, None),
                                             limit=_arg(args, "limit", int, 200, maximum=MAX_PAGE),
                                             offset=_arg(args, "offset", int, 0),
                                             sort=check_sort(_arg(args, "sort", str, "created")),
                                             descending=_arg(args, "descending", bool, True),
                                             parent=_arg(args, "parent", str, None))
            return [record_to_json(r) for r in records]
        if kind is MessageType.EXECUTION:
            execution_id = _arg(args, "execution_id", str)
            record = reader.execution_record(execution_id)
            return None if record is None else record_to_json(record)
        if kind is MessageType.LIST_STEPS:
            steps = reader.list_steps(_arg(args, "execution_id", str),
                                      current_only=_arg(args, "current_only", bool, True),
                                      offset=_arg(args, "offset", int, 0),
                                      limit=_arg(args, "limit", int, MAX_PAGE, maximum=MAX_PAGE),
                                      status=_arg(args, "status", str, None), after=_arg(args, "after", str, None),
                                      before=_arg(args, "before", str, None),
                                      from_end=_arg(args, "from_end", bool, False))
            return [record_to_json(s) for s in steps]
        if kind is MessageType.COUNT_STEPS:
            return reader.count_steps(_arg(args, "execution_id", str),
                                      current_only=_arg(args, "current_only", bool, True),
                                      status=_arg(args, "status", str, None))
        if kind is MessageType.STEP_INDEX:
            return reader.step_index(_arg(args, "execution_id", str), _arg(args, "step_key", str),
                                     current_only=_arg(args, "current_only", bool, True),
                                     status=_arg(args, "status", str, None))
        if kind is MessageType.LIST_ATTEMPTS:
            return [record_to_json(a) for a in reader.list_attempts(_arg(args, "execution_id", str),
                                                                    _arg(args, "step_key", str, None))]
        if kind is MessageType.LIST_RUNS:
            return [record_to_json(r) for r in reader.list_runs(_arg(args, "execution_id", str))]
        if kind is MessageType.STATS:
            return {status.value: count for status, count in reader.stats().items()}
        if kind is MessageType.LIST_DEFINITIONS:
            return [record_to_json(d) for d in reader.list_definitions()]
        if kind is MessageType.STORED_VALUES:
            return [record_to_json(s) for s in reader.stored_values(
                _arg(args, "execution_id", str, None), _arg(args, "step_key", str, None),
                tables_only=_arg(args, "tables_only", bool, False))]
        if kind is MessageType.VALUE_STORES:
            return reader.value_stores()
        raise ProtocolError(f"{kind.value!r} is not a request")


def _send(conn: Connection, message: Response | EventBatch) -> bool:
    try:
        conn.send_bytes(message.to_json())
        return True
    except (OSError, ValueError):
        return False


def _peer(conn: Connection) -> list[int] | None:
    """``[pid, uid]`` of the process at the other end of ``conn`` (Linux ``SO_PEERCRED``), else None."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    try:
        sock = socket.socket(fileno=os.dup(conn.fileno()))
        try:
            pid, uid, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i")))
        finally:
            sock.close()
    except (OSError, ValueError):
        return None
    return [pid, uid]


def _shutdown(conn: Connection) -> None:
    """Wake a thread blocked on ``conn`` (closing a file descriptor does not)."""
    with contextlib.suppress(OSError, ValueError):
        sock = socket.socket(fileno=os.dup(conn.fileno()))
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

