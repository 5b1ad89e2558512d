"""A step's timeout on the shared worker pool must never make another step run twice. The driver sees
what a worker runs only through its replies, which lag (a worker gathers quick steps' replies for up to
``REPLY_DELAY`` while it runs on): the attempt that timed out by the driver's view may have ended, and
the worker may run the next one, another execution's. A worker holding other attempts behind the one
that timed out is asked first (a halt): it halts only when it runs that attempt (then it is killed and
the attempt fails with its timeout), and otherwise runs on. Each test drives one case with real worker
processes and steps gated on files (race_steps), holding the pool's lock so that the driver's view
stays behind the worker's."""
import pickle
import time

from conftest import wait_until
from pool_helpers import UnusedConsumer, gated_task, held, started_pid
from race_steps import Outcomes, WorkerLine, counted, gated, gated_timed, gil_hog, lagging, wire
from steps_lib import calls, quick

import zart_nb as zart


def _past_its_timeout(pool, head) -> None:
    """The driver's clock says ``head`` (the attempt it sees the only worker run) started longer ago
    than its timeout (``pool._lock`` held: the I/O thread cannot look meanwhile). The step's real
    timeout is long, so that only the check the test calls can fire it."""
    worker = pool._workers[0]
    assert worker.inflight[0] is head
    worker.head_started = time.time() - head.timeout - 1


def _one_worker(workdir, sink, head, behind, *, deep: bool = False):
    """One worker runs ``head`` (a gated step, its tag its key) with the attempts ``behind`` sent after it
    (their timeouts wake the I/O thread, which sends them at once); ``deep``: a pipeline deep enough for
    several behind it (as after quick steps). Returns the pool and the worker's pid."""
    from zart_nb._executors.local import LocalPool

    pool = LocalPool(1, sink)
    try:
        pool.submit([head])
        pid = started_pid(workdir, head.step_key)
        if deep:
            pool._step_seconds = 0.001
        pool.submit(behind)
        wait_until(lambda: held(pool) == 1 + len(behind), what=f"{len(behind)} sent behind {head.step_key}")
    except BaseException:
        pool.shutdown()
        raise
    return pool, pid


def _a_then_b(workdir, sink):
    """One worker runs A's step ``a`` (gated), B's ``b`` sent behind it; both with a long timeout."""
    a = gated_task(workdir, "e-a", gated_timed, "a", consumer=UnusedConsumer(), timeout=120)
    b = gated_task(workdir, "e-b", gated_timed, "b", consumer=UnusedConsumer(), timeout=120)
    pool, pid = _one_worker(workdir, sink, a, [b])
    return pool, a, pid


def test_a_worker_that_ran_on_past_the_timed_out_step_is_not_killed(tmp_path):
    """The driver sees A's step running past its timeout, but the worker ended it and started B's
    step (A's reply is on its way). The halt finds B's step running, not A's: nothing is killed, A's
    reply is its result (the timeout did not happen), and B's step runs on, once, on the same worker.
    (Before, the pool killed the worker: A failed with a timeout it never ran into, and B's step ran
    again from the start on a new worker.)"""
    from zart_nb import _serialization as ser
    from zart_nb._executors.base import OutcomeKind

    sink = Outcomes()
    pool, a, pid = _a_then_b(tmp_path, sink)
    try:
        missed: list = []
        with pool._lock:  # the I/O thread cannot take in a's reply: the driver still sees a running
            (tmp_path / "a.go").touch()
            assert started_pid(tmp_path, "b") == pid  # the worker ended a and started b
            _past_its_timeout(pool, a)
            pool._check_timeouts_locked(missed)
        assert missed == [] and pool.halts == 1
        wait_until(lambda: pool._workers[0].halting is None and not pool._workers[0].revoking,
                   what="the halt's answer")
        assert pool.pids == [pid]  # not killed: it runs B's step
        (tmp_path / "b.go").touch()
        wait_until(lambda: pool.idle, what="b to end")
        with sink.lock:
            got = {o.task.step_key: (o.kind, ser.loads(o.blob)) for o in sink.outcomes}
        assert got == {"a": (OutcomeKind.OK, "a"), "b": (OutcomeKind.OK, "b")}
        assert sorted(calls(tmp_path)) == ["a", "b"] and pool.pids == [pid]
    finally:
        pool.shutdown()


