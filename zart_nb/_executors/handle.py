"""The driver's handle on one worker process (``_Worker``): starting it (its socket, its revoke pipe, its
process group), killing it, and what the pool knows of it: the attempts sent to it and not answered
(``inflight``, in the order it runs them), when the one at their head started by the driver's view, and
the state of the take-back protocol (``takeback``) for it. Only the pool's lock holder changes it.
"""
from __future__ import annotations

import collections
import os
import pickle
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from .base import PATH_VARIABLE, Task
from .wire import FdConnection

BUSY_WINDOW = 64 * 1024
SOCKET_BUFFER = 4 * BUSY_WINDOW
_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)


class _Worker:
    __slots__ = ("proc", "conn", "control", "inflight", "functions", "name", "head_started", "ready",
                 "unanswered", "revoking", "cancelled", "cancel_deadline", "halting", "halt_answer",
                 "halt_deadline")

    def __init__(self, index: int, umask: Callable[[], int] | None) -> None:
        parent_sock, child_sock = socket.socketpair()
        for sock in (parent_sock, child_sock):  # comfortably above BUSY_WINDOW on every platform
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_PARENT, env.get("PYTHONPATH")]))
        # The driver's import path travels in the environment, not as a first message: nothing is
        # sent until a task is, and every send copes with a worker that died at any moment.
        env[PATH_VARIABLE] = os.pathsep.join(p for p in sys.path if p)
        child_fd = child_sock.fileno()
        revoke_r, revoke_w = os.pipe()  # revokes: read by a thread of the worker, even mid-step
        # A process group of its own: killing the group also ends whatever a step started.
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "zart_nb._executors.worker", str(child_fd), str(revoke_r)],
                pass_fds=[child_fd, revoke_r], stdin=subprocess.DEVNULL, env=env, close_fds=True,
                process_group=0, umask=-1 if umask is None else umask())
        except BaseException:
            os.close(revoke_w)
            parent_sock.close()
            raise
        finally:
            child_sock.close()
            os.close(revoke_r)
        self.conn = FdConnection(parent_sock.detach())
        self.control = FdConnection(revoke_w)
        self.inflight: collections.deque[Task] = collections.deque()
        self.functions: set[str] = set()
        self.name = f"worker-{index}:pid{self.proc.pid}"
        self.head_started = 0.0
        self.ready = False  # until its first message: start-up time is not counted against a step
        self.unanswered = 0  # bytes sent for attempts it has not answered yet
        self.revoking = 0  # revokes (and cancels) sent whose answer has not come back yet
        # Attempts it holds whose execution was cancelled (their CANCELLED outcome was delivered then):
        # asked back with a cancel; whatever the worker says of them later delivers nothing.
        self.cancelled: set[int] = set()
        self.cancel_deadline = 0.0  # a cancel named the attempt it ran: killed then, unless it answered
        # A halt asked about ``halting``, the head past its timeout: its answer is the ``halt_answer``-th
        # revoke answer from now (they come in the order sent); killed at ``halt_deadline`` if none came.
        self.halting: Task | None = None
        self.halt_answer = 0
        self.halt_deadline = 0.0

    def ask(self, kind: str, task_ids: list[int]) -> None:
        """Send a ``revoke``, ``cancel`` or ``halt`` naming ``task_ids`` on the control pipe; its answer
        (``WireRevoked``) comes back on the socket, in the order the requests were sent. A worker that
        died meanwhile is left to the I/O thread, which sees its EOF and recovers what it held."""
        self.revoking += 1
        try:
            self.control.send_bytes(pickle.dumps((kind, task_ids), 5))
        except OSError:
            pass

    def kill(self) -> None:
        self.signal_kill()
        self.reap()

    def kill_and_read(self) -> list[bytes]:
        """Kill the worker (and what its step started) and wait for it, then read every whole message it
        sent that the driver had not read: all it said before it died, with nothing more to come. Its
        ends stay open (``kill`` closes them). Only the pool's I/O thread, the one reader of its socket."""
        self._signal()
        self.reap()
        messages: list[bytes] = []
        try:
            while self.conn.poll(0):
                messages.append(self.conn.recv_bytes())
        except (EOFError, OSError):  # the end of what it sent (a message cut short by the kill is dropped)
            pass
        return messages

    def signal_kill(self) -> None:
        """Kill the worker and any process its step started, and close its ends; ``reap`` waits for it."""
        self._signal()
        for conn in (self.conn, self.control):
            try:
                conn.close()
            except OSError:
                pass

    def _signal(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            try:
                self.proc.kill()
            except OSError:
                pass

    def reap(self) -> None:
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def kill_all(workers: list[_Worker]) -> None:
    """Kill every worker, then wait for them: their exits (freeing what each held) overlap."""
    for worker in workers:
        worker.signal_kill()
    for worker in workers:
        worker.reap()
