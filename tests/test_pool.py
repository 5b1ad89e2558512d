"""The local worker pool: replies not held back by the next step, timeouts of queued steps, shutdown
under a run, a crashed or misbehaving worker."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import wait_until
from steps_lib import quick, slow_forever, square, wait_for_file

import zart_nb as zart


def test_a_finished_step_is_reported_while_the_next_one_runs(journal, tmp_path):
    barrier = tmp_path / "go"

    @zart.workflow("fast-then-slow")
    def flow(_):
        fast = zart.schedule(quick, 1)
        slow = zart.schedule(wait_for_file, str(barrier))
        fast.wait_done(timeout=30)  # one worker: the slow step runs right after, in the same process
        done_first = not slow.done
        barrier.touch()
        return fast.result(), slow.result(), done_first

    assert zart.run(flow, None, journal=journal, workers=1) == (2, "released", True)


def test_a_step_queued_behind_another_still_times_out(journal, tmp_path):
    @zart.workflow("queued-timeout")
    def flow(_):
        first = zart.schedule(quick, 1)
        stuck = zart.schedule(slow_forever, str(tmp_path / "never"))
        return zart.wait([first, stuck], return_exceptions=True)

    first, stuck = zart.run(flow, None, journal=journal, workers=1)
    assert first == 2
    assert isinstance(stuck, zart.StepTimeout) and stuck.step_key == "slow-forever#0"


def test_shutting_the_pool_down_under_a_run_ends_its_steps(journal, tmp_path):
    from zart_nb._runtime import runtime

    @zart.workflow("orphaned-by-shutdown")
    def flow(path):
        return zart.wait([zart.schedule(wait_for_file, path)])

    execution = zart.start(flow, str(tmp_path / "never"), journal=journal)
    wait_until(lambda: runtime.executor is not None and not runtime.executor.idle, what="a step in the pool")
    zart.shutdown_pool()
    with pytest.raises(zart.StepCancelled, match="wait-for-file#0"):
        execution.result(timeout=60)
    assert zart.run(lambda x: square(x), 3, journal=journal) == 9  # a new pool starts on demand


@zart.step("hold-child")
def hold_child(pid_dir: str, tag: str) -> None:
    """Start a child that outlives nothing on its own, note both pids, and wait to be killed."""
    import time

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    (Path(pid_dir) / tag).write_text(f"{os.getpid()} {child.pid}")
    while True:
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except OSError:
        return False


def test_shutdown_ends_every_busy_worker_and_what_its_step_started(journal, tmp_path):
    from zart_nb._runtime import runtime

    @zart.workflow("held-children")
    def flow(path):
        return zart.wait([zart.schedule(hold_child, path, tag) for tag in ("a", "b")])

    execution = zart.start(flow, str(tmp_path), journal=journal, workers=2)
    wait_until(lambda: all((tmp_path / tag).exists() for tag in "ab"), what="both steps running")
    pids = [tuple(map(int, (tmp_path / tag).read_text().split())) for tag in "ab"]
    assert len({worker for worker, _ in pids}) == 2  # one step on each worker
    zart.shutdown_pool()
    # The workers are this process's children: reaped before shutdown_pool returned, not merely signalled.
    for worker, _ in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(worker, os.WNOHANG)
        assert not _alive(worker)
    wait_until(lambda: not any(_alive(child) for _, child in pids), what="the steps' children killed too")
    with pytest.raises(zart.StepCancelled):
        execution.result(timeout=60)
    assert runtime.executor is None or runtime.executor.closed


def test_a_later_worker_count_is_honoured_when_nothing_runs(journal, caplog):
    from zart_nb._runtime import runtime

    @zart.workflow("sized")
    def flow(x):
        return square(x)

    assert zart.run(flow, 2, journal=journal, workers=1) == 4
    assert runtime.executor is not None and runtime.executor.size == 1
    with caplog.at_level("WARNING", logger="zart_nb"):
        assert zart.run(flow, 3, journal=journal, workers=3) == 9
    assert runtime.executor.size == 3
    assert "in use" not in caplog.text


def test_worker_processes_get_the_umask_of_the_process_not_the_journals(tmp_path):
    # The journal is created under umask 0o077 for a moment (process-wide); the pool starts its
    # workers at that very moment on purpose. A file a step creates must follow the user's umask.
    program = r"""
import os, stat, sys, zart_nb as zart

@zart.step("touch")
def touch(path):
    with open(path, "w") as handle:
        handle.write("x")
    return stat.S_IMODE(os.stat(path).st_mode)

@zart.workflow("touching")
def touching(path):
    return touch(path)

