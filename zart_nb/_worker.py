"""A worker process: ``python -m zart_nb._worker FD``. Runs step functions sent by the driver.

Started with ``subprocess`` (fork+exec), not ``multiprocessing``: a fresh interpreter that never
re-imports the user's ``__main__`` (a notebook or a script without a ``__main__`` guard) and never
forks a kernel's threads. It talks to its driver over one end of a private socketpair.

Messages from the driver (pickled tuples):
  ("init", sys_path)                                      once
  ("run", task_id, fn_id, fn_blob | None, args_blob, execution_id, step_key, attempt)
Replies: ``None`` once when ready, then per task
  (task_id, ok, blob, preview, error_type, error_message, traceback)
"""
from __future__ import annotations

import asyncio
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


def _watch_parent(parent_pid: int) -> None:
    """Exit when the driver is gone, even while a step is busy (the pipe EOF is seen only when idle)."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent_pid:
            os._exit(0)


def _serve(conn: Connection) -> None:
    from . import _context, _serialization

    functions: dict[str, object] = {}
    conn.send_bytes(pickle.dumps(None, 5))  # ready: the driver starts its step clocks from here
    while True:
        try:
            message = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        if message[0] == "init":
            for entry in reversed(message[1]):
                if entry not in sys.path:
                    sys.path.insert(0, entry)
            continue
        _, task_id, fn_id, fn_blob, args_blob, execution_id, step_key, attempt = message
        try:
            fn = functions.get(fn_id)
            if fn is None:
                if fn_blob is None:
                    raise RuntimeError("driver did not send the step function (protocol error)")
                fn = _serialization.loads(fn_blob)
                if len(functions) >= FN_CACHE_SIZE:
                    functions.pop(next(iter(functions)))
                functions[fn_id] = fn
            args, kwargs = _serialization.loads(args_blob)
            token = _context.enter_step(execution_id, step_key, attempt)
            try:
                result = fn(*args, **kwargs)
                if inspect.isawaitable(result):
                    result = asyncio.run(_await(result))
            finally:
                _context.leave_step(token)
        except BaseException as exc:  # report everything; the driver decides about retries
            if isinstance(exc, (SystemExit, KeyboardInterrupt)) and not isinstance(exc, Exception):
                error_blob = None
            else:
                try:
                    error_blob = _serialization.dumps(exc)
                except Exception:
                    error_blob = None
            reply = (task_id, False, error_blob, None, type(exc).__qualname__, _message(exc),
                     traceback.format_exc())
        else:
            try:
                blob = _serialization.dumps(result)
                reply = (task_id, True, blob, _serialization.preview(result), None, None, None)
            except Exception as exc:
                reply = (task_id, False, None, None, "SerializationError",
                         f"the step returned a {type(result).__name__} that cannot be pickled: {exc}",
                         traceback.format_exc())
        conn.send_bytes(pickle.dumps(reply, 5))


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
