"""A step's function is sent to a worker once, with the first attempt that needs it there; later attempts
name it by id. Two rules keep that true when attempts are taken back (worker.py's docstring):
- a revoked attempt's function travels on with it: the worker keeps that blob for the attempts after it
  (sent without it), and the taken-back attempt is sent again with it to a worker that lacks it;
- a worker that lacks a function after all (evicted from its cache) answers ``FUNCTION_MISSING`` and the
  pool sends the attempt again with the function; an attempt cancelled meanwhile is not sent again.
Each test drives one case with real worker processes and steps gated on files (race_steps). An attempt's
``sent_bytes`` (the size of its last send) tells whether that send carried the function."""
from conftest import wait_until
from pool_helpers import UnusedConsumer, gated_task, held, started_pid
from race_steps import Outcomes, counted, gated, gated_timed
from steps_lib import calls, quick


def _results(sink: Outcomes) -> dict:
    from zart_nb import _serialization as ser
    from zart_nb._executors.base import OutcomeKind

    with sink.lock:
        return {o.task.step_key: (o.kind.value, ser.loads(o.blob) if o.kind is OutcomeKind.OK else None)
                for o in sink.outcomes}


def _without_function(task) -> bool:
    """Its last send did not carry the step's function."""
    return task.sent_bytes < len(task.fn_blob)


def test_an_attempt_behind_a_cancelled_one_that_carried_the_function_runs_from_the_kept_blob(tmp_path):
    """One worker runs X; behind it, B's attempt carries the function ``counted`` (the first sent there)
    and A's attempt of the same function comes without it. Cancelling B takes B's attempt back from the
    middle of the worker's queue: the worker keeps the function that came with it, and A's attempt runs
    there once, as sent (no ``FUNCTION_MISSING`` round trip, which would have sent it again with the
    function). B's never runs."""
    from zart_nb._executors.local import LocalPool

    sink = Outcomes()
    exec_a, exec_b = UnusedConsumer(), UnusedConsumer()
    x = gated_task(tmp_path, "e-x", gated, "x", consumer=UnusedConsumer())
    carrier = gated_task(tmp_path, "e-b", counted, "b", consumer=exec_b, timeout=120)
    follower = gated_task(tmp_path, "e-a", counted, "a", consumer=exec_a, timeout=120)
    pool = LocalPool(1, sink)
    try:
        pool.submit([x])
        pid = started_pid(tmp_path, "x")
        pool._step_seconds = 0.001  # a pipeline deep enough for both behind X
        pool.submit([carrier, follower])  # their timeouts wake the I/O thread: sent behind x, in one message
        wait_until(lambda: held(pool) == 3, what="both sent behind x")
        assert not _without_function(carrier) and _without_function(follower)
        pool.cancel(exec_b)
        worker = pool._workers[0]
        wait_until(lambda: held(pool) == 2 and not worker.revoking, what="the cancelled attempt taken back")
        (tmp_path / "x.go").touch()
        wait_until(lambda: pool.idle and len(sink.outcomes) == 3, what="x and a to end")
        assert _results(sink) == {"x": ("ok", "x"), "b": ("cancelled", None), "a": ("ok", "a")}
        assert sorted(calls(tmp_path)) == ["a", "x"] and pool.pids == [pid]
        assert _without_function(follower)  # sent once, without the function
    finally:
        pool.shutdown()


def test_attempts_stolen_with_the_function_run_elsewhere_and_the_worker_keeps_it_for_later_ones(tmp_path):
    """Worker 0 runs X with two attempts of ``gated_timed`` behind it, the first carrying the function;
    worker 1 goes idle and steals both: they are sent to worker 1 with the function (it lacks it) and
    run there. Worker 0 kept the function that came with the stolen attempt: a later attempt sent to it
    without the function (the pool's view: worker 0 has it) runs there, as sent."""
    from zart_nb._executors.local import LocalPool

    sink = Outcomes()
    for tag in ("t1", "t2", "t3"):
        (tmp_path / f"{tag}.go").touch()  # these run through
    x = gated_task(tmp_path, "e-x", gated, "x", consumer=UnusedConsumer())
    y = gated_task(tmp_path, "e-y", gated, "y", consumer=UnusedConsumer())
    z = gated_task(tmp_path, "e-z", gated_timed, "z", consumer=UnusedConsumer(), timeout=120)
    t1, t2, t3 = (gated_task(tmp_path, "e-t", gated_timed, tag, consumer=UnusedConsumer(), timeout=120)
                  for tag in ("t1", "t2", "t3"))
    pool = LocalPool(2, sink)
    try:
        pool.submit([x, y])
        pid_x, pid_y = started_pid(tmp_path, "x"), started_pid(tmp_path, "y")
        assert pid_x != pid_y
        w0 = next(w for w in pool._workers if w.proc.pid == pid_x)
        pool._step_seconds = 0.001
        pool.submit([t1, t2])
        wait_until(lambda: len(w0.inflight) == 3, what="t1 and t2 sent behind x")
        assert not _without_function(t1) and _without_function(t2)
        stolen = pool.taken_back  # (y may have been: x and y were sent to worker 0 together)
        (tmp_path / "y.go").touch()  # worker 1 goes idle: it steals t1 and t2
        assert started_pid(tmp_path, "t1") == pid_y and started_pid(tmp_path, "t2") == pid_y
        wait_until(lambda: len(sink.outcomes) == 3, what="y, t1 and t2 to end")
        assert pool.taken_back == stolen + 2
        assert not _without_function(t1)  # sent again to worker 1, with the function
        pool.submit([z])  # worker 1 busy again (z waits), so the next attempt goes to worker 0
        assert started_pid(tmp_path, "z") == pid_y
        pool.submit([t3])
        wait_until(lambda: t3 in w0.inflight, what="t3 sent to worker 0, behind x")
        assert _without_function(t3)
        (tmp_path / "x.go").touch()
        assert started_pid(tmp_path, "t3") == pid_x
        (tmp_path / "z.go").touch()
        wait_until(lambda: pool.idle and len(sink.outcomes) == 6, what="every attempt to end")
        assert _results(sink) == {tag: ("ok", tag) for tag in ("x", "y", "z", "t1", "t2", "t3")}
        assert sorted(calls(tmp_path)) == ["t1", "t2", "t3", "x", "y", "z"]
        assert _without_function(t3) and sorted(pool.pids) == sorted([pid_x, pid_y])
    finally:
        pool.shutdown()


