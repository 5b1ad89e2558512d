"""A worker process: ``python -m zart_nb._executors.worker FD [REVOKE_FD]``. Runs step functions sent by the driver.

Started with ``subprocess`` (fork+exec), not ``multiprocessing``: a fresh interpreter that never
re-imports the user's ``__main__`` (a notebook or a script without a ``__main__`` guard) and never
forks a kernel's threads. It talks to its driver over one end of a private socketpair.

The driver's ``sys.path`` comes in the environment (``PATH_VARIABLE``). Messages from the driver
(pickled): ``("run", [WireTask, ...])`` on the socket; ``("revoke", [task id, ...])`` or
``("cancel", [task id, ...])`` or ``("halt", [task id])`` on the pipe ``REVOKE_FD``, read by a thread of
its own so that a revoke is answered while a step runs. A cancel is a revoke of attempts whose execution
was cancelled: if the step running then is one it names, the worker also halts (starts nothing more, and
waits to be killed) and says so in its answer (``WireRevoked.halted``), so the driver knows exactly what
it started. A halt (an attempt ran past its timeout by the driver's view) takes nothing back: the worker
halts if it runs that attempt, and otherwise answers with nothing and runs on.
Replies: ``None`` once when ready, then lists of ``WireReply`` in task order, with ``WireOutput``
(lines a running step printed) before the reply of their task, and a ``WireRevoked`` per revoke: the
attempts taken off the local queue (drained from the socket first), which will never run here. One
lock guards the queue: an attempt is either taken off it to run or revoked, never both. A reply
leaves at most ``REPLY_DELAY`` seconds after its step ended (a sender thread gathers the replies of
quick steps into one message, whatever the next step is doing).
What a step writes to descriptors 1 and 2 (C code, child processes) is captured too (``fdcapture``).
A task whose function the worker no longer has (``fn_blob`` None, not cached) is answered with
error type ``FUNCTION_MISSING``; the driver sends it again with the function. A revoked task's
function travels on with it, so the worker keeps that blob for the tasks after it.
"""
from __future__ import annotations

import collections
import functools
import inspect
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from .._serialization import cap_text
from . import capture, fdcapture
from .base import (
    FUNCTION_MISSING,
    PATH_VARIABLE,
    UNPICKLABLE_RESULT,
    WireImport,
    WireOutput,
    WireReply,
    WireRevoked,
    WireTask,
)
from .wire import FdConnection

FN_CACHE_SIZE = 512
_NOT_AWAITABLE = frozenset((int, float, str, bytes, bool, list, dict, tuple))  # skips isawaitable (~1 µs)
# Results that cannot hold an out-of-band buffer (an array): pickled as before, no buffer list (~150 ns)
_NO_BUFFERS = frozenset((int, float, str, bytes, bool, type(None)))
_TABLE_NAMES = frozenset(("DataFrame", "Table"))  # tested first (a type's name): no pandas import here
_NOT_ANNOUNCED = frozenset(("builtins", "__main__"))  # the driver has these (or loads them with the function)
_reply = functools.partial(tuple.__new__, WireReply)  # a C call: WireReply(...) costs ~0.5 µs a step more
REPLY_DELAY = 0.001
REVOKE_WAIT = 0.05  # a revoke that finds the worker receiving waits this long for what it receives


