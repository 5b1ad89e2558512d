"""A worker process: ``python -m zart_nb._worker FD``. Runs step functions sent by the driver.

Started with ``subprocess`` (fork+exec), not ``multiprocessing``: a fresh interpreter that never
re-imports the user's ``__main__`` (a notebook or a script without a ``__main__`` guard) and never
forks a kernel's threads. It talks to its driver over one end of a private socketpair.

Messages from the driver (pickled tuples):
  ("init", sys_path)                                                        once
  ("run", [(task_id, fn_id, fn_blob | None, args_blob, execution_id, step_key, attempt), ...])
Replies: ``None`` once when ready, then lists of
  (task_id, ok, blob, preview, error_type, error_message, traceback, started, finished)
in task order. Replies of quick steps are gathered for up to ``REPLY_DELAY`` seconds; a slow step's
reply leaves as soon as it is done.
"""
from __future__ import annotations

import asyncio
import collections
import inspect
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection

FN_CACHE_SIZE = 512
REPLY_DELAY = 0.001


def _watch_parent(parent_pid: int) -> None:
    """Exit when the driver is gone, even while a step is busy (the pipe EOF is seen only when idle)."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent_pid:
            os._exit(0)


class _Runner:
    def __init__(self) -> None:
        from . import _context, _serialization

        self._context = _context
        self._ser = _serialization
        self._functions: dict[str, object] = {}

    def run(self, task: tuple) -> tuple:
        task_id, fn_id, fn_blob, args_blob, execution_id, step_key, attempt = task
        ser = self._ser
        started = time.time()
        try:
            fn = self._functions.get(fn_id)
            if fn is None:
                if fn_blob is None:
                    raise RuntimeError("driver did not send the step function (protocol error)")
                fn = ser.loads(fn_blob)
                if len(self._functions) >= FN_CACHE_SIZE:
                    self._functions.pop(next(iter(self._functions)))
                self._functions[fn_id] = fn
            args, kwargs = ser.loads(args_blob)
            token = self._context.enter_step(execution_id, step_key, attempt)
            try:
                result = fn(*args, **kwargs)
                if inspect.isawaitable(result):
                    result = asyncio.run(_await(result))
            finally:
                self._context.leave_step(token)
        except BaseException as exc:  # report everything; the driver decides about retries
            try:
                error_blob = ser.dumps(exc) if isinstance(exc, Exception) else None
            except Exception:
                error_blob = None
            return (task_id, False, error_blob, None, type(exc).__qualname__, _message(exc),
                    traceback.format_exc(), started, time.time())
        try:
            blob = ser.dumps(result)
        except Exception as exc:
            return (task_id, False, None, None, "SerializationError",
                    f"the step returned a {type(result).__name__} that cannot be pickled: {exc}",
                    traceback.format_exc(), started, time.time())
        return (task_id, True, blob, ser.preview(result), None, None, None, started, time.time())


def _serve(conn: Connection) -> None:
    runner = _Runner()
    pending: collections.deque[tuple] = collections.deque()

    def absorb(message: bytes) -> None:
        kind, payload = pickle.loads(message)
        if kind == "init":
            for entry in reversed(payload):
                if entry not in sys.path:
                    sys.path.insert(0, entry)
        else:
            pending.extend(payload)

    conn.send_bytes(pickle.dumps(None, 5))  # ready: the driver starts its step clocks from here
    while True:
        try:
            if not pending:
                absorb(conn.recv_bytes())
            while conn.poll(0):
                absorb(conn.recv_bytes())
        except (EOFError, OSError):
            return
        replies: list[tuple] = []
        gathering_since = time.monotonic()
        while pending:
            replies.append(runner.run(pending.popleft()))
            if not pending:
                while conn.poll(0):
                    absorb(conn.recv_bytes())
            if not pending or time.monotonic() - gathering_since >= REPLY_DELAY:
                conn.send_bytes(pickle.dumps(replies, 5))
                replies = []
                gathering_since = time.monotonic()


async def _await(awaitable):
    return await awaitable


def _message(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Jupyter signals the kernel's whole process group
    parent_pid = os.getppid()
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    conn = Connection(int(sys.argv[1]))
    _serve(conn)


if __name__ == "__main__":
    main()
