"""Cancelling one execution on the shared worker pool must not touch another's steps. A worker holds
attempts of several executions (pipelining); the pool kills a worker only when the attempt it runs is
the cancelled execution's. The cancelled execution's attempts waiting behind another's are asked back
(a cancel: a revoke that halts the worker if it already runs one of them) and end as cancelled at
once. Each test drives one case with real worker processes and steps gated on files (race_steps), and
checks results, how often each step ran (calls.log) and the attempts in the journal."""
import pickle
import time
from pathlib import Path

import pytest
from conftest import wait_until
from pool_helpers import UnusedConsumer, gated_task, held, started_pid
from race_steps import Outcomes, WorkerLine, gated, gated_timed, wire
from steps_lib import calls, quick

import zart_nb as zart


def _steps(journal: Path, execution_id: str) -> dict[str, tuple[str, int]]:
    return {s.step_key: (s.status.value, s.attempts) for s in zart.journal(journal).list_steps(execution_id)}




def _pipeline_deeply(executor) -> None:
    """Let each worker hold several attempts, as the pool does after quick steps (a fresh pool sends
    two to a worker until it has timed one): one worker then holds all of another execution's."""
    executor._step_seconds = 0.001


@zart.workflow("cancel-plain")
def plain(args: list) -> list:
    tags, workdir = args
    return zart.wait([zart.schedule(gated, tag, workdir) for tag in tags])


@zart.workflow("cancel-timed")
def timed(args: list) -> list:
    """Steps with a timeout: their submit wakes the pool's I/O thread, which sends them at once to
    workers that are busy (behind the step each runs)."""
    tags, workdir = args
    return zart.wait([zart.schedule(gated_timed, tag, workdir) for tag in tags])


def _one_behind_another(journal, workdir, pool, workers, running, queued):
    """Execution ``running`` (id, tags) runs a gated step on every worker; then ``queued``'s two attempts
    are sent to those busy workers, behind its steps. Returns both executions, the pid each of
    ``running``'s steps started on, and the pool."""
    (running_id, running_tags), (queued_id, queued_tags) = running, queued
    first = zart.start(plain, [running_tags, str(workdir)], journal=journal, workers=workers,
                       execution_id=running_id)
    pids = {tag: started_pid(workdir, tag) for tag in running_tags}
    executor = pool.executor
    _pipeline_deeply(executor)
    second = zart.start(timed, [queued_tags, str(workdir)], journal=journal, workers=workers, execution_id=queued_id)
    wait_until(lambda: held(executor) == workers + 2, what=f"{queued_id}'s attempts sent to the busy workers")
    return first, second, pids, executor


@pytest.mark.parametrize("workers", [1, 2])
def test_cancelling_an_execution_queued_behind_another_leaves_the_others_step_running(
        journal, tmp_path, pool, workers):
    """A runs a step on every worker; B's two attempts wait on those workers behind A's. Cancelling B
    ends it at once (while A's steps still run), kills no worker, and none of B's steps runs: A's
    steps run once each, on the workers they started on, to their own results. (Before, the pool
    killed every worker holding one of B's attempts: A's steps ran twice.)"""
    a_tags = [f"a{i}" for i in range(1, workers + 1)]
    ex_a, ex_b, pids, executor = _one_behind_another(journal, tmp_path, pool, workers, ("ex-a", a_tags),
                                                     ("ex-b", ["b1", "b2"]))
    assert executor.size == workers and sorted(executor.pids) == sorted(pids.values())
    ex_b.cancel()
    with pytest.raises(zart.Cancelled):
        ex_b.result(timeout=30)  # A's steps still wait for their gates: B did not wait for them
    assert not any((tmp_path / f"{tag}.go").exists() for tag in a_tags)
    assert executor.cancels >= 1 and sorted(executor.pids) == sorted(pids.values())
    for tag in a_tags:
        (tmp_path / f"{tag}.go").touch()
    assert ex_a.result(timeout=60) == a_tags
    wait_until(lambda: executor.idle, what="the workers to give B's attempts back")
    assert sorted(calls(tmp_path)) == a_tags  # B's steps never ran, A's once each
    assert not list(tmp_path.glob("b*.started"))
    assert _steps(journal, "ex-a") == {f"gated-{tag}": ("completed", 1) for tag in a_tags}
    assert _steps(journal, "ex-b") == {"gated-timed-b1": ("cancelled", 1), "gated-timed-b2": ("cancelled", 1)}
    assert [s.started_at for s in zart.journal(journal).list_steps("ex-b")] == [None, None]  # never started
    assert zart.journal(journal).execution_record("ex-b").status.value == "cancelled"
    # the workers are healthy: the next execution runs on them
    (tmp_path / "c1.go").touch()
    assert zart.run(plain, [["c1"], str(tmp_path)], journal=journal, workers=workers) == ["c1"]
    assert started_pid(tmp_path, "c1") in pids.values()