def _evict(pool, sink, tmp_path) -> None:
    """Load ``FN_CACHE_SIZE`` other functions on the pool's only worker, after ``counted``: its cache
    drops ``counted`` (first in, first out), while the pool still counts it as there."""
    from zart_nb import _serialization as ser
    from zart_nb._executors.base import TASK_IDS, Task
    from zart_nb._executors.worker import FN_CACHE_SIZE

    blob = ser.dumps_by_value(quick.fn)
    consumer = UnusedConsumer()
    tasks = [Task(next(TASK_IDS), f"evicting-{i}", blob, ser.dumps(((i,), {})), "e-evict", f"evict#{i}", 1,
                  consumer=consumer) for i in range(FN_CACHE_SIZE)]
    before = len(sink.outcomes)
    pool.submit(tasks)
    wait_until(lambda: pool.idle and len(sink.outcomes) == before + FN_CACHE_SIZE, what="the evicting steps")


def test_a_function_missing_answer_crossing_the_cancel_of_its_attempt_sends_nothing_again(tmp_path):
    """The worker evicted ``counted`` from its cache; the pool sends B's attempt of it without the
    function, behind X, with A's gated attempt after it. X ends and the worker answers B's attempt
    ``FUNCTION_MISSING`` (and starts A's), while the driver, not having read that yet, cancels B: B's
    attempt is delivered cancelled once, the answer that crosses the cancel sends nothing again, and
    B's step never runs. A's runs once. The other way round (a missing function answered before any
    cancel), the attempt is sent again with the function and runs."""
    from zart_nb._executors.local import LocalPool

    sink = Outcomes()
    exec_a, exec_b = UnusedConsumer(), UnusedConsumer()
    pool = LocalPool(1, sink)
    try:
        warm = gated_task(tmp_path, "e-w", counted, "warm", consumer=UnusedConsumer())
        pool.submit([warm])
        wait_until(lambda: pool.idle and len(sink.outcomes) == 1, what="the function loaded on the worker")
        pid = pool.pids[0]
        _evict(pool, sink, tmp_path)
        x = gated_task(tmp_path, "e-x", gated, "x", consumer=UnusedConsumer())
        b = gated_task(tmp_path, "e-b", counted, "b", consumer=exec_b, timeout=120)
        a = gated_task(tmp_path, "e-a", gated_timed, "a", consumer=exec_a, timeout=120)
        pool.submit([x])
        assert started_pid(tmp_path, "x") == pid
        pool._step_seconds = 0.001
        pool.submit([b, a])
        wait_until(lambda: held(pool) == 3, what="b and a sent behind x")
        assert _without_function(b)  # the pool counts the function as on the worker
        crossed = len(sink.outcomes)
        with pool._lock:  # the driver reads nothing meanwhile
            (tmp_path / "x.go").touch()
            assert started_pid(tmp_path, "a") == pid  # so b was answered FUNCTION_MISSING before it
            outcomes, _ = pool._cancel_locked(exec_b)  # what cancel() does, in this round
        sink(outcomes)
        worker = pool._workers[0]
        wait_until(lambda: held(pool) == 1 and not worker.revoking, what="x's reply and b's answers")
        (tmp_path / "a.go").touch()
        wait_until(lambda: pool.idle and len(sink.outcomes) == crossed + 3, what="a to end")
        with sink.lock:
            late = {o.task.step_key: o.kind.value for o in sink.outcomes[crossed:]}
        assert late == {"b": "cancelled", "x": "ok", "a": "ok"}  # b once: cancelled
        assert sorted(calls(tmp_path)) == ["a", "warm", "x"] and pool.pids == [pid]
        # b was never sent again (its last send is the one without the function) nor cancelled twice: an
        # answer for a cancelled attempt is dropped before it is read as a missing function
        assert _without_function(b) and pool.cancels == 1
        # without a cancel, the missing function is sent again and the attempt runs
        again = gated_task(tmp_path, "e-c", counted, "c", consumer=UnusedConsumer())
        _evict(pool, sink, tmp_path)
        pool.submit([again])
        wait_until(lambda: pool.idle and _results(sink).get("c") == ("ok", "c"), what="c to run")
        assert not _without_function(again) and sorted(calls(tmp_path)) == ["a", "c", "warm", "x"]
    finally:
        pool.shutdown()
