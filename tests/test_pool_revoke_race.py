"""The pool's revoke race: a worker's answer to a revoke ("these attempts I took off my queue") must
always name attempts the driver holds for that worker, and the pool must neither run an attempt twice,
lose one, nor fail a healthy step as crashed, whatever crosses the answer. Each test drives one
interleaving with real worker processes and steps that wait for files the test creates (race_steps),
then checks every step's result, how often it ran, and its attempts in the journal."""
import os
import signal
from pathlib import Path

import pytest
from conftest import wait_until
from pool_helpers import gated_task, started_pid
from race_steps import Outcomes, WorkerLine, gated, gated_short, gated_timed, stopped, wire
from steps_lib import calls

import zart_nb as zart


def _steps(journal: Path, execution_id: str) -> dict[str, tuple[str, int]]:
    reader = zart.journal(journal)
    return {s.step_key: (s.status.value, s.attempts) for s in reader.list_steps(execution_id)}


@zart.workflow("race-two")
def two_gated(workdir: str) -> list:
    return zart.wait([zart.schedule(gated, "a1", workdir), zart.schedule(gated, "a2", workdir)])


@zart.workflow("race-one")
def one_gated(workdir: str) -> str:
    return gated_timed("b1", workdir)


def test_a_revoke_answer_names_the_attempt_of_its_own_execution(journal, tmp_path, pool):
    """Two executions of one process share the pool. Both number their attempts from 1, so a worker
    can hold execution A's running attempt 1 and, behind it, execution B's attempt 1. The idle worker
    takes B's back: before attempt ids were unique in the process, the driver took both "1"s back and
    ran A's again (while it still ran), or failed the worker as crashed, or gave B A's result."""
    workdir = tmp_path
    ex_a = zart.start(two_gated, str(workdir), journal=journal, workers=2, execution_id="ex-a")
    pid_a1, pid_a2 = started_pid(workdir, "a1"), started_pid(workdir, "a2")
    assert pid_a1 != pid_a2
    executor = pool.executor
    before = executor.taken_back  # a2 may have been taken back for the second worker as it started
    ex_b = zart.start(one_gated, str(workdir), journal=journal, workers=2, execution_id="ex-b")
    # B's attempt has a timeout: its submit wakes the I/O thread, which sends it to a busy worker
    wait_until(lambda: (ex_b.progress() or zart.RunProgress("", 0)).scheduled == 1 and not executor.has_queued,
               what="B's attempt sent to a busy worker")
    (workdir / "a2.go").touch()  # the second worker goes idle: it takes B's attempt back
    pid_b1 = started_pid(workdir, "b1")
    assert executor.taken_back == before + 1, "B's attempt was not queued behind A's running one"
    assert pid_b1 == pid_a2 != pid_a1
    (workdir / "a1.go").touch()
    (workdir / "b1.go").touch()
    assert ex_a.result(timeout=60) == ["a1", "a2"]
    assert ex_b.result(timeout=60) == "b1"
    assert sorted(calls(workdir)) == ["a1", "a2", "b1"]
    assert _steps(journal, "ex-a") == {"gated-a1": ("completed", 1), "gated-a2": ("completed", 1)}
    assert _steps(journal, "ex-b") == {"gated-timed-b1": ("completed", 1)}