@pytest.mark.parametrize("workers", [1, 2])
def test_cancelling_the_execution_a_worker_runs_replaces_it_and_runs_the_others_attempts_once(
        journal, tmp_path, pool, workers):
    """B runs a step on every worker; A's attempts wait behind B's. Cancelling B kills those workers
    (B's steps stop), and A's attempts, never started, run once each on the new workers. (Each worker
    is asked first, since it might have ended B's step and started A's without the driver knowing
    yet: it halts on B's and says so, and only then is it killed.)"""
    b_tags = [f"b{i}" for i in range(1, workers + 1)]
    ex_b, ex_a, started, executor = _one_behind_another(journal, tmp_path, pool, workers, ("ex-b", b_tags),
                                                        ("ex-a", ["a1", "a2"]))
    old = set(started.values())
    ex_b.cancel()
    with pytest.raises(zart.Cancelled):
        ex_b.result(timeout=30)
    wait_until(lambda: not set(executor.pids) & old, what="B's workers replaced")
    for tag in ("a1", "a2"):  # on one worker they run one after the other
        assert started_pid(tmp_path, tag) not in old
        (tmp_path / f"{tag}.go").touch()
    assert ex_a.result(timeout=60) == ["a1", "a2"]
    assert sorted(calls(tmp_path)) == sorted(["a1", "a2", *b_tags])
    # a worker holding A's attempts was asked (it halted on B's step), one holding only B's killed at once
    assert 1 <= executor.cancels <= workers
    assert _steps(journal, "ex-a") == {"gated-timed-a1": ("completed", 1), "gated-timed-a2": ("completed", 1)}
    assert _steps(journal, "ex-b") == {f"gated-{tag}": ("cancelled", 1) for tag in b_tags}
    assert all(s.started_at is not None for s in zart.journal(journal).list_steps("ex-b"))  # they had started




def test_a_worker_that_started_a_cancelled_attempt_halts_and_is_replaced(tmp_path):
    """The interleaving a cancel meets when the driver's view lags: the worker ended A's step and
    started B's next one, while the driver, not having read A's reply yet, still sees A's step
    running. The cancel of B (a revoke) finds B's attempt running: the worker halts (starts nothing
    more) and says so; the pool kills it, delivers A's result, and A's attempt queued behind B's
    runs once on a new worker. B's attempt is delivered cancelled at the cancel, and nothing else."""
    from zart_nb import _serialization as ser
    from zart_nb._executors.base import OutcomeKind
    from zart_nb._executors.local import LocalPool

    sink = Outcomes()
    outcomes, lock = sink.outcomes, sink.lock

    exec_a, exec_b = UnusedConsumer(), UnusedConsumer()

    a = gated_task(tmp_path, "e-a", gated, "a", consumer=exec_a)
    b = gated_task(tmp_path, "e-b", gated_timed, "b", consumer=exec_b, timeout=120)
    c = gated_task(tmp_path, "e-a", gated_timed, "c", consumer=exec_a, timeout=120)
    pool = LocalPool(1, sink)
    _pipeline_deeply(pool)
    try:
        pool.submit([a])
        pid = started_pid(tmp_path, "a")
        pool.submit([b, c])  # their timeouts wake the I/O thread: sent behind a
        wait_until(lambda: held(pool) == 3, what="b and c sent behind a")
        with pool._lock:  # the I/O thread cannot take in a's reply: the driver still sees a running
            (tmp_path / "a.go").touch()
            assert started_pid(tmp_path, "b") == pid  # the worker ended a and started b
            cancelled, wake = pool._cancel_locked(exec_b)
        assert not wake and [(o.task, o.kind) for o in cancelled] == [(b, OutcomeKind.CANCELLED)]
        assert started_pid(tmp_path, "c") != pid  # the worker halted on b, was killed; c runs on the new one
        assert pid not in pool.pids and pool.cancels == 1
        (tmp_path / "c.go").touch()
        wait_until(lambda: pool.idle, what="c to end")
        with lock:
            got = {o.task.step_key: (o.kind, ser.loads(o.blob)) for o in outcomes}
        assert got == {"a": (OutcomeKind.OK, "a"), "c": (OutcomeKind.OK, "c")}  # nothing for b
        assert sorted(calls(tmp_path)) == ["a", "b", "c"]  # b started before the cancel reached it
        assert pool.taken_back == 0
    finally:
        pool.shutdown()


