"""An executor that runs attempts on threads of the driver, through the worker's own runner.

The test seam for the engine, replay and journal (no process to start, nothing to import twice);
fault tests keep real worker processes. Each attempt runs on a thread of its own, at most ``size``
at once. A thread cannot be killed: an attempt past its timeout, or cancelled, is reported at once
and its thread is abandoned (whatever it returns later is dropped). Nothing here crashes as a process
does, so ``CRASHED`` never occurs.
"""
from __future__ import annotations

import collections
import heapq
import itertools
import threading
import time

from .._errors import ExecutorClosed
from .base import Executor, Outcome, OutcomeConsumer, OutcomeKind, OutcomeSink, Task, outcome_of
from .worker import Runner


class InlineExecutor(Executor):
    """Runs tasks in threads of this process; a drop-in for the local pool in tests."""

    def __init__(self, workers: int, sink: OutcomeSink) -> None:
        self.size = workers
        self._sink = sink
        self._runner = Runner()
        self._cond = threading.Condition()
        self._queue: collections.deque[Task] = collections.deque()
        self._delayed: list[tuple[float, int, Task]] = []
        self._running: dict[int, tuple[Task, float | None]] = {}  # task id -> (task, deadline)
        self._counter = itertools.count()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="zart-inline-executor", daemon=True)
        self._thread.start()

    def submit(self, tasks: list[Task]) -> None:
        with self._cond:
            if self._closed:
                raise ExecutorClosed("the inline executor was shut down; submit to a new one")
            now = time.time()
            for task in tasks:
                if task.not_before > now:
                    heapq.heappush(self._delayed, (task.not_before, next(self._counter), task))
                else:
                    self._queue.append(task)
            self._cond.notify_all()

    def cancel(self, consumer: OutcomeConsumer) -> None:
        with self._cond:
            dropped = [task for task in self._queue if task.consumer is consumer]
            dropped += [entry[2] for entry in self._delayed if entry[2].consumer is consumer]
            dropped += [task for task, _ in self._running.values() if task.consumer is consumer]
            self._queue = collections.deque(t for t in self._queue if t.consumer is not consumer)
            self._delayed = [entry for entry in self._delayed if entry[2].consumer is not consumer]
            heapq.heapify(self._delayed)
            for task in dropped:
                self._running.pop(task.task_id, None)
            self._cond.notify_all()
        if dropped:
            now = time.time()
            self._sink([Outcome(task, OutcomeKind.CANCELLED, finished_at=now) for task in dropped])

    def shutdown(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            dropped = list(self._queue) + [entry[2] for entry in self._delayed]
            dropped += [task for task, _ in self._running.values()]
            self._queue.clear()
            self._delayed.clear()
            self._running.clear()
            self._cond.notify_all()
        if dropped:
            now = time.time()
            self._sink([Outcome(task, OutcomeKind.CANCELLED, error="the executor was shut down",
                                finished_at=now) for task in dropped])

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def idle(self) -> bool:
        with self._cond:
            return not self._queue and not self._delayed and not self._running

    @property
    def has_queued(self) -> bool:
        return bool(self._queue)

    # --- the scheduling thread ---------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            timed_out: list[Outcome] = []
            with self._cond:
                if self._closed:
                    return
                now = time.time()
                while self._delayed and self._delayed[0][0] <= now:
                    self._queue.append(heapq.heappop(self._delayed)[2])
                for task_id, (task, deadline) in list(self._running.items()):
                    if deadline is not None and now > deadline:
                        del self._running[task_id]
                        timed_out.append(Outcome(
                            task, OutcomeKind.TIMEOUT, error_type=OutcomeKind.TIMEOUT,
                            error=f"attempt ran past its timeout of {task.timeout:g}s (abandoned on its "
                                  "thread)", finished_at=now))
                while self._queue and len(self._running) < self.size:
                    task = self._queue.popleft()
                    task.started_at = now
                    task.worker = "inline"
                    deadline = now + task.timeout if task.timeout is not None else None
                    self._running[task.task_id] = (task, deadline)
                    threading.Thread(target=self._run, args=(task,), name=f"zart-inline-{task.step_key}",
                                     daemon=True).start()
                wake = [entry[0] for entry in self._delayed[:1]]
                wake += [deadline for _, deadline in self._running.values() if deadline is not None]
                if not timed_out:
                    self._cond.wait(None if not wake else max(0.0, min(wake) - time.time()))
            if timed_out:
                self._sink(timed_out)

    def _run(self, task: Task) -> None:
        reply = self._runner.run(task.wire(True))
        with self._cond:
            if self._running.pop(task.task_id, None) is None:
                return  # timed out, cancelled or shut down meanwhile: already reported
            self._cond.notify_all()
        self._sink([outcome_of(task, reply)])