def _watch_parent(parent_pid: int) -> None:
    """Exit when the driver is gone, even while a step is busy (the pipe EOF is seen only when idle),
    taking along whatever the step started (the worker leads a process group of its own)."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent_pid:
            _exit_group()


def _exit_group() -> None:
    if os.getpgid(0) == os.getpid():
        try:
            os.killpg(0, signal.SIGKILL)
        except OSError:
            pass
    os._exit(0)


class Runner:
    """Runs one :class:`WireTask` in this process and answers with a :class:`WireReply`.

    Used without the socket loop too: by the inline executor (a thread of the driver) and by
    executors that run tasks inside other processes (a Dask worker)."""

    def __init__(self, live: Callable[[int, str, str], None] | None = None,
                 announce: Callable[[str], None] | None = None) -> None:
        from .. import _context, _serialization, _tables

        self._context = _context
        self._ser = _serialization
        self._writable = _tables.writable  # frames sent read-only (a loaded table, by value) made writable
        self._functions: dict[str, Callable[..., Any]] = {}
        self._blobs: dict[str, bytes] = {}  # functions that came with a revoked task, not loaded
        self._live = live  # (task id, stream, complete lines) as the step prints them
        self._announce = announce  # a module the driver will need for an output (once per output type)
        self._announced: set[type] = {int, float, str, bytes, bool, type(None)}  # the driver has these

    def run(self, task: WireTask) -> WireReply:
        task_id, fn_id, fn_blob, args_blob, execution_id, step_key, attempt, store = task
        ser = self._ser
        started = time.time()
        output: str | None = None
        try:
            fn = self._functions.get(fn_id)
            if fn is None:
                if fn_blob is None:
                    fn_blob = self._blobs.pop(fn_id, None)
                if fn_blob is None:
                    return WireReply(task_id, False, None, None, FUNCTION_MISSING, "", "", started, time.time())
                fn = ser.loads(fn_blob)
                if len(self._functions) >= FN_CACHE_SIZE:
                    self._functions.pop(next(iter(self._functions)))
                self._functions[fn_id] = fn
            args, kwargs = self._writable(*ser.loads(args_blob))
            live = self._live
            captured, capture_token = capture.begin(
                None if live is None else lambda stream, text: live(task_id, stream, text))
            descriptors = fdcapture.active
            if descriptors is not None:  # its poll thread ticks the capture (unfinished lines)
                descriptors.begin(captured)
            elif live is not None:  # steps on threads (inline, Dask): the process's ticker does
                from . import ticker  # (a pool worker never loads it)

                ticker.add(captured)
            token = self._context.enter_step(execution_id, step_key, attempt)
            try:
                result = fn(*args, **kwargs)
                if result is not None and type(result) not in _NOT_AWAITABLE and inspect.isawaitable(result):
                    import asyncio  # only async steps pay for it

                    result = asyncio.run(_await(result))
            finally:
                self._context.leave_step(token)
                capture.end(capture_token)
                if descriptors is not None:
                    descriptors.end(task)
                elif live is not None:
                    ticker.discard(captured)
                output = captured.close()
        except BaseException as exc:  # report everything; the driver decides about retries
            try:
                error_blob = ser.dumps(exc) if isinstance(exc, Exception) else None
            except Exception:
                error_blob = None
            return WireReply(task_id, False, error_blob, None, type(exc).__qualname__, cap_text(_message(exc)),
                             cap_text(_format_traceback(exc)), started, time.time(), output)
        preview: str | None = None
        buffers: list[Any] = []
        if type(result) not in self._announced and self._announce is not None:
            self._announce_modules(type(result), store is not None and type(result).__name__ in _TABLE_NAMES)
        if store is not None and type(result).__name__ in _TABLE_NAMES:  # a DataFrame: Parquet, not a pickle
            from .. import _tables, _values

            kind = _tables.kind_of(result)
            if kind is not None:
                try:
                    ref, preview = _values.encode_table(result, kind, store, execution_id, step_key)
                except Exception as exc:  # a full disk, a refused store: the step may succeed on a retry
                    return self._store_failed(task_id, result, store, exc, started, output)
                if ref is not None:
                    return _reply((task_id, True, ref, preview, None, None, None, started, time.time(), output))
        try:
            if store is None or type(result) in _NO_BUFFERS:  # the hot path: one len() decides below
                blob = ser.dumps(result)
            else:
                blob, buffers = ser.dumps_out_of_band(result)
        except Exception as exc:
            return WireReply(task_id, False, None, None, UNPICKLABLE_RESULT,
                             cap_text(f"the step returned a {type(result).__name__} that cannot be pickled: "
                                      f"{_text(exc)}"),
                             cap_text(_format_traceback(exc)), started, time.time(), output)
        if store is not None and (buffers or len(blob) > store[1]):
            from .. import _values

            try:
                blob, stored = _values.encode(result, blob, buffers, store)
            except Exception as exc:  # a full disk, a refused store: the step may succeed on a retry
                return self._store_failed(task_id, result, store, exc, started, output)
            if stored is not None:  # a table kept as a pickle keeps its note, with where it went
                preview = stored if preview is None else f"{preview} {stored[stored.rfind('[stored'):]}"
        return _reply((task_id, True, blob, preview or ser.quick_preview(result), None, None, None, started,
                       time.time(), output))

    def _announce_modules(self, kind: type, table: bool) -> None:
        """Name the modules the driver needs to load an output of type ``kind`` (a table's: its reader's
        too), before pickling and writing it: with numpy or pandas not yet imported in the driver, it
        imports them while this worker writes (and fsyncs) a large value, not after."""
        self._announced.add(kind)
        announce = self._announce
        assert announce is not None
        module = getattr(kind, "__module__", None)
        if isinstance(module, str) and module not in _NOT_ANNOUNCED:
            announce(module)
        if table:
            announce("pyarrow.parquet")

    @staticmethod
    def _store_failed(task_id: int, result: Any, store: tuple[str, int], exc: Exception, started: float,
                      output: str | None) -> WireReply:
        return WireReply(task_id, False, None, None, "ValueStoreError",
                         cap_text(f"its {type(result).__name__} output could not be written to the value "
                                  f"store {store[0]}: {type(exc).__name__}: {_text(exc)}"),
                         cap_text(_format_traceback(exc)), started, time.time(), output)

    def keep_function(self, fn_id: str, fn_blob: bytes) -> None:
        """Keep the function of a task that will not run here, for later tasks sent without it."""
        if fn_id not in self._functions:
            if len(self._blobs) >= FN_CACHE_SIZE:
                self._blobs.pop(next(iter(self._blobs)))
            self._blobs[fn_id] = fn_blob


class _Replies:
    """Replies on their way to the driver: gathered for at most ``REPLY_DELAY``, sent by a thread of
    their own so a long next step never holds back the reply of the step before it."""

    def __init__(self, conn: FdConnection) -> None:
        self._conn = conn
        self._cond = threading.Condition()
        self._items: list[tuple[Any, ...]] = []
        self._first = 0.0
        threading.Thread(target=self._loop, name="zart-worker-replies", daemon=True).start()

    def add_output(self, task_id: int, stream: str, text: str) -> None:
        """A step's complete lines, sent within ``REPLY_DELAY`` while it keeps running."""
        with self._cond:
            self._items.append(WireOutput(task_id, stream, text))
            if len(self._items) == 1:
                self._first = time.monotonic()
                self._cond.notify()

    def add(self, reply: WireReply, more_to_run: bool) -> None:
        with self._cond:
            # A plain tuple in WireReply's field order (the driver rebuilds it): a NamedTuple costs
            # ~1 µs more per reply to pickle and unpickle. WireOutput stays a NamedTuple: it is rare,
            # and its type is how the driver tells it from a reply.
            self._items.append(tuple(reply))
            if not more_to_run:  # nothing else to do: send now, no thread hop
                self._send_locked()
            elif len(self._items) == 1:
                self._first = time.monotonic()
                self._cond.notify()

    def add_import(self, module: str) -> None:
        """A module the driver needs for an output coming (``WireImport``), sent now."""
        with self._cond:
            self._items.append(WireImport(module))
            self._send_locked()

    def add_revoked(self, task_ids: list[int], halted: int | None = None) -> None:
        """A revoke's answer, sent now: the driver waits for it to hand those attempts to others."""
        with self._cond:
            self._items.append(WireRevoked(task_ids, halted))
            self._send_locked()

    def flush(self) -> None:
        with self._cond:
            self._send_locked()

    def _send_locked(self) -> None:
        if self._items:
            items, self._items = self._items, []
            try:
                self._conn.send_bytes(pickle.dumps(items, 5))
            except OSError:
                _exit_group()  # the driver is gone

    def _loop(self) -> None:
        with self._cond:
            while True:
                if not self._items:
                    self._cond.wait()
                    continue
                remaining = self._first + REPLY_DELAY - time.monotonic()
                if remaining > 0:
                    self._cond.wait(remaining)
                    continue
                self._send_locked()


