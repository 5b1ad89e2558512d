"""The local worker pool: warm worker processes, pipelined dispatch, timeouts and crash recovery.

One I/O thread owns the receiving side of every worker connection. Tasks are sent as soon as a
worker has room, several to a message; each step function is sent to a worker once and then named
by id. How many attempts a worker may hold adapts to how long steps take (about ``QUEUE_SECONDS``
of work, between ``MIN_DEPTH`` and ``MAX_DEPTH``), so no-op steps are pipelined deeply while slow
ones are spread evenly. Workers batch the replies of quick steps too. Outcomes are handed to the
engine in batches (whatever arrived together), which is what lets the journal group-commit.

Taking attempts back: pipelining means attempts wait on a worker behind the one it runs. When
nothing is queued in the pool, a worker is idle, and another holds attempts behind a head that has
run for ``STEAL_AFTER`` (longer than its whole queue was meant to take), the pool asks that worker
for them (``("revoke", [task ids])`` on a pipe that a thread of the worker reads even mid-step). The
worker answers with the ones it took off its queue before starting them (``WireRevoked``); only those
are queued again, for the idle worker, so a revoke racing the worker as it starts one resolves to one
run. Until the answer comes they stay the worker's, so if it dies first they are re-run exactly as
after any crash. Attempts are named by id, unique in the process (several executions share a pool);
``_take_back_locked`` lists the interleavings an answer can meet, and how each is handled. One steal
per worker at a time; with a worker busy, or the queue not empty, none is sent and none costs anything.

Cancelling one execution (``cancel``) kills only the workers running its attempts. Its attempts on a
worker that also holds another execution's are delivered as cancelled at once and asked back with the
same protocol (``("cancel", [task ids])``): a worker found running one of them halts (starts nothing
more) and is replaced, one that ran on to another execution's step keeps running it, and whatever a
worker says of a cancelled attempt later is dropped.

Timeouts: an attempt's clock starts when the worker is seen to start it (the reply of the one before,
or the send to an idle worker). Past its timeout, a worker that holds nothing else is killed at once.
One that holds other attempts behind it may have ended it and started the next (the driver's view
lags by up to ``REPLY_DELAY``), so it is asked first (``("halt", [task id])``, see
``_check_timeouts_locked``): it halts only if it runs that attempt (it is killed, the attempt fails
with ``TIMEOUT``, the others go back to the queue); else the timeout did not happen. One that does
not answer within ``HALT_GRACE`` (stopped, or a step holding the GIL in C code) is killed then.

Deadlock rule: a worker that is busy is never sent more than ``BUSY_WINDOW`` bytes it has not
answered yet, so the driver's send never blocks on a full socket while the worker blocks on its own.
"""
from __future__ import annotations

import collections
import functools
import itertools
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_for_ready
from pathlib import Path
from typing import Any

from .._errors import ExecutorClosed
from .base import (
    FUNCTION_MISSING,
    PATH_VARIABLE,
    Executor,
    Outcome,
    OutcomeConsumer,
    OutcomeKind,
    OutcomeSink,
    Task,
    WireOutput,
    WireReply,
    WireRevoked,
    deliver_output,
    outcome_of,
)
from .taskqueue import TaskQueue, cancelled

logger = logging.getLogger("zart_nb")
_as_reply = functools.partial(tuple.__new__, WireReply)  # a C call: no NamedTuple __new__ per reply

MIN_DEPTH = 2
MAX_DEPTH = 64
QUEUE_SECONDS = 0.005
STEAL_AFTER = QUEUE_SECONDS  # a head running longer than a whole queue's worth is holding others up
BUSY_WINDOW = 64 * 1024
SOCKET_BUFFER = 4 * BUSY_WINDOW
CANCEL_GRACE = 2.0  # a worker that does not answer a cancel of the step it runs is killed after this
HALT_GRACE = CANCEL_GRACE  # ... or a halt (the step it runs by the driver's view ran past its timeout)
STARTUP_DEATHS = 5  # (or twice the pool size) workers in a row dying while starting: the pool gives up
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
            raise
        finally:
            child_sock.close()
            os.close(revoke_r)
        self.conn = Connection(parent_sock.detach())
        self.control = Connection(revoke_w, readable=False)
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

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the worker and any process its step started
        except OSError:
            try:
                self.proc.kill()
            except OSError:
                pass
        for conn in (self.conn, self.control):
            try:
                conn.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def _timed_out(head: Task, worker: _Worker) -> str:
    return f"attempt ran past its timeout of {head.timeout:g}s; worker process {worker.proc.pid} was killed"


