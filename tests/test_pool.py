"""The local worker pool: replies not held back by the next step, timeouts of queued steps, shutdown
under a run, a crashed or misbehaving worker."""
import os
import subprocess
import sys

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
