"""The local worker pool: warm worker processes, pipelined dispatch, timeouts and crash recovery.

One I/O thread owns the receiving side of every worker connection. Tasks are sent as soon as a
worker has room (``depth`` attempts in flight per worker, so a worker never waits for the driver),
each step function is sent to a worker once and then named by id, and outcomes are handed to the
engine in batches (whatever arrived together), which is what lets the journal group-commit.
"""
from __future__ import annotations

import collections
import heapq
import itertools
import os
import pickle
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection, wait as wait_for_ready
from pathlib import Path

from ._executors import Outcome, OutcomeSink, Task

DEPTH = 3
LARGE_MESSAGE = 64 * 1024  # sent only to an idle worker, so two full socket buffers never deadlock
_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)


def default_worker_count() -> int:
    env = os.environ.get("ZART_WORKERS")
    if env:
        try:
            count = int(env)
        except ValueError:
            raise ValueError(f"ZART_WORKERS must be a positive integer, got {env!r}") from None
        if count < 1:
            raise ValueError(f"ZART_WORKERS must be a positive integer, got {env!r}")
        return count
    return os.cpu_count() or 2


class _Worker:
    __slots__ = ("proc", "conn", "inflight", "functions", "name", "head_started", "ready")

    def __init__(self, index: int) -> None:
        parent_sock, child_sock = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_PARENT, env.get("PYTHONPATH")]))
        child_fd = child_sock.fileno()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "zart_nb._worker", str(child_fd)],
            pass_fds=[child_fd], stdin=subprocess.DEVNULL, env=env, close_fds=True)
        child_sock.close()
        self.conn = Connection(parent_sock.detach())
        self.conn.send_bytes(pickle.dumps(("init", [p for p in sys.path if p]), 5))
        self.inflight: collections.deque[Task] = collections.deque()
        self.functions: set[str] = set()
        self.name = f"worker-{index}:pid{self.proc.pid}"
        self.head_started = 0.0
        self.ready = False  # until its first message: start-up time is not counted against a step

    def kill(self) -> None:
        try:
            self.proc.kill()
        except OSError:
            pass
        try:
            self.conn.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