def test_the_pool_takes_back_the_right_attempt_when_two_share_an_id(tmp_path):
    """The same, one level down: attempts built by hand with the same id (two consumers, each
    numbering its own). The worker answers the id of the attempt it took off its queue, and the pool
    takes back the last one it holds with that id (a worker starts its attempts in the order they came),
    never the one running; each outcome goes to its own attempt."""
    from zart_nb import _serialization as ser
    from zart_nb._executors.base import OutcomeKind
    from zart_nb._executors.local import LocalPool

    sink = Outcomes()
    outcomes, lock = sink.outcomes, sink.lock

    a1 = gated_task(tmp_path, "e-a", gated, "a1", task_id=1)
    a2 = gated_task(tmp_path, "e-a", gated, "a2", task_id=2)
    b1 = gated_task(tmp_path, "e-b", gated_timed, "b1", task_id=1, timeout=120)
    pool = LocalPool(2, sink)
    try:
        pool.submit([a1])
        pid_a1 = started_pid(tmp_path, "a1")
        pool.submit([a2])
        pid_a2 = started_pid(tmp_path, "a2")
        taken_back = pool.taken_back  # (a2 may have been sent behind a1 as the pool started, and taken back)
        pool.submit([b1])  # its timeout wakes the I/O thread: sent behind a1 (both workers hold one)
        wait_until(lambda: not pool.has_queued, what="b1 sent to a busy worker")
        (tmp_path / "a2.go").touch()
        assert started_pid(tmp_path, "b1") == pid_a2 != pid_a1  # taken back from a1's worker
        assert pool.taken_back == taken_back + 1
        (tmp_path / "a1.go").touch()
        (tmp_path / "b1.go").touch()
        wait_until(lambda: len(outcomes) == 3, what="three outcomes")
        with lock:
            got = {id(o.task): (o.kind, ser.loads(o.blob) if o.blob else o.error) for o in outcomes}
        assert got == {id(a1): (OutcomeKind.OK, "a1"), id(a2): (OutcomeKind.OK, "a2"), id(b1): (OutcomeKind.OK, "b1")}
        assert sorted(calls(tmp_path)) == ["a1", "a2", "b1"]
    finally:
        pool.shutdown()


@zart.workflow("race-single")
def single(args: list) -> str:
    tag, workdir = args
    return gated(tag, workdir)


@zart.workflow("race-single-timed")
def single_timed(args: list) -> str:
    tag, workdir = args
    return gated_timed(tag, workdir)


@zart.workflow("race-single-short")
def single_short(args: list) -> str:
    tag, workdir = args
    return gated_short(tag, workdir)


def _behind_a_stopped_worker(journal: Path, workdir: Path, pool, head_flow) -> tuple[dict, int, int]:
    """Three executions of one step each: ``head`` runs on the first worker, ``other`` on the second,
    ``behind`` waits on the first worker behind ``head``. The first worker is stopped (SIGSTOP), the
    second goes idle, and the pool sends the first a revoke for ``behind`` that it cannot answer."""
    started = {"head": zart.start(head_flow, ["head", str(workdir)], journal=journal, workers=2,
                                  execution_id="head")}
    pid_head = started_pid(workdir, "head")
    started["other"] = zart.start(single, ["other", str(workdir)], journal=journal, workers=2, execution_id="other")
    assert started_pid(workdir, "other") != pid_head
    executor = pool.executor
    # "other" may have waited behind "head" until the second worker started, and been taken back for it
    wait_until(lambda: _one_each(executor), what="one attempt on each worker")
    revokes, taken = executor.revokes, executor.taken_back
    started["behind"] = zart.start(single_timed, ["behind", str(workdir)], journal=journal, workers=2,
                                   execution_id="behind")
    wait_until(lambda: (started["behind"].progress() or zart.RunProgress("", 0)).scheduled == 1
               and not executor.has_queued, what="the third attempt sent to a busy worker")
    os.kill(pid_head, signal.SIGSTOP)
    try:
        wait_until(lambda: stopped(pid_head), what="every thread of the first worker stopped")
        (workdir / "other.go").touch()
        wait_until(lambda: executor.revokes == revokes + 1, what="a revoke sent to the stopped worker")
        assert executor.taken_back == taken
    except BaseException:
        os.kill(pid_head, signal.SIGCONT)
        raise
    return started, pid_head, taken


def _one_each(executor) -> bool:
    with executor._lock:
        return not executor.has_queued and [len(w.inflight) for w in executor._workers] == [1, 1]


@pytest.mark.parametrize("end", ["cancel", "timeout"])
def test_a_cancel_or_timeout_between_a_revoke_and_its_answer_runs_the_revoked_attempt_once(
        journal, tmp_path, pool, end):
    """The execution running on a worker is cancelled, or its step times out, while the pool waits for
    that worker's answer to a revoke: the worker is killed and replaced (its step cancelled, or failed
    with its timeout), the attempt the revoke named, another execution's, runs once on the other
    worker, and the answer never counts."""
    started, pid_head, taken = _behind_a_stopped_worker(journal, tmp_path, pool,
                                                 single if end == "cancel" else single_short)
    if end == "cancel":
        started["head"].cancel()
    with pytest.raises(zart.Cancelled if end == "cancel" else zart.StepTimeout):
        started["head"].result(timeout=60)
    assert started_pid(tmp_path, "behind") != pid_head
    (tmp_path / "behind.go").touch()
    assert started["behind"].result(timeout=60) == "behind"
    assert started["other"].result(timeout=60) == "other"
    assert sorted(calls(tmp_path)) == ["behind", "head", "other"]
    assert _steps(journal, "head") == ({"gated-head": ("cancelled", 1)} if end == "cancel"
                                       else {"gated-short-head": ("failed", 1)})
    assert _steps(journal, "behind") == {"gated-timed-behind": ("completed", 1)}
    assert _steps(journal, "other") == {"gated-other": ("completed", 1)}
    assert pool.executor.taken_back == taken  # the revoke's answer never counted


