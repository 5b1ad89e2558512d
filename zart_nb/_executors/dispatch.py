"""The local pool's dispatch: which worker is sent which queued attempt, how many each may hold, when
a worker not started yet starts, and when an idle worker should take attempts back from a busy one.

How many attempts a worker may hold adapts to how long steps take (about ``QUEUE_SECONDS`` of work,
between ``MIN_DEPTH`` and ``MAX_DEPTH``), so no-op steps are pipelined deeply while slow ones are
spread evenly. ``Dispatch`` holds these methods and ``LocalPool`` (``local``) inherits them, as it does
``TakeBack`` (a mixin: one object, one lock); every method is called with the pool's lock held. This is
the hot path: P1-P3 measure it.

Deadlock rule: a worker that is busy is never sent more than ``BUSY_WINDOW`` bytes it has not
answered yet, so the driver's send never blocks on a full socket while the worker blocks on its own.
"""
from __future__ import annotations

import collections
import pickle
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .base import Task
from .handle import BUSY_WINDOW, _Worker
from .taskqueue import TaskQueue

MIN_DEPTH = 2
MAX_DEPTH = 64
QUEUE_SECONDS = 0.005
STEAL_AFTER = QUEUE_SECONDS  # a head running longer than a whole queue's worth is holding others up


class Dispatch:
    """The dispatch's part of ``LocalPool``: every method is called with the pool's lock held."""

    _workers: list[_Worker]
    _tasks: TaskQueue
    _closed: bool
    _names: Iterator[int]
    _umask: Callable[[], int] | None
    _unstarted: int  # workers not started yet (see ``_start_wanted_locked``)
    _step_seconds: float  # moving average of step durations; sets the pipeline depth

    if TYPE_CHECKING:
        def _wake(self) -> None:
            """``LocalPool``'s: wake its I/O thread (it listens to new workers from its next round)."""

        def _revoke_locked(self, victim: _Worker, depth: int) -> None:
            """``TakeBack``'s: ask ``victim`` for the attempts it holds behind the one it runs."""

    def _start_wanted_locked(self) -> None:
        """Start workers not started yet, one per attempt waiting beyond the idle workers: queued, or
        sent to a worker behind the attempt it runs (a steal moves it to the new worker once that one is
        ready). A sequential workflow keeps one process; a fan-out starts them all. Not all at the first
        attempt: on a machine with as many cores as workers, a process starting beside the one running
        the first step competes with it (P9's first run on tmpfs, 21 alternations: 443 -> 432 ms median;
        on disk the gain is below the disk's scatter). Called at each dispatch while workers are unstarted
        (a submit dispatches then, or wakes the I/O thread when another holds the lock): a submit racing
        another's dispatch may see its attempt sent behind the other's, not queued."""
        if self._closed:
            return
        wanted = len(self._tasks.ready)
        for worker in self._workers:
            wanted += len(worker.inflight) - 1 if worker.inflight else -1
        if wanted <= 0:
            return
        for _ in range(min(wanted, self._unstarted)):  # one at a time: a start that fails keeps the count
            self._workers.append(_Worker(next(self._names), self._umask))
            self._unstarted -= 1
        self._wake()  # the I/O thread listens to the new workers from its next round

    def _depth(self) -> int:
        return max(MIN_DEPTH, min(MAX_DEPTH, int(QUEUE_SECONDS / max(self._step_seconds, 1e-6))))

    def _dispatch_locked(self) -> None:
        queue = self._tasks.ready
        if self._unstarted:
            self._start_wanted_locked()
        if queue:
            self._send_queued_locked(queue)
            if queue:
                return
        if len(self._workers) > 1:
            victim, _ = self._steal_candidate_locked(time.time())
            if victim is not None:
                self._revoke_locked(victim, self._depth())

    def _send_queued_locked(self, queue: collections.deque[Task]) -> None:
        """Send what is queued to the workers that have room for it (``_depth``).

        A queue the idle ready workers can take (no longer than their room) goes to them one each first,
        the rest filling them in turn up to the depth (quick steps stay together, as before): a short
        queue of long steps must not run two by two on one worker while another is idle (a steal would
        fix it only after ``STEAL_AFTER``, at the cost of a revoke). A worker still starting is passed
        over: what it is sent waits for its start, and cannot be stolen back until it is ready.
        While no worker is ready yet (a pool just started), the idle ones, all starting, take the queue
        that way instead: they were started together and become ready at about the same time (4 started
        together here are ready within 10-25 ms of each other, 150-180 ms after their start), and a step
        sent now is on its worker's socket when it is; holding the queue for the first one ready would
        send it all there (its room is the depth's minimum, 2) and need a revoke a moment later. A
        longer queue fills the ready workers, least loaded first, each up to the depth; what is left
        stays queued here for the first worker with room: a ready one whose step ended, or a starting
        one once it is ready (its ready message dispatches). An attempt queued while the only ready
        worker runs a step waits behind it rather than on a process that is starting (55-150 ms here),
        runs as soon as that step ends, and moves to the new worker by a steal once that one is ready if
        the step runs on. (Before, an attempt beyond the ready workers' room went to a starting worker
        and waited for its start: P11's third sum, sent to a worker started for it, waited ~60 ms for the
        start and ran ~65 ms there, while the worker that made the array was free ~12 ms after it.)

        So a dispatch never leaves a ready worker idle beside another that holds attempts behind its
        head: a steal comes due only as a step runs long, a deadline of the I/O thread. (Before, two
        long steps submitted together on a warm pool went to the first worker; submitted from another
        thread, which does not wake the I/O thread when it dispatches, the second waited for the first
        step's end or another worker's reply.)"""
        depth = self._depth()
        workers = self._workers
        if len(queue) <= depth * len(workers):  # (a fan-out's long queue skips this)
            idle = [worker for worker in workers if not worker.inflight and worker.ready]
            if not idle and not any(worker.ready for worker in workers):
                idle = [worker for worker in workers if not worker.inflight]
            if idle and len(queue) <= depth * len(idle):
                more = len(queue) - len(idle)  # beyond one each: filled in turn, as a longer queue
                for worker in idle:
                    extra = min(more, depth - 1) if more > 0 else 0
                    more -= extra
                    self._send_locked(worker, queue, 1 + extra)
                    if not queue:
                        return
        ready = [worker for worker in workers if worker.ready]
        for worker in sorted(ready or workers, key=lambda w: len(w.inflight)):  # least loaded first
            self._send_locked(worker, queue, depth - len(worker.inflight))
            if not queue:
                return

    def _send_locked(self, worker: _Worker, queue: collections.deque[Task], room: int) -> None:
        """Send ``worker`` up to ``room`` attempts from the head of ``queue``, in one message (fewer when
        they would pass its ``BUSY_WINDOW``; an idle worker always gets one)."""
        batch: list[tuple[Any, ...]] = []
        batch_bytes = 0
        idle = not worker.inflight
        while queue and room > 0:
            task = queue[0]
            send_fn = task.fn_id not in worker.functions
            size = (len(task.args_blob) + (len(task.fn_blob) if send_fn else 0)
                    + len(task.step_key) + len(task.execution_id) + 128)
            if not (idle and not batch) and worker.unanswered + batch_bytes + size > BUSY_WINDOW:
                break
            queue.popleft()
            # A plain tuple in WireTask's field order: a NamedTuple costs ~1 µs more to pickle
            # and unpickle (its Python __new__), per task, on both sides (measured).
            batch.append((task.task_id, task.fn_id, task.fn_blob if send_fn else None, task.args_blob,
                          task.execution_id, task.step_key, task.attempt, task.store))
            batch_bytes += size
            if send_fn:
                worker.functions.add(task.fn_id)
            task.worker = worker.name
            task.sent_bytes = size
            worker.inflight.append(task)
            room -= 1
        if not batch:
            return
        if idle and worker.ready:
            worker.head_started = time.time()
        worker.unanswered += batch_bytes
        try:
            worker.conn.send_bytes(pickle.dumps(("run", batch), 5))
        except OSError:
            pass  # the worker died; the I/O thread sees EOF and recovers its tasks

    # --- when to take attempts back from a busy worker, for an idle one (how: takeback) -----------

    def _steal_candidate_locked(self, now: float) -> tuple[_Worker | None, float | None]:
        """With nothing queued: the worker to take attempts back from now (a worker is idle while
        another holds attempts behind a head that has run for ``STEAL_AFTER``), and else when a
        worker holding attempts would become one (None: no worker is idle, or none holds any)."""
        idle = False
        victim: _Worker | None = None
        due: float | None = None
        for worker in self._workers:
            held = len(worker.inflight)
            if not held:
                idle = idle or worker.ready
            elif held > 1 and worker.ready and not worker.revoking:
                at = worker.head_started + STEAL_AFTER
                if at <= now:
                    if victim is None or held > len(victim.inflight):
                        victim = worker
                elif due is None or at < due:
                    due = at
        if not idle:
            return None, None
        return victim, None if victim is not None else due
