"""The local worker pool: warm worker processes, pipelined dispatch, timeouts and crash recovery.

One I/O thread owns the receiving side of every worker connection. Tasks are sent as soon as a
worker has room, several to a message; each step function is sent to a worker once and then named
by id. Which worker gets what, how many attempts each may hold, when a worker starts and when to
steal are the dispatch's (``dispatch``, a mixin of ``LocalPool``). Workers batch the replies of quick
steps too. Outcomes are handed to the engine in batches (whatever arrived together), which is what
lets the journal group-commit.

Taking attempts back from a worker (a steal, when another is idle), the cancel of one execution's
attempts a worker holds, and timeouts are one protocol, in ``takeback`` (a mixin of ``LocalPool``): the
dispatch decides when to steal (``_steal_candidate_locked``) and the pool reads the answers in
``_absorb_locked``. The driver's handle on one worker process (``_Worker``) is in ``handle``.
"""
from __future__ import annotations

import functools
import itertools
import logging
import os
import pickle
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable

from .._errors import ExecutorClosed
from .base import (
    FUNCTION_MISSING,
    Executor,
    Outcome,
    OutcomeConsumer,
    OutcomeKind,
    OutcomeSink,
    Task,
    WireImport,
    WireOutput,
    WireReply,
    WireRevoked,
    deliver_output,
    outcome_of,
)
from .dispatch import Dispatch
from .handle import _Worker, kill_all
from .takeback import TakeBack
from .taskqueue import TaskQueue, cancelled
from .wire import FdConnection
from .wire import wait as wait_for_ready

logger = logging.getLogger("zart_nb")
_as_reply = functools.partial(tuple.__new__, WireReply)  # a C call: no NamedTuple __new__ per reply

STARTUP_DEATHS = 5  # (or twice the pool size) workers in a row dying while starting: the pool gives up


def _close_pipe(*fds: int) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _crashed(tasks: list[Task], message: str) -> list[Outcome]:
    now = time.time()
    return [Outcome(task, OutcomeKind.CRASHED, error=message, error_type=OutcomeKind.CRASHED, finished_at=now)
            for task in tasks]