os.umask(0o022)
print(oct(zart.run(touching, sys.argv[1], journal="j.duckdb", workers=1, display=False)))
"""
    proc = subprocess.run([sys.executable, "-c", program, str(tmp_path / "made")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-1] == "0o644"
    assert oct(os.stat(tmp_path / "j.duckdb").st_mode & 0o777) == "0o600"


def test_quick_steps_queued_behind_a_slow_one_run_on_the_idle_worker(journal, tmp_path):
    """A fan-out whose quick steps land behind a slow one on the same worker: the other worker takes
    them back. The slow step ends only once every quick step has (it waits for a file the workflow
    creates then), giving up after 30 s: without revocation the quick steps it holds would wait for it."""
    gate = tmp_path / "gate"

    @zart.workflow("slow-and-quick")
    def flow(_):
        slow = zart.schedule(wait_for_file, str(gate), 30.0)
        quicks = [zart.schedule(quick, i) for i in range(40)]
        results = zart.wait(quicks)
        gate.touch()
        return zart.wait([slow], return_exceptions=True)[0], results

    slow, results = zart.run(flow, None, journal=journal, workers=2)
    assert slow == "released", f"the slow step gave up waiting for the quick steps queued behind it: {slow!r}"
    assert results == [quick.fn(i) for i in range(40)]


def test_attempts_taken_back_under_load_run_exactly_once(journal, tmp_path):
    """500 quick steps with slow ones among them, in waves that end with the queue empty: attempts
    are taken back from the worker running a slow step (racing it as it takes the next one), and
    every step still runs exactly once with its own output."""
    from steps_lib import calls, nap

    from zart_nb._runtime import runtime

    counter = str(tmp_path)

    @zart.workflow("waves")
    def flow(_):
        out = []
        for wave in range(10):
            handles = []
            for i in range(wave * 50, wave * 50 + 50):
                if i % 25 == wave % 5:  # slow steps of 4 to 40 ms, early in each wave
                    handles.append(zart.schedule(nap, i, 0.004 * (1 + i % 10), counter))
                handles.append(zart.schedule(square, i, counter))
            out.extend(zart.wait(handles))
        return out

    zart.shutdown_pool()  # a fresh pool, for its counters
    out = zart.run(flow, None, journal=journal, workers=2)
    slow = [i for i in range(500) if i % 25 == (i // 50) % 5]
    expected = []
    for i in range(500):
        expected += ([-i] if i in slow else []) + [i * i]
    assert out == expected
    ran = calls(tmp_path)
    assert sorted(ran) == sorted([f"square:{i}" for i in range(500)] + [f"nap:{i}" for i in slow])
    pool = runtime.executor
    assert pool is not None and pool.taken_back > 0, f"no attempt was taken back ({pool.revokes} revokes)"
    reader = zart.journal(journal)
    steps = reader.list_steps(reader.list_executions()[0].execution_id)
    assert len(steps) == 500 + len(slow) and {step.attempts for step in steps} == {1}


def test_a_worker_killed_before_it_answers_a_revoke_loses_nothing(tmp_path):
    """The pool asks a worker for the attempts behind its running step, and the worker dies before
    it answers (stopped, then killed): its step fails as crashed, and the attempts it held run once
    elsewhere, as after any crash."""
    import os
    import signal
    import threading

    from race_steps import stopped
    from steps_lib import announce_then_wait

    from zart_nb import _serialization as ser
    from zart_nb._executors.base import OutcomeKind, Task
    from zart_nb._executors.local import LocalPool

    outcomes, lock = [], threading.Lock()

    def sink(batch):
        with lock:
            outcomes.extend(batch)

    def task(task_id, fn, *args):
        blob = ser.dumps_by_value(fn.fn)
        return Task(task_id, fn.name, blob, ser.dumps((args, {})), "e-1", f"{fn.name}#{task_id}", 1)

    def outcome_kinds():
        with lock:
            return {o.task.task_id: o.kind for o in outcomes}

    started_a, started_b = tmp_path / "a-started", tmp_path / "b-started"
    pool = LocalPool(2, sink)
    try:
        pool.submit([task(1, announce_then_wait, str(started_a), str(tmp_path / "never"))])
        wait_until(started_a.exists, what="the first worker's step to start")
        pool.submit([task(2, announce_then_wait, str(started_b), str(tmp_path / "gate-b"))])
        wait_until(started_b.exists, what="the second worker's step to start")
        victim = int(wait_until(started_a.read_text, what="its pid"))
        os.kill(victim, signal.SIGSTOP)  # it can take no more, answer no revoke
        wait_until(lambda: stopped(victim), what="every thread of the worker stopped")  # kill() returns before
        # (step b may have been sent behind a and taken back for the second worker as the pool started)
        revokes, taken_back = pool.revokes, pool.taken_back
        pool.submit([task(i, quick, i) for i in range(3, 13)])  # queued: both workers are busy
        (tmp_path / "gate-b").touch()  # the second worker takes them; one lands behind the stopped one
        wait_until(lambda: pool.revokes > revokes, what="a revoke sent to the stopped worker")
        assert pool.taken_back == taken_back
        os.kill(victim, signal.SIGKILL)
        kinds = wait_until(lambda: len(outcome_kinds()) == 12 and outcome_kinds(), what="every outcome")
        assert kinds == {1: OutcomeKind.CRASHED, **{i: OutcomeKind.OK for i in range(2, 13)}}
        with lock:
            assert len(outcomes) == 12, "an attempt was reported twice"
            results = {o.task.task_id: ser.loads(o.blob) for o in outcomes if o.kind is OutcomeKind.OK}
        assert results == {2: "released", **{i: i + 1 for i in range(3, 13)}}
    finally:
        pool.shutdown()


def test_what_a_step_starts_inherits_neither_the_workers_socket_nor_its_revoke_pipe(tmp_path):
    # A background child holding them would keep a dead worker's socket open (the driver would not
    # see it die). os.system (fork and exec, no close_fds) hands on every inheritable descriptor.
    program = r"""
import json, os, sys, zart_nb as zart

@zart.step("inherited")
def inherited(listing):
    os.system(f"ls -l /proc/self/fd > {listing} 2>&1")
    with open(listing) as handle:
        return [line.split()[-1] for line in handle if "socket:" in line or "pipe:" in line]

@zart.workflow("look")
def look(listing):
    return inherited(listing)

print(json.dumps(zart.run(look, sys.argv[1], journal="j.duckdb", workers=2, display=False)))
"""
    proc = subprocess.run([sys.executable, "-c", program, str(tmp_path / "fds.txt")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
