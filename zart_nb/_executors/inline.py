"""An executor that runs attempts on threads of the driver, through the worker's own runner.

The test seam for the engine, replay and journal (no process to start, nothing to import twice);
fault tests keep real worker processes. Each attempt runs on a thread of its own, at most ``size``
at once. A thread cannot be killed: an attempt past its timeout, or cancelled, is reported at once
and its thread is abandoned (whatever it returns or prints later is dropped). Nothing here crashes as a
process does, so ``CRASHED`` never occurs.

What a step prints is passed on as on the local pool: its lines as printed, an unfinished line once it
waited ``capture.PARTIAL_SECONDS`` (``ticker``), so a step abandoned mid-line keeps that line in the
output journaled from what was received. The lines are handed to their consumers from another thread
than the step's (whose writes its capture takes), always before the attempt's outcome.
"""
from __future__ import annotations

import threading
import time

from .._errors import ExecutorClosed
from .base import Executor, Outcome, OutcomeConsumer, OutcomeKind, OutcomeSink, Task, deliver_output, outcome_of
from .taskqueue import TaskQueue, cancelled
from .worker import Runner


class InlineExecutor(Executor):
    """Runs tasks in threads of this process; a drop-in for the local pool in tests."""

    def __init__(self, workers: int, sink: OutcomeSink) -> None:
        self.size = workers
        self._tasks = TaskQueue(wake=self._notify)
        self._sink = self._tasks.delivering(sink)  # gives back queue slots, then hands outcomes on
        self._runner = Runner(live=self._printed_line)
        self._cond = threading.Condition()
        self._printed: list[tuple[Task, str, str]] = []  # lines of running steps not yet handed on
        self._delivering = threading.RLock()  # lines are handed on in order, one batch at a time
        self._running: dict[int, tuple[Task, float | None]] = {}  # task id -> (task, deadline)
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="zart-inline-executor", daemon=True)
        self._thread.start()

    def submit(self, tasks: list[Task]) -> None:
        with self._cond:
            if self._closed:
                raise ExecutorClosed("the inline executor was shut down; submit to a new one")
            self._tasks.put(tasks, time.time())
            self._cond.notify_all()

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def cancel(self, consumer: OutcomeConsumer) -> None:
        with self._cond:
            dropped = self._tasks.drop(consumer)
            running = [task for task, _ in self._running.values() if task.consumer is consumer]
            for task in running:
                del self._running[task.task_id]
            dropped += running
            self._cond.notify_all()
        self._deliver_printed()  # what they printed first (an unfinished line), then their end
        if dropped:
            self._sink(cancelled(dropped))

    def shutdown(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            dropped = self._tasks.drain() + [task for task, _ in self._running.values()]
            self._running.clear()
            self._cond.notify_all()
        self._deliver_printed()
        if dropped:
            self._sink(cancelled(dropped, "the executor was shut down"))

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def idle(self) -> bool:
        with self._cond:
            return self._tasks.empty and not self._running

    @property
    def has_queued(self) -> bool:
        return bool(self._tasks.ready)

    def held(self) -> list[Task]:
        with self._cond:
            return self._tasks.held()

    # --- the scheduling thread ---------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            timed_out: list[Outcome] = []
            with self._cond:
                if self._closed:
                    return
                now = time.time()
                self._tasks.release_due(now)
                for task_id, (task, deadline) in list(self._running.items()):
                    if deadline is not None and now > deadline:
                        del self._running[task_id]
                        timed_out.append(Outcome(
                            task, OutcomeKind.TIMEOUT, error_type=OutcomeKind.TIMEOUT,
                            error=f"attempt ran past its timeout of {task.timeout:g}s (abandoned on its "
                                  "thread)", finished_at=now))
                ready = self._tasks.ready
                while ready and len(self._running) < self.size:
                    task = ready.popleft()
                    task.started_at = now
                    task.worker = "inline"
                    deadline = now + task.timeout if task.timeout is not None else None
                    self._running[task.task_id] = (task, deadline)
                    threading.Thread(target=self._run, args=(task,), name=f"zart-inline-{task.step_key}",
                                     daemon=True).start()
                due = self._tasks.next_deadline(now)
                wake = [] if due is None else [due]
                wake += [deadline for _, deadline in self._running.values() if deadline is not None]
                if not timed_out and not self._printed:
                    self._cond.wait(None if not wake else max(0.0, min(wake) - time.time()))
                printed = bool(self._printed)
            if printed or timed_out:
                self._deliver_printed()
            if timed_out:
                self._sink(timed_out)

    def _run(self, task: Task) -> None:
        reply = self._runner.run(task.wire(True))
        with self._cond:
            if self._running.pop(task.task_id, None) is None:
                return  # timed out, cancelled or shut down meanwhile: already reported
            self._cond.notify_all()
        self._deliver_printed()  # its last lines before its outcome
        self._sink([outcome_of(task, reply)])

    def _printed_line(self, task_id: int, stream: str, text: str) -> None:
        """The runner's live output (on the step's thread, or the ticker's): kept for another thread to
        hand on (on the step's own, a consumer's print would go back into its capture)."""
        with self._cond:
            found = self._running.get(task_id)
            if found is None:
                return  # abandoned (timed out, cancelled): its end was delivered, with what it printed
            self._printed.append((found[0], stream, text))
            self._cond.notify_all()

    def _deliver_printed(self) -> None:
        """Hand on the lines printed so far, in order (an outcome delivered after this call comes after
        every line its attempt printed: none is kept for an attempt no longer running)."""
        with self._delivering:
            with self._cond:
                printed, self._printed = self._printed, []
            if printed:
                deliver_output(printed)