class _Queue:
    """The attempts sent to this worker and not started yet, and who may read the socket.

    The main thread reads the socket; while it blocks there with nothing queued (``reading``), the
    revoke thread leaves the socket alone and waits (up to ``REVOKE_WAIT``) for the main thread to take
    in what it is receiving: the attempts a revoke names were sent before it, so they are on their way
    to the queue. Otherwise the revoke thread, under ``lock``, drains the socket first, so that every
    attempt sent before the revoke is on the queue when it looks."""

    __slots__ = ("conn", "pending", "lock", "absorbed", "reading", "running", "halted")

    def __init__(self, conn: FdConnection) -> None:
        self.conn = conn
        self.pending: collections.deque[WireTask] = collections.deque()
        self.lock = threading.Lock()
        self.absorbed = threading.Condition(self.lock)  # the main thread took in what it received
        self.reading = False
        self.running: WireTask | None = None  # the attempt started and not finished (the main thread's)
        self.halted = False  # a cancel named the running attempt: start nothing more

    def absorb(self, message: bytes) -> None:
        _kind, payload = pickle.loads(message)
        self.pending.extend(payload)

    def drain(self) -> None:
        """Take in every message already on the socket (``lock`` held, ``reading`` false)."""
        conn = self.conn
        while conn.poll(0):
            self.absorb(conn.recv_bytes())