class LocalPool:
    """Worker processes kept warm for the life of the driver (or until ``shutdown``)."""

    def __init__(self, workers: int, sink: OutcomeSink, depth: int = DEPTH) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.size = workers
        self._sink = sink
        self._depth = depth
        self._lock = threading.Lock()
        self._queue: collections.deque[Task] = collections.deque()
        self._delayed: list[tuple[float, int, Task]] = []
        self._counter = itertools.count()
        self._names = itertools.count()
        self._workers = [_Worker(next(self._names)) for _ in range(workers)]
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="zart-pool-io", daemon=True)
        self._thread.start()

    # --- called from engine threads --------------------------------------------------------------

    def submit(self, tasks: list[Task]) -> None:
        now = time.time()
        wake = False
        with self._lock:
            if self._closed:
                raise RuntimeError("the worker pool was shut down")
            for task in tasks:
                if task.not_before > now:
                    heapq.heappush(self._delayed, (task.not_before, next(self._counter), task))
                    wake = True
                else:
                    self._queue.append(task)
                    # the I/O thread may be blocked with no deadline: it must learn of this timeout
                    wake = wake or task.timeout is not None
            self._dispatch_locked()
        if wake:
            self._wake()

    def cancel(self, execution_id: str) -> None:
        outcomes: list[Outcome] = []
        with self._lock:
            now = time.time()
            kept = collections.deque()
            for task in self._queue:
                (outcomes.append(Outcome(task, "cancelled", finished_at=now))
                 if task.execution_id == execution_id else kept.append(task))
            self._queue = kept
            delayed = []
            for entry in self._delayed:
                (outcomes.append(Outcome(entry[2], "cancelled", finished_at=now))
                 if entry[2].execution_id == execution_id else delayed.append(entry))
            heapq.heapify(delayed)
            self._delayed = delayed
            for index, worker in enumerate(self._workers):
                if any(task.execution_id == execution_id for task in worker.inflight):
                    outcomes.extend(self._replace_locked(index, "cancelled", cancel=execution_id))
            self._dispatch_locked()
        if outcomes:
            self._sink(outcomes)

    def shutdown(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            workers, self._workers = self._workers, []
        self._wake()
        for worker in workers:
            worker.kill()

    @property
    def pids(self) -> list[int]:
        with self._lock:
            return [worker.proc.pid for worker in self._workers]

    # --- dispatch --------------------------------------------------------------------------------

    def _dispatch_locked(self) -> None:
        queue = self._queue
        if not queue:
            return
        for worker in sorted(self._workers, key=lambda w: len(w.inflight)):
            while queue and len(worker.inflight) < self._depth:
                task = queue[0]
                send_fn = task.fn_id not in worker.functions
                size = len(task.args_blob) + (len(task.fn_blob) if send_fn else 0)
                if size > LARGE_MESSAGE and worker.inflight:
                    break
                queue.popleft()
                message = pickle.dumps(("run", task.task_id, task.fn_id,
                                        task.fn_blob if send_fn else None, task.args_blob,
                                        task.execution_id, task.step_key, task.attempt), 5)
                if not worker.inflight and worker.ready:
                    worker.head_started = time.time()
                worker.inflight.append(task)
                task.worker = worker.name
                try:
                    worker.conn.send_bytes(message)
                except OSError:
                    break  # the worker died; the I/O thread sees EOF and recovers its tasks
                if send_fn:
                    worker.functions.add(task.fn_id)
            if not queue:
                return

    def _replace_locked(self, index: int, kind: str, message: str | None = None,
                        cancel: str | None = None) -> list[Outcome]:
        """Kill a worker and start another in its place.

        Without ``cancel``, the attempt it was running fails with ``kind`` and those it had not
        started go back to the queue; with ``cancel``, that execution's attempts are cancelled and
        the others go back to the queue."""
        worker = self._workers[index]
        worker.kill()
        outcomes: list[Outcome] = []
        now = time.time()
        inflight = list(worker.inflight)
        worker.inflight.clear()
        requeue = []
        for position, task in enumerate(inflight):
            if cancel is not None and task.execution_id == cancel:
                outcomes.append(Outcome(task, "cancelled", finished_at=now))
            elif cancel is None and position == 0:
                task.started_at = worker.head_started
                outcomes.append(Outcome(task, kind, error=message, error_type=kind, finished_at=now))
            else:
                requeue.append(task)
        self._queue.extendleft(reversed(requeue))
        if not self._closed:
            self._workers[index] = _Worker(next(self._names))
        return outcomes

    # --- the I/O thread --------------------------------------------------------------------------

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass

    def _loop(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                timeout = self._next_deadline_locked()
                conns = {worker.conn: worker for worker in self._workers}
            ready = wait_for_ready(list(conns) + [self._wake_r], timeout)
            outcomes: list[Outcome] = []
            with self._lock:
                if self._closed:
                    return
                for conn in ready:
                    if conn == self._wake_r:
                        os.read(self._wake_r, 4096)
                        continue
                    worker = conns[conn]
                    if worker not in self._workers:
                        continue
                    self._receive_locked(worker, outcomes)
                self._release_delayed_locked()
                self._check_timeouts_locked(outcomes)
                self._dispatch_locked()
            if outcomes:
                try:
                    self._sink(outcomes)
                except Exception as exc:  # the engine must never kill the I/O thread
                    print(f"zart: internal error while handling step results: {exc!r}", file=sys.stderr)

    def _receive_locked(self, worker: _Worker, outcomes: list[Outcome]) -> None:
        try:
            while True:
                reply = pickle.loads(worker.conn.recv_bytes())
                now = time.time()
                if reply is None:  # the worker finished starting
                    worker.ready = True
                    worker.head_started = now
                    if not worker.conn.poll(0):
                        return
                    continue
                task = worker.inflight.popleft()
                task.started_at = worker.head_started
                worker.head_started = time.time()
                task_id, ok, blob, preview, error_type, error, tb = reply
                outcomes.append(Outcome(task, "ok" if ok else "error", blob, preview, error_type,
                                        error, tb, now))
                if not worker.conn.poll(0):
                    return
        except (EOFError, OSError):
            try:
                code = worker.proc.wait(timeout=1)  # reap it, so a kill by signal is reported as such
            except subprocess.TimeoutExpired:
                code = None
            detail = f"exit code {code}" if code is not None and code >= 0 else (
                f"killed by signal {-code}" if code is not None else "connection lost")
            index = self._workers.index(worker)
            outcomes.extend(self._replace_locked(
                index, "crashed", f"worker process {worker.proc.pid} died during the step ({detail})"))

    def _release_delayed_locked(self) -> None:
        now = time.time()
        while self._delayed and self._delayed[0][0] <= now:
            self._queue.append(heapq.heappop(self._delayed)[2])

    def _check_timeouts_locked(self, outcomes: list[Outcome]) -> None:
        now = time.time()
        for index, worker in enumerate(self._workers):
            if worker.inflight and worker.ready:
                head = worker.inflight[0]
                if head.timeout is not None and now - worker.head_started > head.timeout:
                    outcomes.extend(self._replace_locked(
                        index, "timeout", f"attempt ran past its timeout of {head.timeout:g}s; "
                                          f"worker process {worker.proc.pid} was killed"))

    def _next_deadline_locked(self) -> float | None:
        deadlines = []
        if self._delayed:
            deadlines.append(self._delayed[0][0])
        for worker in self._workers:
            if worker.ready and worker.inflight and worker.inflight[0].timeout is not None:
                deadlines.append(worker.head_started + worker.inflight[0].timeout)
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - time.time())