def test_a_worker_running_the_timed_out_step_halts_and_the_step_fails_with_its_timeout(tmp_path):
    """The driver sees A's step past its timeout and the worker does run it, with B's attempt queued
    behind: the worker halts on A's step (starts nothing more) and says so; the pool kills it, A's
    attempt fails with its timeout (the same error as ever), and B's, never started, runs once on a
    new worker."""
    from zart_nb import _serialization as ser
    from zart_nb._executors.base import OutcomeKind

    sink = Outcomes()
    pool, a, pid = _a_then_b(tmp_path, sink)
    try:
        with pool._lock:
            _past_its_timeout(pool, a)
            missed: list = []
            pool._check_timeouts_locked(missed)
        assert missed == [] and pool.halts == 1
        wait_until(lambda: pid not in pool.pids, what="the worker halted on a and replaced")
        assert started_pid(tmp_path, "b") != pid
        (tmp_path / "b.go").touch()
        wait_until(lambda: pool.idle and len(sink.outcomes) == 2, what="b to end")
        with sink.lock:
            got = {o.task.step_key: o for o in sink.outcomes}
        assert got["a"].kind is OutcomeKind.TIMEOUT
        assert got["a"].error == f"attempt ran past its timeout of 120s; worker process {pid} was killed"
        assert got["a"].task.started_at is not None and got["a"].task.started_at > 0
        assert (got["b"].kind, ser.loads(got["b"].blob)) == (OutcomeKind.OK, "b")
        assert sorted(calls(tmp_path)) == ["a", "b"]  # a started once (killed), b once, on the new worker
        assert not (tmp_path / "a.go").exists()
    finally:
        pool.shutdown()


def test_a_halt_stops_the_worker_only_when_it_names_the_running_attempt(tmp_path):
    """One level down: ``("halt", [id])`` takes nothing off the worker's queue. Naming an attempt the
    worker does not run (queued, or ended), it answers with nothing and runs on; naming the attempt it
    runs, it answers that it halted on it, lets the step end (the driver kills it) and starts nothing
    after it."""
    line = WorkerLine(tuple)
    answered, revoked, read_until, send = line.answered, line.revoked, line.read_until, line.send
    try:
        line.run([wire(1, gated, "one", str(tmp_path)), wire(2, gated, "two", str(tmp_path)), wire(3, quick, 3)])
        started_pid(tmp_path, "one")
        send("halt", [2])  # queued: not taken, no halt
        read_until(lambda: len(revoked) == 1)
        (tmp_path / "one.go").touch()
        started_pid(tmp_path, "two")  # it ran on
        send("halt", [1])  # ended
        read_until(lambda: len(revoked) == 2 and 1 in answered)
        send("halt", [2])  # the running one
        read_until(lambda: len(revoked) == 3)
        assert revoked == [([], None), ([], None), ([], 2)]
        (tmp_path / "two.go").touch()
        read_until(lambda: 2 in answered)  # the step ends (the driver drops this reply)
        send("revoke", [3])
        read_until(lambda: len(revoked) == 4)
        assert revoked[3] == ([3], None) and answered == {1: "one", 2: "two"}  # 3 never started
    finally:
        line.worker.kill()


@zart.workflow("timeout-hog")
def hog_then_counted(workdir: str) -> list:
    return zart.wait([zart.schedule(gil_hog, "hog", workdir), zart.schedule(counted, "after", workdir)],
                     return_exceptions=True)


def test_a_step_holding_the_gil_past_its_timeout_is_still_stopped(journal, tmp_path):
    """A step stuck in one C call that holds the GIL, with another attempt waiting behind it on its
    worker: the worker cannot answer the halt, and is killed after the grace. The step fails with its
    timeout, and the attempt behind it, never started, runs once on a new worker."""
    from zart_nb._runtime import runtime

    zart.shutdown_pool()  # a fresh pool: its counters start at 0
    hog, after = zart.run(hog_then_counted, str(tmp_path), journal=journal, workers=1, execution_id="hog")
    assert isinstance(hog, zart.StepTimeout) and hog.step_key == "hog-hog"
    assert "ran past its timeout of 0.5s" in str(hog)
    assert after == "after"
    assert runtime.executor.halts == 1  # "after" waited on the hog's worker: it was asked, and killed at the grace
    assert sorted(calls(tmp_path)) == ["after", "hog"]
    steps = {s.step_key: (s.status.value, s.attempts) for s in zart.journal(journal).list_steps("hog")}
    assert steps == {"hog-hog": ("failed", 1), "counted-after": ("completed", 1)}


