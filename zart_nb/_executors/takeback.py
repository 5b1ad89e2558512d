"""The local pool's take-back protocol: steals, cancels and timeouts of attempts a worker holds.

The pool (``local``) sends a worker several attempts at a time, and sees what it runs only through its
replies, which lag (a worker gathers the replies of quick steps for up to ``REPLY_DELAY`` while it runs
on). Three things act on attempts a worker holds without knowing which one it runs, and all three ask
the worker: a message on its revoke pipe (read by a thread of the worker, even mid-step), answered with
a ``WireRevoked`` on its socket, after every reply it made before. Attempts are named by id, unique in
the process (several executions share a pool); ``_take_back_locked`` lists the interleavings an answer
can meet, and how each is handled.

- A steal (``("revoke", [task ids])``, sent by ``_revoke_locked``): when nothing is queued in the pool,
  a worker is idle, and another holds attempts behind a head that has run for ``STEAL_AFTER`` (the
  pool decides, ``LocalPool._steal_candidate_locked``), that worker is asked for them. It answers with
  the ones it took off its queue before starting them; only those are queued again, for the idle
  worker, so a revoke racing the worker as it starts one resolves to one run. Until the answer comes
  they stay the worker's, so if it dies first they are re-run exactly as after any crash. One steal per
  worker at a time.
- A cancel (``("cancel", [task ids])``, ``_cancel_locked``): cancelling one execution kills only the
  workers running its attempts. Its attempts on a worker that also holds another execution's are
  delivered as cancelled at once and asked back: a worker found running one of them halts (starts
  nothing more) and is replaced, one that ran on to another execution's step keeps running it, and
  whatever a worker says of a cancelled attempt later is dropped.
- A halt (``("halt", [task id])``, ``_check_timeouts_locked``): an attempt's clock starts when the
  worker is seen to start it (the reply of the one before, or the send to an idle worker). Past its
  timeout, a worker that holds nothing else is killed at once, and what it sent before it died is read
  then (a step that ended right at its timeout keeps its result); one that holds other attempts behind
  it may have ended it and started the next, so it is asked first: it halts only if it runs that
  attempt (it is killed, the attempt fails with ``TIMEOUT``, the others go back to the queue); else
  the timeout did not happen.
A worker that does not answer a cancel or a halt naming the attempt it runs within ``CANCEL_GRACE`` or
``HALT_GRACE`` (stopped, or a step holding the GIL in C code) is killed then.

``TakeBack`` holds these methods and ``LocalPool`` inherits them (a mixin: one object, one lock; the hot
path, dispatch and ``_absorb_locked``, stays in ``local``). Every method is called with the lock held.
"""
from __future__ import annotations

import collections
import itertools
import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from .base import Outcome, OutcomeConsumer, OutcomeKind, Task
from .handle import _Worker
from .taskqueue import TaskQueue, cancelled

logger = logging.getLogger("zart_nb")

CANCEL_GRACE = 2.0  # a worker that does not answer a cancel of the step it runs is killed after this
HALT_GRACE = CANCEL_GRACE  # ... or a halt (the step it runs by the driver's view ran past its timeout)


def _timed_out(head: Task, worker: _Worker) -> str:
    return f"attempt ran past its timeout of {head.timeout:g}s; worker process {worker.proc.pid} was killed"