def _serve_revokes(control: FdConnection, queue: _Queue, runner: Runner, replies: _Replies) -> None:
    while True:
        try:
            kind, task_ids = pickle.loads(control.recv_bytes())
        except (EOFError, OSError):
            return  # the driver is gone: the main thread sees it on the socket
        wanted = set(task_ids)
        removed: list[int] = []
        with queue.lock:
            if queue.reading:
                queue.absorbed.wait_for(lambda: not queue.reading, timeout=REVOKE_WAIT)
            if not queue.reading:
                try:
                    queue.drain()
                except (EOFError, OSError):
                    pass  # the main thread sees it too
            pending = queue.pending
            # a halt (a timeout) takes nothing off the queue: it only asks about the running attempt
            for _ in range(len(pending) if kind != "halt" else 0):  # in place: the main thread holds this deque
                task = pending.popleft()
                if task[0] in wanted:
                    removed.append(task[0])
                    if task[2] is not None:  # it carried its function: later tasks may rely on it
                        runner.keep_function(task[1], task[2])
                else:
                    pending.append(task)
            running = queue.running
            halted = None
            if kind != "revoke" and running is not None and running[0] in wanted:
                queue.halted = True  # under the lock: the main thread starts nothing after it
                halted = running[0]
            # Sent under the lock: a cancel takes attempts from the middle of the queue, so the reply
            # of one behind them must not reach the driver before this answer (it matches in order).
            replies.add_revoked(removed, halted)


def _serve(conn: FdConnection, control: FdConnection | None = None) -> None:
    replies = _Replies(conn)
    runner = Runner(live=replies.add_output, announce=replies.add_import)
    pid = os.getpid()
    queue = _Queue(conn)
    pending = queue.pending
    lock = queue.lock
    if control is not None:
        threading.Thread(target=_serve_revokes, args=(control, queue, runner, replies),
                         name="zart-worker-revokes", daemon=True).start()

    conn.send_bytes(pickle.dumps(None, 5))  # ready: the driver starts its step clocks from here
    while True:
        try:
            with lock:
                halted = queue.halted
                task = pending.popleft() if pending and not halted else None
                queue.running = task
                queue.reading = task is None and not halted
            if halted:  # a cancel named the attempt it ran: the driver kills this worker
                replies.flush()
                threading.Event().wait()
            if task is None:
                replies.flush()  # nothing left to run: no reason to make the driver wait
                message = conn.recv_bytes()
                with lock:
                    queue.reading = False
                    queue.absorb(message)
                    queue.drain()
                    queue.absorbed.notify_all()
                continue
        except (EOFError, OSError):
            return
        reply = runner.run(task)
        if os.getpid() != pid:  # the step forked and this is the child: it must not serve
            os._exit(0)
        with lock:
            queue.running = None
            if not pending:
                try:
                    queue.drain()
                except (EOFError, OSError):
                    return
            more = bool(pending)
        replies.add(reply, more_to_run=more)


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _text(exc: BaseException) -> str:
    """``str(exc)``, which runs user code and may itself fail."""
    try:
        return str(exc)
    except BaseException as error:  # noqa: BLE001 - any failure of user code is reported, not raised
        return f"<str() of the {type(exc).__name__} raised {type(error).__name__}>"


def _message(exc: BaseException) -> str:
    text = _text(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _format_traceback(exc: BaseException) -> str:
    try:
        return traceback.format_exc()
    except BaseException:  # noqa: BLE001 - an exception whose __str__ fails breaks the formatter
        return "".join(traceback.format_tb(exc.__traceback__)) + _message(exc) + "\n"


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Jupyter signals the kernel's whole process group
    for entry in reversed(os.environ.pop(PATH_VARIABLE, "").split(os.pathsep)):
        if entry and entry not in sys.path:
            sys.path.insert(0, entry)
    parent_pid = os.getppid()
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    os.set_inheritable(int(sys.argv[1]), False)  # a step's children must not keep the driver's socket
    conn = FdConnection(int(sys.argv[1]))
    fdcapture.install()  # one step at a time here: descriptor output is the running step's
    control = None
    if len(sys.argv) > 2:
        os.set_inheritable(int(sys.argv[2]), False)  # not for what a step starts
        control = FdConnection(int(sys.argv[2]))
    _serve(conn, control)
    _exit_group()  # the driver closed the connection: nothing this worker started outlives it


if __name__ == "__main__":
    main()