def test_a_halt_finding_the_head_not_started_yet_restarts_its_clock(tmp_path):
    """The driver has the reply of the step before A's and so counts A's time from that step's end,
    but the worker has not started A yet (it lags, A queued behind). A's time runs out by the driver's
    view: the halt finds no attempt running, so nothing is killed and A's clock restarts at the
    answer. A then runs to its own result, not failed as TIMEOUT for the time it spent queued, and
    a later look at the timeouts (while A runs) asks nothing. (Without the restart the pool asks
    again at once, round after round, and kills the worker once A runs: a timeout A never ran into.)"""
    from zart_nb import _serialization as ser
    from zart_nb._executors.base import OutcomeKind

    sink = Outcomes()
    x = gated_task(tmp_path, "e-x", lagging, "x", consumer=UnusedConsumer())
    a = gated_task(tmp_path, "e-a", gated_timed, "a", consumer=UnusedConsumer(), timeout=120)
    b = gated_task(tmp_path, "e-b", counted, "b", consumer=UnusedConsumer(), timeout=120)
    pool, pid = _one_worker(tmp_path, sink, x, [a, b], deep=True)
    try:
        (tmp_path / "x.go").touch()
        wait_until(lambda: (tmp_path / "x.replied").exists(), what="x's reply handed over")
        worker = pool._workers[0]
        wait_until(lambda: worker.inflight[0] is a, what="the driver to see x end")
        with pool._lock:
            _past_its_timeout(pool, a)
            queued_since = worker.head_started
            missed: list = []
            pool._check_timeouts_locked(missed)
        assert missed == [] and pool.halts == 1
        wait_until(lambda: pool.halts > 1 or (worker.halting is None and not worker.revoking),
                   what="the halt's answer")
        # a had not started: nothing was killed
        assert pool.halts == 1 and pool.pids == [pid] and not (tmp_path / "a.started").exists()
        assert worker.head_started > queued_since + 120  # its clock restarted at the answer
        (tmp_path / "x.resume").touch()
        assert started_pid(tmp_path, "a") == pid
        with pool._lock:
            pool._check_timeouts_locked(missed)  # a runs now, well within its timeout from the restart
        assert missed == [] and pool.halts == 1
        (tmp_path / "a.go").touch()
        wait_until(lambda: pool.idle and len(sink.outcomes) == 3, what="a and b to end")
        with sink.lock:
            got = {o.task.step_key: (o.kind, ser.loads(o.blob)) for o in sink.outcomes}
        assert got == {"x": (OutcomeKind.OK, "x"), "a": (OutcomeKind.OK, "a"), "b": (OutcomeKind.OK, "b")}
        assert sorted(calls(tmp_path)) == ["a", "b", "x"] and pool.pids == [pid] and pool.halts == 1
    finally:
        pool.shutdown()


def test_a_step_that_ended_right_at_its_timeout_keeps_its_result(tmp_path):
    """The only attempt a worker holds ends just as its timeout comes: its reply is on the driver's
    socket, not read yet, when the I/O thread looks at the timeouts. The worker is killed, as any
    worker past a timeout with nothing else to lose, but what it sent before it died is read first:
    the reply is the attempt's outcome, not a ``TIMEOUT`` (before, the result was lost and the step
    failed with a timeout it did not run into). The I/O thread itself looks, as it always does: the
    test holds the pool's lock after the thread has read its sockets for the round (it waits for the
    lock to take in what it read: nothing), lets the step end, and moves the clock past the timeout."""
    from zart_nb import _serialization as ser
    from zart_nb._executors.base import OutcomeKind
    from zart_nb._executors.local import LocalPool

    sink = Outcomes()
    a = gated_task(tmp_path, "e-a", gated_timed, "a", consumer=UnusedConsumer(), timeout=120)
    pool = LocalPool(1, sink)
    try:
        pool.submit([a])
        pid = started_pid(tmp_path, "a")
        worker = pool._workers[0]
        with pool._lock:
            pool._wake()
            # the I/O thread read the wake-up (its round's reads are over) and waits for the lock
            wait_until(lambda: not pool._wake_pending, what="the I/O thread to read its wake-up")
            (tmp_path / "a.go").touch()
            wait_until(lambda: worker.conn.poll(0), what="a's reply on the driver's socket")
            assert worker.inflight[0] is a  # not read: the driver still sees a running
            _past_its_timeout(pool, a)
        wait_until(lambda: sink.outcomes, what="a's outcome")
        with sink.lock:
            [got] = sink.outcomes
        assert got.kind is OutcomeKind.OK, got.error
        assert ser.loads(got.blob) == "a"
        wait_until(lambda: pool.idle, what="the pool to settle")
        assert pid not in pool.pids and len(pool.pids) == 1  # killed (past its timeout), and replaced
        assert calls(tmp_path) == ["a"]
    finally:
        pool.shutdown()


def test_a_killed_worker_still_gives_what_it_sent_before_it_died(tmp_path):
    """One level down (``_Worker.kill_and_read``): a worker that answered an attempt and was killed
    before the driver read the answer: the answer is read after its death, whole."""
    from zart_nb import _serialization as ser

    line = WorkerLine(tuple)
    try:
        assert pickle.loads(line.worker.conn.recv_bytes()) is None  # ready
        line.run([wire(1, quick, 3)])
        wait_until(lambda: line.worker.conn.poll(0), what="the reply on the socket")
        messages = line.worker.kill_and_read()
        assert line.worker.proc.returncode is not None  # dead and reaped
        replies = [reply for message in messages for reply in (pickle.loads(message) or [])]
        assert [(reply[0], ser.loads(reply[2])) for reply in replies] == [(1, quick.fn(3))]
        assert line.worker.kill_and_read() == []  # nothing more
    finally:
        line.worker.kill()