def test_a_worker_that_ran_on_past_the_cancelled_step_is_not_killed(tmp_path):
    """The other lag: the driver sees B's step running, but the worker ended it and started A's next
    one (B's reply is on its way). The cancel of B finds nothing of B's to halt on: A's step runs on,
    once, on the same worker, to its own result; B's reply is dropped (B was delivered cancelled)."""
    from zart_nb import _serialization as ser
    from zart_nb._executors.base import OutcomeKind
    from zart_nb._executors.local import LocalPool

    sink = Outcomes()
    outcomes, lock = sink.outcomes, sink.lock

    exec_a, exec_b = UnusedConsumer(), UnusedConsumer()

    b = gated_task(tmp_path, "e-b", gated, "b", consumer=exec_b)
    a = gated_task(tmp_path, "e-a", gated_timed, "a", consumer=exec_a, timeout=120)
    pool = LocalPool(1, sink)
    try:
        pool.submit([b])
        pid = started_pid(tmp_path, "b")
        pool.submit([a])
        wait_until(lambda: held(pool) == 2, what="a sent behind b")
        with pool._lock:  # the I/O thread cannot take in b's reply: the driver still sees b running
            (tmp_path / "b.go").touch()
            assert started_pid(tmp_path, "a") == pid  # the worker ended b and started a
            cancelled, wake = pool._cancel_locked(exec_b)
        assert wake and [(o.task, o.kind) for o in cancelled] == [(b, OutcomeKind.CANCELLED)]
        wait_until(lambda: not pool._workers[0].cancelled, what="b's reply (dropped) and the cancel's answer")
        assert pool.pids == [pid] and pool.cancels == 1  # not killed: it runs A's step
        (tmp_path / "a.go").touch()
        wait_until(lambda: pool.idle, what="a to end")
        with lock:
            got = {o.task.step_key: (o.kind, ser.loads(o.blob)) for o in outcomes}
        assert got == {"a": (OutcomeKind.OK, "a")}  # nothing for b
        assert sorted(calls(tmp_path)) == ["a", "b"] and pool.pids == [pid]
    finally:
        pool.shutdown()


def test_a_cancel_halts_the_worker_only_when_it_names_the_running_attempt(tmp_path):
    """One level down: a worker sent ``("cancel", [id of the attempt it runs])`` answers that it halted
    on it, lets that step end (the driver kills it), and starts nothing after it: the attempt queued
    behind is still there for a later revoke. A cancel naming only queued attempts takes them back
    without halting."""
    line = WorkerLine(tuple)
    answered, revoked, read_until, send = line.answered, line.revoked, line.read_until, line.send
    try:
        line.run([wire(1, gated, "one", str(tmp_path)), wire(2, quick, 2), wire(3, quick, 3)])
        started_pid(tmp_path, "one")
        send("cancel", [3])  # only a queued one: taken back, no halt
        read_until(lambda: len(revoked) == 1)
        send("cancel", [1])  # the running one
        read_until(lambda: len(revoked) == 2)
        assert revoked == [([3], None), ([], 1)]
        (tmp_path / "one.go").touch()
        read_until(lambda: 1 in answered)  # the step ends (the driver drops this reply)
        send("revoke", [2])
        read_until(lambda: len(revoked) == 3)
        assert revoked[2] == ([2], None) and answered == {1: "one"}  # 2 never started
    finally:
        line.worker.kill()


def test_a_cancel_answer_comes_before_the_reply_of_any_attempt_behind_what_it_took(tmp_path):
    """A cancel takes attempts from the middle of a worker's queue (another execution's run between
    them), unlike a steal, which takes the last ones. The driver matches replies to what a worker holds,
    in order: the answer must reach it before the reply of any attempt queued behind one it took, or
    the driver would take that reply for the taken attempt's and fail the worker as broken. (A cancel
    that finds the worker running one it names halts it: the round ends there, on a new worker.)"""
    from steps_lib import nap

    from zart_nb import _serialization as ser
    from zart_nb._executors.base import WireOutput, WireReply, WireRevoked, WireTask
    from zart_nb._executors.local import _Worker

    def wire(task_id, first, *args):
        return tuple(WireTask(task_id, "nap", ser.dumps_by_value(nap.fn) if first else None,
                              ser.dumps((args, {})), "e-1", f"k#{task_id}", 1))

    worker = _Worker(0, None)
    try:
        next_id, taken_total = 1, 0
        for _round in range(60):
            ids = list(range(next_id, next_id + 12))
            next_id += 12
            worker.conn.send_bytes(pickle.dumps(
                ("run", [wire(i, i == ids[0], i, 0.0005, str(tmp_path)) for i in ids]), 5))
            cancel = ids[2::3]  # every third, from the third on: others sit between them
            worker.control.send_bytes(pickle.dumps(("cancel", cancel), 5))
            stream, seen, halted = [], set(), None
            end = time.monotonic() + 30
            while halted is None and seen != set(ids) or not any(kind == "revoked" for kind, _ in stream):
                assert time.monotonic() < end, f"round {_round}: {stream}"
                if worker.conn.poll(0.1):
                    for item in pickle.loads(worker.conn.recv_bytes()) or []:
                        if type(item) is WireRevoked:
                            halted = item.halted
                            stream.append(("revoked", item.task_ids))
                            seen.update(item.task_ids)
                        elif type(item) is not WireOutput:
                            task_id = WireReply(*item).task_id
                            stream.append(("reply", task_id))
                            seen.add(task_id)
            answer = next(i for i, (kind, _) in enumerate(stream) if kind == "revoked")
            taken = stream[answer][1] + ([] if halted is None else [halted])
            taken_total += len(taken)
            early = [task_id for kind, task_id in stream[:answer] if kind == "reply"]
            assert not taken or max(early, default=0) < min(taken), f"round {_round}: {stream}"
            if halted is not None:
                assert halted in cancel
                worker.kill()
                worker = _Worker(0, None)
        assert taken_total > 0
    finally:
        worker.kill()