class LocalPool(Executor):
    """Worker processes kept warm for the life of the driver (or until ``shutdown``)."""

    def __init__(self, workers: int, sink: OutcomeSink, *, start: int | None = None,
                 umask: Callable[[], int] | None = None) -> None:
        """``start``: how many worker processes to start now (default all); the others start with
        the first ``submit``. ``umask``: gives a worker's umask as it starts (default: inherited)."""
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.size = workers
        self._tasks = TaskQueue(wake=self._wake)
        self._sink = self._tasks.delivering(sink)  # gives back queue slots, then hands outcomes on
        self._step_seconds = 0.01  # moving average of step durations; sets the pipeline depth
        self._lock = threading.Lock()
        self._names = itertools.count()
        first = workers if start is None else max(1, min(workers, start))
        self._umask = umask
        self._workers = [_Worker(next(self._names), umask) for _ in range(first)]
        self._unstarted = workers - first
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._closed = False
        self._startup_deaths = 0  # workers that died before their first message, in a row
        self._wake_pending = False
        self._delivering = False  # the I/O thread is inside the sink (not reading replies)
        self._printed: list[tuple[Task, str, str]] = []  # (task, stream, lines), I/O thread only
        self.revokes = 0  # revoke messages sent (for tests and benchmarks)
        self.taken_back = 0  # attempts workers gave back unstarted, for idle workers to run
        self.cancels = 0  # cancel messages sent (a cancelled execution's attempts waiting on a worker)
        self.halts = 0  # halt messages sent (a timeout of an attempt a worker holds others behind)
        self._thread = threading.Thread(target=self._loop, name="zart-pool-io", daemon=True)
        self._thread.start()

    # --- called from engine threads --------------------------------------------------------------

    def submit(self, tasks: list[Task]) -> None:
        if self._closed:
            raise ExecutorClosed("the worker pool was shut down; submit to a new one")
        if self._unstarted:
            self._start_the_rest()
        now = time.time()
        wake = False
        later = []
        ready = self._tasks.ready
        for task in tasks:
            if task.not_before > now or task.limit is not None:
                later.append(task)  # due later, or held for its queue's limit
            else:
                ready.append(task)  # deque appends are atomic: no lock needed
                # the I/O thread may be blocked with no deadline: it must learn of this timeout
                wake = wake or task.timeout is not None
        if later:
            with self._lock:
                self._tasks.put(later, now)
            wake = True
        if self._closed:  # shut down meanwhile: what shutdown() did not take ends here
            self._drop_after_shutdown(tasks)
            return
        # An idle worker gets the work now, from this thread (no hop: the sequential path). When
        # every worker is busy, their replies wake the I/O thread, which sends what is queued in
        # batches: a burst of schedule() calls costs the caller only the append. While the I/O
        # thread is handing outcomes over (it reads no replies then), the caller dispatches too.
        if self._delivering or any(not worker.inflight for worker in self._workers):
            if self._lock.acquire(blocking=False):
                try:
                    self._dispatch_locked()
                finally:
                    self._lock.release()
            else:
                wake = True
        if wake:
            self._wake()

    def _start_the_rest(self) -> None:
        with self._lock:
            if self._closed:
                return
            while self._unstarted:
                self._workers.append(_Worker(next(self._names), self._umask))
                self._unstarted -= 1
        self._wake()  # the I/O thread listens to the new workers from its next round

    def _drop_after_shutdown(self, tasks: list[Task]) -> None:
        with self._lock:
            left = self._tasks.take(tasks)
        if left:
            self._sink(cancelled(left, "the worker pool was shut down"))

    def cancel(self, consumer: OutcomeConsumer) -> None:
        """Cancel every attempt of ``consumer`` (one execution) the pool holds; each is delivered as
        ``CANCELLED`` before this returns (the execution never waits for a worker).

        A worker is killed (and replaced) only when the attempt it runs is ``consumer``'s; the others
        of another execution it holds behind it go back to the queue, never started, and run once
        elsewhere. The driver sees what a worker runs only through its replies, which lag (a worker
        gathers the replies of quick steps for up to ``REPLY_DELAY`` while it runs on), so:
        - A worker holding only ``consumer``'s attempts (or cancelled ones), or still starting, and
          running ``consumer``'s by the driver's view: killed now. Nothing of another execution can
          be lost, whatever it really runs.
        - Otherwise every attempt of ``consumer`` it holds is marked cancelled (``worker.cancelled``)
          and asked back with a cancel (a revoke that may halt the worker, see ``_take_back_locked``).
          The worker takes back those it has not started; if it runs one of them (the head by the
          driver's view, or one it started since), it halts (starts nothing after it) and names it,
          and the pool kills it and queues again what it still holds (none of it started). If the
          head had ended already, its reply is dropped and the step the worker runs now (another
          execution's) runs on, once, to its own result. A worker that does not answer within
          ``CANCEL_GRACE`` while the head is a cancelled attempt (stopped, or stuck in C code holding
          the GIL) is killed then, as before this protocol.
        Every attempt of ``consumer`` is delivered ``CANCELLED`` before this returns (the execution
        never waits for a worker), a reply of a cancelled attempt is never delivered, and no attempt
        of another execution is lost or run twice. A step of ``consumer`` that runs when the cancel
        reaches its worker runs on until the answer is read (milliseconds) and is then killed; its
        queue slot (``zart.Queue`` limits) is given back at the cancel."""
        with self._lock:
            outcomes, wake = self._cancel_locked(consumer)
            self._dispatch_locked()
        if wake:
            self._wake()  # the I/O thread must listen to a new worker, or keep a cancel's deadline
        if outcomes:
            self._sink(outcomes)

    def _cancel_locked(self, consumer: OutcomeConsumer) -> tuple[list[Outcome], bool]:
        """``cancel`` without the delivery: the outcomes to deliver, and whether the I/O thread must
        look again (a worker was replaced, or a cancel's deadline set)."""
        outcomes = cancelled(self._tasks.drop(consumer))
        wake = False
        for index, worker in enumerate(self._workers):
            ghosts = worker.cancelled
            mine = [task for task in worker.inflight if task.consumer is consumer and task.task_id not in ghosts]
            if not mine:
                continue
            head = worker.inflight[0]
            if mine[0] is head and (not worker.ready or len(mine) + len(ghosts) == len(worker.inflight)):
                # it runs one of them, and holds no other execution's attempt it may have started
                outcomes.extend(self._replace_locked(index, OutcomeKind.CANCELLED, cancel=consumer))
                wake = True
                continue
            ghosts.update(task.task_id for task in mine)  # asked back, cancelled now
            if mine[0] is head:  # it runs one (by the driver's view): it halts, or is killed at the grace
                head.started_at = worker.head_started  # it counts as executed
                worker.cancel_deadline = time.time() + CANCEL_GRACE
                wake = True
            outcomes.extend(cancelled(mine))
            self._send_cancel_locked(worker, [task.task_id for task in mine])
        return outcomes, wake

    def shutdown(self) -> None:
        """Stop every worker; attempts still queued or running end as ``cancelled``."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            workers, self._workers = self._workers, []
            dropped = self._tasks.drain()
            for worker in workers:
                dropped.extend(task for task in worker.inflight if task.task_id not in worker.cancelled)
                worker.inflight.clear()
        self._wake()
        for worker in workers:
            worker.kill()
        if dropped:
            self._sink(cancelled(dropped, "the worker pool was shut down"))

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def idle(self) -> bool:
        """No attempt is queued, delayed or running."""
        with self._lock:
            return self._tasks.empty and not any(w.inflight for w in self._workers)

    @property
    def has_queued(self) -> bool:
        """Attempts wait to be sent (so the I/O thread should not be kept busy with other work)."""
        return bool(self._tasks.ready)

    def held(self) -> list[Task]:
        with self._lock:
            return self._tasks.held()

    def running(self) -> list[tuple[Task, float]]:
        attempts = []
        for worker in list(self._workers):  # no lock: a progress view must not slow dispatch
            try:
                if worker.ready and worker.inflight:
                    head = worker.inflight[0]
                    if head.task_id not in worker.cancelled:
                        attempts.append((head, worker.head_started))
            except IndexError:  # answered meanwhile
                pass
        return attempts

    @property
    def pids(self) -> list[int]:
        with self._lock:
            return [worker.proc.pid for worker in self._workers]

    # --- dispatch --------------------------------------------------------------------------------

    def _depth(self) -> int:
        return max(MIN_DEPTH, min(MAX_DEPTH, int(QUEUE_SECONDS / max(self._step_seconds, 1e-6))))

    def _dispatch_locked(self) -> None:
        queue = self._tasks.ready
        if queue:
            self._send_queued_locked(queue)
            if queue:
                return
        if len(self._workers) > 1:
            victim, _ = self._steal_candidate_locked(time.time())
            if victim is not None:
                self._revoke_locked(victim)

    def _send_queued_locked(self, queue: collections.deque[Task]) -> None:
        depth = self._depth()
        for worker in sorted(self._workers, key=lambda w: len(w.inflight)):
            room = depth - len(worker.inflight)
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
                continue
            if idle and worker.ready:
                worker.head_started = time.time()
            worker.unanswered += batch_bytes
            try:
                worker.conn.send_bytes(pickle.dumps(("run", batch), 5))
            except OSError:
                pass  # the worker died; the I/O thread sees EOF and recovers its tasks
            if not queue:
                return

    # --- taking back attempts a busy worker holds, for an idle one -----------------------------------

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

    def _revoke_locked(self, victim: _Worker) -> None:
        """Ask ``victim`` for the attempts behind its head, as many as the idle workers take (those
        it has not started come back in a ``WireRevoked`` and are queued again; see _take_back_locked)."""
        idle = sum(1 for worker in self._workers if not worker.inflight and worker.ready)
        inflight = victim.inflight
        take = min(len(inflight) - 1, idle * self._depth())
        task_ids = [task.task_id for task in itertools.islice(inflight, len(inflight) - take, None)]
        victim.revoking += 1
        self.revokes += 1
        try:
            victim.control.send_bytes(pickle.dumps(("revoke", task_ids), 5))
        except OSError:
            pass  # the worker died; the I/O thread sees EOF and recovers its tasks

    def _send_cancel_locked(self, worker: _Worker, task_ids: list[int]) -> None:
        """Ask ``worker`` for attempts of a cancelled execution (in ``worker.cancelled``): those it has
        not started come back in its ``WireRevoked``; if it runs one of them, it halts and names it."""
        worker.revoking += 1
        self.cancels += 1
        try:
            worker.control.send_bytes(pickle.dumps(("cancel", task_ids), 5))
        except OSError:
            pass  # the worker died; the I/O thread sees EOF (a cancelled attempt is not queued again)

    def _send_halt_locked(self, worker: _Worker, head: Task, now: float) -> None:
        """Ask ``worker`` whether it runs ``head``, which ran past its timeout by the driver's view: if
        it does, it halts and names it (the pool kills it and fails ``head`` with ``TIMEOUT``); if it
        ran on, it answers with nothing and nothing happens (``head``'s reply is on its way)."""
        worker.revoking += 1
        worker.halting = head
        worker.halt_answer = worker.revoking  # answers come in the order their requests were sent
        worker.halt_deadline = now + HALT_GRACE
        self.halts += 1
        try:
            worker.control.send_bytes(pickle.dumps(("halt", [head.task_id]), 5))
        except OSError:
            pass  # the worker died; the I/O thread sees EOF and recovers its tasks

    def _take_back_locked(self, worker: _Worker, task_ids: list[int], now: float, halted: int | None,
                          outcomes: list[Outcome]) -> bool:
        """Queue again the attempts ``worker`` says it took off its queue unstarted (its ``WireRevoked``);
        True when the answer made the pool replace the worker (it halted for a cancel).

        The worker takes an attempt off its queue either to run it or for a revoke, under one lock: an
        attempt it names never ran there and never will. So each one the driver holds for it is queued
        again, unless its execution was cancelled (``worker.cancelled``: its outcome was delivered at
        the cancel; it is forgotten), and one the driver does not hold for it is forgotten (nothing of it
        can be lost: it is not this worker's to run). A revoke's answer never makes the pool replace
        the worker; a cancel's does when the worker was running one of the attempts it names.

        The interleavings checked, and the tests that drive each with real worker processes:
        - Two executions of the process on one pool numbering their attempts alike: a worker held
          execution A's running attempt 1 and B's attempt 1 behind it; a revoke of B's took both "1"s
          back, so A's ran twice (and its reply was taken for B's, or the worker failed as crashed: the
          CI run's "revoked attempts it was not given", then WorkerCrashed). The cause, fixed: attempt
          ids are unique in the process (``base.TASK_IDS``). Should a consumer reuse ids anyway, the
          worker names an id once per attempt it took off, and those are the last the driver holds
          with that id (a worker starts its attempts in the order they were sent), so they are the
          ones taken back here, never one the worker started. (test_pool_revoke_race: the first two)
        - A cancel, a timeout or a crash between the revoke and its answer: each replaces the worker
          (a new ``_Worker``, ``revoking`` false), what it held is cancelled, failed or queued again
          then, and the old worker's answer is dropped unread (``_iterate``: not in ``_workers``).
          (test_pool_revoke_race's cancel and timeout tests; test_pool's worker killed before it answers)
        - An older revoke's answer after a newer one: a worker has one revoke at a time (``revoking``,
          cleared only here, by its answer); its revoke thread answers them one by one, in order, on
          its socket, and one naming attempts given back or answered already gets an empty answer.
          (test_pool_revoke_race: revokes sent back to back)
        - A reply and a revoke answer of the same attempt: impossible (see above); both travel on the
          worker's socket, in the order the worker made them, and are matched by id. (test_worker:
          an attempt is either run or revoked, never both: 300 revokes racing the worker's next start)
        - A revoke overtaking the attempts it names (the revoke pipe against the socket): the worker
          drains its socket before it looks, or, mid-receive, waits up to ``REVOKE_WAIT`` for the
          message; past that it answers without them and runs them (a missed steal, nothing lost).
          (test_worker: a worker gives back what it holds behind a running step, revoked right after
          the attempts were sent)
        - An attempt answered ``FUNCTION_MISSING`` while a revoke naming it is on its way: the driver
          queues it again and may send it to the same worker, whose revoke thread may then take the
          new copy: it is held again by then, so it is taken back once. (No test drives it: it needs
          a worker's function cache evicted between a send and a revoke.)

        The cancel of one execution (``cancel``) whose attempts wait on a worker behind another's:
        they are delivered as ``CANCELLED`` at once and marked (``worker.cancelled``), and a cancel (a
        revoke naming them) is sent. Whatever the worker says of a marked attempt later delivers
        nothing and queues nothing, in every path (``_absorb_locked``, here, ``_replace_locked``, a
        timeout, a shutdown). The answer can meet:
        - The worker took them off its queue: forgotten here. (test_pool_cancel: an execution queued
          behind another, on 1 and 2 workers)
        - The worker had started one (the step ahead of it ended, its reply still on its way): the worker
          halted under its queue lock as it looked, so it started nothing after it, and its answer
          comes after every reply it made before. The pool kills and replaces it; what it still holds
          was never started and goes back to the queue (marked attempts are dropped); the halted
          attempt's reply, if it comes first, is dropped. Killing it, rather than letting the step run
          to its end, stops the cancelled execution's step at once, as a cancel of a running step does.
          (test_pool_cancel: a worker that started a cancelled attempt halts; a cancel halts the
          worker only when it names the running attempt; a worker that ran on past the cancelled step)
        - The worker had not received them yet (the cancel overtook them past ``REVOKE_WAIT``) or
          ran one to its end as it looked: they are still held, not halted on. With no other revoke
          of that worker outstanding, the cancel is sent again for those left; the next answer takes
          them, halts on one, or comes after their replies (dropped).
        - A reply of an attempt behind one the cancel took (a cancel takes from the middle of the
          queue, a steal only its end): the worker sends its answer under its queue lock, so before
          it starts anything after what it took, and replies are matched in order after it.
          (test_pool_cancel: a cancel answer comes before the reply of any attempt behind it)
        - A steal revoke outstanding at the cancel (``revoking`` counts both; each answer is matched
          by ids, in the order sent): its answer may name a marked attempt, which is forgotten, not
          queued again.
        - The worker dies, times out or is cancelled before it answers: ``_replace_locked`` skips the
          marked attempts (a marked one at the head counts as the step it ran: the one behind it is
          queued again, not failed), and the old worker's answer is dropped unread.
        - The worker does not answer a cancel naming the head (stopped, or a step holding the GIL):
          killed after ``CANCEL_GRACE`` (``_check_timeouts_locked``), the rest queued again.
          (test_pool_revoke_race: a cancel between a revoke and its answer, the worker stopped)

        A halt (the head ran past its timeout by the driver's view, ``_send_halt_locked``) takes
        nothing back; its answer is told from the others by its place (answers come in the order the
        requests were sent: ``halt_answer``). Naming the head as halted, the head fails with
        ``TIMEOUT`` and the worker is replaced; with nothing named, the head ended (or has not
        started) and nothing happens. ``_check_timeouts_locked`` lists the interleavings.
        (test_pool_timeout: all three tests)
        """
        worker.revoking = max(0, worker.revoking - 1)
        if not worker.revoking:
            worker.cancel_deadline = 0.0  # answered: it did not halt on what it ran, or halts now
        ghosts = worker.cancelled
        timing_out = worker.halting
        if timing_out is not None:
            worker.halt_answer -= 1
            if worker.halt_answer:
                timing_out = None  # an answer to a revoke sent before the halt
            else:  # the halt's answer
                worker.halting = None
                worker.halt_deadline = 0.0
                if halted is None and worker.inflight and worker.inflight[0] is timing_out:
                    # It did not run it when it looked (it ended: its reply follows): the timeout did
                    # not happen. Should it run it yet, it starts now at the earliest.
                    worker.head_started = now
        if task_ids:
            self._forget_revoked_locked(worker, task_ids, now)
        if halted is not None:
            index = self._workers.index(worker)
            if (timing_out is not None and halted == timing_out.task_id and worker.inflight
                    and worker.inflight[0] is timing_out and halted not in ghosts):
                outcomes.extend(self._replace_locked(index, OutcomeKind.TIMEOUT, _timed_out(timing_out, worker)))
            else:
                self._replace_locked(index, OutcomeKind.CANCELLED, halted=True)
            return True
        if ghosts and not worker.revoking:
            left = [task.task_id for task in worker.inflight if task.task_id in ghosts]
            if left:
                self._send_cancel_locked(worker, left)
        return False

    def _forget_revoked_locked(self, worker: _Worker, task_ids: list[int], now: float) -> None:
        """Take the attempts a worker gave back off what it holds; queue again those not cancelled."""
        inflight = worker.inflight
        ghosts = worker.cancelled
        if len(task_ids) == 1:  # the usual answer: no counting
            wanted: dict[int, int] = {task_ids[0]: 1}
        else:
            wanted = collections.Counter(task_ids)
        head = inflight[0] if inflight else None
        head_revoked = False
        back: list[Task] = []
        kept: list[Task] = []
        dropped = 0
        for task in reversed(inflight):  # the attempts a worker has not started are the last it holds
            left = wanted.get(task.task_id)
            if left:
                wanted[task.task_id] = left - 1
                worker.unanswered -= task.sent_bytes
                task.worker = ""
                head_revoked = head_revoked or task is head
                if ghosts and task.task_id in ghosts:  # cancelled: delivered already
                    ghosts.discard(task.task_id)
                    dropped += 1
                else:
                    back.append(task)
            else:
                kept.append(task)
        if not back and not dropped:
            logger.debug("zart: worker %s revoked attempts the pool no longer holds for it: %s", worker.name, task_ids)
            return
        inflight.clear()
        inflight.extend(reversed(kept))
        if head_revoked:  # the attempt now at the head started at the latest by now
            worker.head_started = now
        if back:
            back.reverse()
            self._tasks.ready.extendleft(reversed(back))
            self.taken_back += len(back)

    def _replace_locked(self, index: int, kind: OutcomeKind, message: str | None = None,
                        cancel: OutcomeConsumer | None = None, halted: bool = False) -> list[Outcome]:
        """Kill a worker and start another in its place.

        Without ``cancel``, the attempt it was running fails with ``kind`` and those it had not
        started go back to the queue; with ``cancel``, that execution's attempts are cancelled and
        the others go back to the queue; ``halted`` (it halted on a cancelled attempt): every attempt
        goes back to the queue. Attempts already cancelled (``worker.cancelled``) are dropped, with no
        outcome: a cancelled one at the head counts as the attempt it was running."""
        worker = self._workers[index]
        worker.kill()
        outcomes: list[Outcome] = []
        now = time.time()
        inflight = list(worker.inflight)
        worker.inflight.clear()
        requeue = []
        ghosts = worker.cancelled
        for position, task in enumerate(inflight):
            if ghosts and task.task_id in ghosts:
                continue  # its CANCELLED outcome was delivered at the cancel
            if cancel is not None and task.consumer is cancel:
                if position == 0 and worker.ready:  # it had started: it counts as executed
                    task.started_at = worker.head_started
                outcomes.append(Outcome(task, OutcomeKind.CANCELLED, finished_at=now))
            elif cancel is None and position == 0 and not halted:
                task.started_at = worker.head_started if worker.ready else 0.0
                outcomes.append(Outcome(task, kind, error=message, error_type=kind, finished_at=now))
            else:
                requeue.append(task)
        self._tasks.ready.extendleft(reversed(requeue))
        if not self._closed:
            self._workers[index] = _Worker(next(self._names), self._umask)
        return outcomes

    # --- the I/O thread --------------------------------------------------------------------------

    def _wake(self) -> None:
        if self._wake_pending:
            return
        self._wake_pending = True
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass

    def _loop(self) -> None:
        while True:
            try:
                if not self._iterate():
                    return
            except Exception as exc:  # keep serving: a dead I/O thread would hang every execution
                logger.exception("zart: internal error in the worker pool's I/O thread: %r", exc)
                time.sleep(0.1)  # a repeating error must not turn into a busy loop

    def _iterate(self) -> bool:
        """One round: wait for replies (or a wake-up or deadline), absorb them, dispatch."""
        with self._lock:
            if self._closed:
                return False
            timeout = self._next_deadline_locked()
            conns = {worker.conn: worker for worker in self._workers}
        try:
            ready = wait_for_ready(list(conns) + [self._wake_r], timeout)
        except OSError:
            return True  # a connection was closed meanwhile (a cancel replaced its worker)
        # Read without the lock (only this thread receives), so submitters rarely wait for it.
        received: list[tuple[_Worker, list[bytes], bool, float]] = []
        for conn in ready:
            if conn == self._wake_r:
                os.read(self._wake_r, 4096)
                self._wake_pending = False  # after the read: a wake-up written meanwhile stays
                continue
            messages: list[bytes] = []
            dead = False
            assert isinstance(conn, Connection)
            try:
                messages.append(conn.recv_bytes())
                while conn.poll(0):
                    messages.append(conn.recv_bytes())
            except (EOFError, OSError, TypeError):  # TypeError: closed meanwhile by a cancel (its handle is None)
                dead = True
            received.append((conns[conn], messages, dead, time.time()))
        outcomes: list[Outcome] = []
        with self._lock:
            if self._closed:
                return False
            for worker, messages, dead, now in received:
                if worker not in self._workers:
                    continue  # replaced meanwhile (cancelled); its outcomes were reported then
                if not self._absorb_locked(worker, messages, now, outcomes):
                    self._crashed_locked(worker, outcomes, "answered for an attempt it was not running "
                                         "(did the step fork?)")
                elif dead and worker in self._workers:  # (not replaced as it answered a cancel)
                    self._crashed_locked(worker, outcomes)
            self._release_delayed_locked()
            self._check_timeouts_locked(outcomes)
            self._dispatch_locked()
        if self._printed:
            printed, self._printed = self._printed, []
            deliver_output(printed)
        if outcomes:
            # With nothing queued, the sink may commit right here (fsync, event subscribers):
            # submitters must not wait for that. With work queued it only hands outcomes over.
            self._delivering = not self._tasks.ready
            try:
                self._sink(outcomes)
            finally:
                self._delivering = False
        return True

    def _absorb_locked(self, worker: _Worker, messages: list[bytes], now: float,
                       outcomes: list[Outcome]) -> bool:
        """Turn a worker's messages into outcomes; False when it broke the protocol."""
        ghosts = worker.cancelled
        for message in messages:
            replies = pickle.loads(message)
            if replies is None:  # the worker finished starting
                worker.ready = True
                self._startup_deaths = 0
                worker.head_started = now
                continue
            for reply in replies:
                task = worker.inflight[0] if worker.inflight else None
                if type(reply) is not tuple:
                    if type(reply) is WireOutput:  # lines its running step printed
                        if task is not None and reply.task_id == task.task_id and task.task_id not in ghosts:
                            self._printed.append((task, reply.stream, reply.text))
                    elif type(reply) is WireRevoked:
                        if self._take_back_locked(worker, reply.task_ids, now, reply.halted, outcomes):
                            return True  # replaced: the rest of what it said is dropped
                    continue
                reply = _as_reply(reply)  # sent as a plain tuple (see the worker's _Replies)
                if task is None or reply.task_id != task.task_id:
                    # Not the answer to the attempt it holds (a step forked and its child answered
                    # too): nothing more it says can be trusted. Its attempts fail as crashed.
                    logger.warning("zart: worker %s answered task %s while it held %s; replacing it",
                                   worker.name, reply.task_id, None if task is None else task.task_id)
                    return False
                worker.inflight.popleft()
                worker.unanswered -= task.sent_bytes
                if ghosts and task.task_id in ghosts:  # cancelled (delivered then): its reply is dropped
                    ghosts.discard(task.task_id)
                    worker.head_started = reply.finished
                    continue
                if reply.error_type == FUNCTION_MISSING:  # evicted from its cache, or it failed to load
                    worker.functions.discard(task.fn_id)
                    self._tasks.ready.appendleft(task)
                    worker.head_started = reply.finished
                    continue
                worker.head_started = reply.finished  # the next attempt started when this one ended
                self._step_seconds = 0.8 * self._step_seconds + 0.2 * (reply.finished - reply.started)
                outcomes.append(outcome_of(task, reply))
        return True

    def _crashed_locked(self, worker: _Worker, outcomes: list[Outcome], broken: str | None = None) -> None:
        if broken is not None:
            worker.kill()
            detail = broken
        else:
            try:
                code = worker.proc.wait(timeout=1)  # reap it, so a kill by signal is reported as such
            except subprocess.TimeoutExpired:
                code = None
            detail = f"exit code {code}" if code is not None and code >= 0 else (
                f"killed by signal {-code}" if code is not None else "connection lost")
        if not worker.ready:
            self._startup_deaths += 1
            if self._startup_deaths >= max(STARTUP_DEATHS, 2 * self.size):
                outcomes.extend(self._give_up_locked(
                    f"{self._startup_deaths} worker processes in a row exited while starting (the last: "
                    f"{detail}); check that `{sys.executable} -m zart_nb._executors.worker` can start"))
                return
        index = self._workers.index(worker)
        outcomes.extend(self._replace_locked(
            index, OutcomeKind.CRASHED, f"worker process {worker.proc.pid} died during the step ({detail})"))

    def _give_up_locked(self, message: str) -> list[Outcome]:
        """Worker processes cannot start: close the pool (a later dispatch starts a new one) and
        fail every attempt it holds, rather than start dying processes forever."""
        logger.error("zart: %s", message)
        self._closed = True
        workers, self._workers = self._workers, []
        tasks = self._tasks.drain()
        for worker in workers:
            tasks.extend(task for task in worker.inflight if task.task_id not in worker.cancelled)
            worker.inflight.clear()
            worker.kill()
        now = time.time()
        return [Outcome(task, OutcomeKind.CRASHED, error=message, error_type=OutcomeKind.CRASHED, finished_at=now)
                for task in tasks]

    def _release_delayed_locked(self) -> None:
        self._tasks.release_due(time.time())

    def _check_timeouts_locked(self, outcomes: list[Outcome]) -> None:
        """Kill the workers whose cancel or halt went unanswered past its grace, and act on attempts
        that ran past their timeout by the driver's view (the head a worker holds, timed from
        ``head_started``).

        The driver's view lags: a worker gathers the replies of quick steps for up to ``REPLY_DELAY``
        while it runs on, so the head may have ended and the worker may run the next attempt, another
        execution's, which a kill would fail or run again from the start. So:
        - A worker holding only the head (and cancelled attempts): killed now, the head failing with
          ``TIMEOUT``. Nothing else it holds can be lost, whatever it really runs.
        - Otherwise it is asked (``_send_halt_locked``): a worker running the head halts (starts
          nothing more) and names it, and its answer makes the pool kill it and fail the head with
          ``TIMEOUT`` (``_take_back_locked``); the others go back to the queue, never started.
          (test_pool_timeout: a worker running the timed-out step halts)
        - A worker that ran on answers with nothing: nothing is killed, the head's reply (on its
          way, before or just after the answer) is its result, and, should the head still be held
          (not received yet), its clock restarts at the answer. (test_pool_timeout: a worker that
          ran on past the timed-out step is not killed)
        - No answer within ``HALT_GRACE`` (stopped, or a step holding the GIL in C code): killed
          then, the head failing with ``TIMEOUT``, as without the question; if the head's reply came
          meanwhile (its answer is late, not missing) the question is dropped and nothing is killed.
          (test_pool_revoke_race: a timeout between a revoke and its answer, the worker stopped)
        - A cancel of the head's execution before the answer: the halt's answer, halted on a
          cancelled attempt, replaces the worker with every attempt queued again (the cancel's rule).
        """
        now = time.time()
        for index, worker in enumerate(self._workers):
            if worker.cancel_deadline and now > worker.cancel_deadline:
                logger.warning("zart: worker %s did not answer the cancel of the step it runs within %gs; "
                               "killing it", worker.name, CANCEL_GRACE)
                self._replace_locked(index, OutcomeKind.CANCELLED, halted=True)
                continue
            if not (worker.inflight and worker.ready):
                continue
            head = worker.inflight[0]
            if worker.halting is not None:  # asked whether it runs the head that timed out
                if now > worker.halt_deadline:
                    if head is worker.halting:
                        logger.warning("zart: worker %s did not answer whether it still runs the attempt past "
                                       "its timeout within %gs; killing it", worker.name, HALT_GRACE)
                        outcomes.extend(self._replace_locked(index, OutcomeKind.TIMEOUT, _timed_out(head, worker)))
                    else:  # it answered for that attempt: that timeout did not happen
                        worker.halting = None
                        worker.halt_deadline = 0.0
                continue
            ghosts = worker.cancelled
            if head.timeout is not None and now - worker.head_started > head.timeout and head.task_id not in ghosts:
                if len(worker.inflight) == 1 + len(ghosts):
                    # it holds no other attempt it may have started (the driver's view lags): killed now
                    outcomes.extend(self._replace_locked(index, OutcomeKind.TIMEOUT, _timed_out(head, worker)))
                else:
                    self._send_halt_locked(worker, head, now)

    def _next_deadline_locked(self) -> float | None:
        deadlines = []
        due = self._tasks.next_deadline(time.time())
        if due is not None:
            deadlines.append(due)
        for worker in self._workers:
            if worker.cancel_deadline:
                deadlines.append(worker.cancel_deadline)
            if worker.halting is not None:
                deadlines.append(worker.halt_deadline)
            elif worker.ready and worker.inflight:
                head = worker.inflight[0]
                if head.timeout is not None and head.task_id not in worker.cancelled:
                    deadlines.append(worker.head_started + head.timeout)
        if not self._tasks.ready and len(self._workers) > 1:
            now = time.time()
            victim, due = self._steal_candidate_locked(now)
            if victim is not None:
                deadlines.append(now)  # due already (this thread was busy): this round's dispatch revokes
            elif due is not None:
                deadlines.append(due)
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - time.time())