class TakeBack:
    """The take-back protocol's part of ``LocalPool``: every method is called with the pool's lock held."""

    _workers: list[_Worker]
    _tasks: TaskQueue
    _closed: bool
    _names: Iterator[int]
    _umask: Callable[[], int] | None
    revokes: int  # revoke messages sent (for tests and benchmarks)
    taken_back: int  # attempts workers gave back unstarted, for idle workers to run
    cancels: int  # cancel messages sent (a cancelled execution's attempts waiting on a worker)
    halts: int  # halt messages sent (a timeout of an attempt a worker holds others behind)

    if TYPE_CHECKING:
        def _absorb_locked(self, worker: _Worker, messages: list[bytes], now: float,
                           outcomes: list[Outcome]) -> bool:
            """``LocalPool``'s: turn a worker's messages into outcomes; False when it broke the protocol."""

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

    def _revoke_locked(self, victim: _Worker, depth: int) -> None:
        """Ask ``victim`` for the attempts behind its head, as many as the idle workers take (those
        it has not started come back in a ``WireRevoked`` and are queued again; see _take_back_locked)."""
        idle = sum(1 for worker in self._workers if not worker.inflight and worker.ready)
        inflight = victim.inflight
        take = min(len(inflight) - 1, idle * depth)
        task_ids = [task.task_id for task in itertools.islice(inflight, len(inflight) - take, None)]
        self.revokes += 1
        victim.ask("revoke", task_ids)

    def _send_cancel_locked(self, worker: _Worker, task_ids: list[int]) -> None:
        """Ask ``worker`` for attempts of a cancelled execution (in ``worker.cancelled``): those it has
        not started come back in its ``WireRevoked``; if it runs one of them, it halts and names it."""
        self.cancels += 1
        worker.ask("cancel", task_ids)  # a worker that died: a cancelled attempt is not queued again

    def _send_halt_locked(self, worker: _Worker, head: Task, now: float) -> None:
        """Ask ``worker`` whether it runs ``head``, which ran past its timeout by the driver's view: if
        it does, it halts and names it (the pool kills it and fails ``head`` with ``TIMEOUT``); if it
        ran on, it answers with nothing and nothing happens (``head``'s reply is on its way)."""
        worker.halting = head
        worker.halt_answer = worker.revoking + 1  # answers come in the order their requests were sent
        worker.halt_deadline = now + HALT_GRACE
        self.halts += 1
        worker.ask("halt", [head.task_id])

    def _take_back_locked(self, worker: _Worker, task_ids: list[int], now: float, halted: int | None,
                          outcomes: list[Outcome]) -> bool:
        """Queue again the attempts ``worker`` says it took off its queue unstarted (its ``WireRevoked``);
        True when the answer made the pool replace the worker (it halted for a cancel or a halt; the
        timed-out attempt's ``TIMEOUT`` outcome is added to ``outcomes``).

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
          new copy: it is held again by then, so it is taken back once. A cancel's crossing drives
          it (test_pool_function_missing: a worker whose cache evicted the function); a steal's is not
          driven (the idle worker the steal needs would be sent the copy instead). A revoked
          attempt's function stays on the worker for the attempts sent after it without it
          (test_pool_function_missing: after a cancel, after a steal).

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
        started: its clock restarts) and nothing happens. ``_check_timeouts_locked`` lists the
        interleavings. (test_pool_timeout: every test)
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
        outcome: a cancelled one at the head counts as the attempt it was running. A worker that had not
        said it was ready (it died while starting) ran none of what it held: all of it goes back to the
        queue, and a pool that gives up fails it with the give-up's error (``LocalPool._crashed_locked``)."""
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
            elif cancel is None and position == 0 and not halted and worker.ready:
                task.started_at = worker.head_started
                outcomes.append(Outcome(task, kind, error=message, error_type=kind, finished_at=now))
            else:
                requeue.append(task)
        self._tasks.ready.extendleft(reversed(requeue))
        if not self._closed:
            self._workers[index] = _Worker(next(self._names), self._umask)
        return outcomes

    def _check_timeouts_locked(self, outcomes: list[Outcome]) -> None:
        """Kill the workers whose cancel or halt went unanswered past its grace, and act on attempts
        that ran past their timeout by the driver's view (the head a worker holds, timed from
        ``head_started``).

        The driver's view lags: a worker gathers the replies of quick steps for up to ``REPLY_DELAY``
        while it runs on, so the head may have ended and the worker may run the next attempt, another
        execution's, which a kill would fail or run again from the start. So:
        - A worker holding only the head (and cancelled attempts): killed now, the head failing with
          ``TIMEOUT``. Nothing else it holds can be lost, whatever it really runs. The head may have
          ended right at its timeout, its reply on the socket but not read (it came as the I/O thread's
          wait ended on the deadline): what the worker sent before it died is read after the kill
          (``_kill_timed_out_locked``), and a reply of the head is its outcome, not ``TIMEOUT``.
          (test_pool_timeout: a step that ended right at its timeout keeps its result.) The halt
          protocol is not used here: it would cover no more (the worker counts a step as running
          until its reply is built, value stored and pickled, so a halt then halts it, and a reply
          already sent is read after the kill as well), and a step stuck in C code holding the GIL
          would then be stopped only after ``HALT_GRACE``, with a round trip added to every timeout.
        - Otherwise it is asked (``_send_halt_locked``): a worker running the head halts (starts
          nothing more) and names it, and its answer makes the pool kill it and fail the head with
          ``TIMEOUT`` (``_take_back_locked``); the others go back to the queue, never started.
          (test_pool_timeout: a worker running the timed-out step halts)
        - A worker that ran on answers with nothing: nothing is killed, the head's reply (on its
          way, before or just after the answer) is its result, and, should the head still be held
          (not received yet), its clock restarts at the answer. (test_pool_timeout: a worker that
          ran on past the timed-out step is not killed.) The same when the worker has not started the
          head yet (it lags behind the driver's view): the head then runs to its own result, its
          timeout counted from the answer, not from when it was queued. (test_pool_timeout: a halt
          finding the head not started yet restarts its clock)
        - No answer within ``HALT_GRACE`` (stopped, or a step holding the GIL in C code): killed
          then, the head failing with ``TIMEOUT``, as without the question, unless what it sent before
          it died (read after the kill) answers the head; if the head's reply came meanwhile (its
          answer is late, not missing) the question is dropped and nothing is killed.
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
                        self._kill_timed_out_locked(index, worker, head, now, outcomes)
                    else:  # it answered for that attempt: that timeout did not happen
                        worker.halting = None
                        worker.halt_deadline = 0.0
                continue
            ghosts = worker.cancelled
            if head.timeout is not None and now - worker.head_started > head.timeout and head.task_id not in ghosts:
                if len(worker.inflight) == 1 + len(ghosts):
                    # it holds no other attempt it may have started (the driver's view lags): killed now
                    self._kill_timed_out_locked(index, worker, head, now, outcomes)
                else:
                    self._send_halt_locked(worker, head, now)

    def _kill_timed_out_locked(self, index: int, worker: _Worker, head: Task, now: float,
                               outcomes: list[Outcome]) -> None:
        """Kill ``worker``, whose ``head`` ran past its timeout by the driver's view, then take in what it
        sent before it died (``_Worker.kill_and_read``): the step may have ended right at its timeout,
        its reply sent but not read yet (it came as the I/O thread's wait ended on the deadline, or in
        the time it took to get here). Such a reply is the attempt's outcome, as is every reply after
        it; only a head the worker did not answer fails with ``TIMEOUT``. What it holds behind goes
        back to the queue, never started or started and killed (as after a crash). I/O thread only:
        it reads the worker's socket."""
        messages = worker.kill_and_read()
        if messages and self._absorb_locked(worker, messages, now, outcomes) and worker not in self._workers:
            return  # an answer it sent replaced it (a halt naming the head: its TIMEOUT was added then)
        if worker.inflight and worker.inflight[0] is head:
            outcomes.extend(self._replace_locked(index, OutcomeKind.TIMEOUT, _timed_out(head, worker)))
        else:  # it answered the head, which did not time out: what it still holds goes back to the queue
            self._replace_locked(index, OutcomeKind.CANCELLED, halted=True)