def test_revokes_sent_back_to_back_are_answered_in_order_each_once(tmp_path):
    """A worker answers revokes one at a time, in the order they came, on the socket its replies use:
    an older answer never arrives after a newer one, and a revoke naming attempts already given back
    (or already answered) is answered with nothing, so it can take nothing twice."""
    from steps_lib import quick, wait_for_file

    line = WorkerLine(lambda item: item.task_ids)
    answered, revoked, read_until, send = line.answered, line.revoked, line.read_until, line.send
    try:
        gate = tmp_path / "gate"
        line.run([wire(1, wait_for_file, str(gate), 30.0)] + [wire(i, quick, i) for i in range(2, 6)])
        for ids in ([2, 3], [4], [3, 4]):  # the last names only attempts already given back
            send("revoke", ids)
        read_until(lambda: len(revoked) == 3)
        assert revoked == [[2, 3], [4], []] and not answered
        gate.touch()
        read_until(lambda: len(answered) == 2)
        send("revoke", [1, 5])  # both answered already
        read_until(lambda: len(revoked) == 4)
        assert revoked[3] == [] and answered == {1: "released", 5: 6}
    finally:
        line.worker.kill()


@zart.workflow("race-waves")
def waves(args: list) -> list:
    from steps_lib import nap, square

    base, counter = args
    out = []
    for wave in range(6):
        handles = []
        for i in range(base + wave * 30, base + wave * 30 + 30):
            if i % 15 == wave % 5:  # slow steps of 3 to 21 ms, early in each wave
                handles.append(zart.schedule(nap, i, 0.003 * (1 + i % 7), counter))
            handles.append(zart.schedule(square, i, counter))
        out.extend(zart.wait(handles))
    return out


def test_executions_at_once_whose_attempts_are_taken_back_run_each_step_once(journal, tmp_path, pool):
    """Four executions at once on two workers, in waves that end with the pool's queue empty: the pool
    takes attempts back from a worker busy with a slow step while attempts of all four executions wait
    on it. Before attempt ids were unique in the process this failed 5 runs in 5 under load (steps
    failed with WorkerCrashed: 'answered for an attempt it was not running'). Take-backs depend on
    timing: the four executions run again (other ids) until the pool has taken some back, at most 4
    times; every round's steps must each have run once."""
    for round_ in range(4):
        counter = tmp_path / f"round-{round_}"
        counter.mkdir()
        bases = [10_000 * round_ + 1000 * k for k in range(4)]
        started = [zart.start(waves, [base, str(counter)], journal=journal, workers=2, execution_id=f"w{base}")
                   for base in bases]
        slow = {base: [i for wave in range(6) for i in range(base + wave * 30, base + wave * 30 + 30)
                       if i % 15 == wave % 5] for base in bases}
        for base, execution in zip(bases, started, strict=True):
            expected = []
            for i in range(base, base + 180):
                expected += ([-i] if i in slow[base] else []) + [i * i]
            assert execution.result(timeout=120) == expected
        assert sorted(calls(counter)) == sorted(
            [f"square:{i}" for base in bases for i in range(base, base + 180)]
            + [f"nap:{i}" for base in bases for i in slow[base]])
        reader = zart.journal(journal)
        for base in bases:
            steps = reader.list_steps(f"w{base}")
            assert len(steps) == 180 + len(slow[base])
            assert {(s.status.value, s.attempts) for s in steps} == {("completed", 1)}
        if pool.executor.taken_back > 0:
            break
    executor = pool.executor
    assert executor.taken_back > 0, f"no attempt was taken back in 4 rounds ({executor.revokes} revokes)"