class LocalPool(TakeBack, Dispatch, Executor):
    """Worker processes kept warm for the life of the driver (or until ``shutdown``)."""

    def __init__(self, workers: int, sink: OutcomeSink, *, start: int | None = None,
                 umask: Callable[[], int] | None = None, prepare: Callable[[list[str]], None] | None = None) -> None:
        """``start``: how many worker processes to start now (default all); each of the others starts
        as an attempt is queued that no idle worker can take (``_start_wanted_locked``). ``umask``:
        gives a worker's umask as it starts (default: inherited). ``prepare``: given the modules a
        worker says an output coming needs (``WireImport``), on the I/O thread (it must not import them
        there: see ``runtime._Committer.prepare``)."""
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
        self._workers: list[_Worker] = []
        try:
            for _ in range(first):
                self._workers.append(_Worker(next(self._names), umask))
        except BaseException:  # (out of processes or descriptors): the ones started must not wait forever
            kill_all(self._workers)
            raise
        self._unstarted = workers - first
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        # Closed once the pool is gone, not at shutdown: a submit or cancel racing the shutdown may still
        # write a wake-up, and a descriptor closed under it could be reused by another file meanwhile.
        # (Before, every pool left its two open: a kernel that changes its worker count, or whose pool
        # gave up, ran out of descriptors after ~500 pools.)
        # Not at exit: a pool still running then has an I/O thread reading the pipe.
        weakref.finalize(self, _close_pipe, self._wake_r, self._wake_w).atexit = False
        self._closed = False
        self._startup_deaths = 0  # workers that died before their first message, in a row
        self._gave_up: str | None = None  # why it gave up (workers cannot start): later submits fail with it
        self._unheard = False  # it gave up unheard (see ``closed``): not closed until a submit failed with it
        self._failed_any = False  # a worker's crash failed an attempt (a run heard of this pool's trouble)
        self._wake_pending = False
        self._delivering = False  # the I/O thread is inside the sink (not reading replies)
        self._printed: list[tuple[Task, str, str]] = []  # (task, stream, lines), I/O thread only
        self._prepare = prepare
        self._imports: list[str] = []  # modules outputs on their way need (WireImport), I/O thread only
        self.revokes = 0  # revoke messages sent (for tests and benchmarks)
        self.taken_back = 0  # attempts workers gave back unstarted, for idle workers to run
        self.cancels = 0  # cancel messages sent (a cancelled execution's attempts waiting on a worker)
        self.halts = 0  # halt messages sent (a timeout of an attempt a worker holds others behind)
        self._thread = threading.Thread(target=self._loop, name="zart-pool-io", daemon=True)
        self._thread.start()

    # --- called from engine threads --------------------------------------------------------------

    def submit(self, tasks: list[Task]) -> None:
        if self._closed:
            if self._gave_up is None:
                raise ExecutorClosed("the worker pool was shut down; submit to a new one")
            self._unheard = False  # (now closed: the next dispatch starts a new pool)
            self._sink(_crashed(tasks, self._gave_up))
            return
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
        # thread is handing outcomes over (it reads no replies then), the caller dispatches too; and
        # while workers are unstarted, since this attempt may want one (the dispatch starts it).
        if self._unstarted or self._delivering or any(not worker.inflight for worker in self._workers):
            if self._lock.acquire(blocking=False):
                try:
                    self._dispatch_locked()  # (it leaves no steal due: see _send_queued_locked)
                finally:
                    self._lock.release()
            else:
                wake = True
        if wake:
            self._wake()

    def _drop_after_shutdown(self, tasks: list[Task]) -> None:
        with self._lock:
            left = self._tasks.take(tasks)
            gave_up = self._gave_up
            if left and gave_up is not None:
                self._unheard = False  # (the run hears it now)
        if left:
            self._sink(cancelled(left, "the worker pool was shut down") if gave_up is None
                       else _crashed(left, gave_up))

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

    def shutdown(self) -> None:
        """Stop every worker; attempts still queued or running end as ``cancelled``."""
        with self._lock:
            if self._closed:
                self._unheard = False
                return
            self._closed = True
            workers, self._workers = self._workers, []
            dropped = self._tasks.drain()
            for worker in workers:
                dropped.extend(task for task in worker.inflight if task.task_id not in worker.cancelled)
                worker.inflight.clear()
        self._wake()
        kill_all(workers)
        if dropped:
            self._sink(cancelled(dropped, "the worker pool was shut down"))

    @property
    def closed(self) -> bool:
        """Shut down, or gave up (workers cannot start) and said so: a pool that gave up unheard (it
        failed no attempt: started ahead of a run, while its journal opens) is not ``closed`` until a
        submit has been failed with its error, so the run's first dispatch fails with it instead of
        starting a second pool's worth of processes that cannot start (and logging the error again)."""
        return self._closed and not self._unheard

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
            assert isinstance(conn, FdConnection)
            try:
                messages.append(conn.recv_bytes())
                while conn.poll(0):
                    messages.append(conn.recv_bytes())
            except (EOFError, OSError):  # OSError: also a connection closed meanwhile by a cancel
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
        if self._imports:
            imports, self._imports = self._imports, []
            if self._prepare is not None:
                self._prepare(imports)
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
                    elif type(reply) is WireImport:
                        self._imports.append(reply.module)
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
        failed = self._replace_locked(
            index, OutcomeKind.CRASHED, f"worker process {worker.proc.pid} died during the step ({detail})")
        if failed:
            self._failed_any = True
            outcomes.extend(failed)

    def _give_up_locked(self, message: str) -> list[Outcome]:
        """Worker processes cannot start: close the pool (a later dispatch starts a new one) and
        fail every attempt it holds, rather than start dying processes forever. Holding none, it
        fails the next submit with ``message`` first (see ``closed``)."""
        logger.error("zart: %s", message)
        self._closed = True
        self._gave_up = message
        workers, self._workers = self._workers, []
        tasks = self._tasks.drain()
        for worker in workers:
            tasks.extend(task for task in worker.inflight if task.task_id not in worker.cancelled)
            worker.inflight.clear()
            worker.kill()
        self._unheard = not tasks and not self._failed_any
        return _crashed(tasks, message)

    def _release_delayed_locked(self) -> None:
        self._tasks.release_due(time.time())

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
