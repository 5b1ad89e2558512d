"""What a step can do wrong is reported as that step's failure, never as a crash of something else:
an exception that cannot be printed, an output the driver cannot load, a huge message, an open file,
a fork, a child process left behind, a worker that dies at start-up."""
import os
import sys
import textwrap

import pytest
from conftest import wait_until
from steps_lib import forker, raise_bad_str, read_it, shout, spawner, square, unloadable

import zart_nb as zart
from zart_nb._serialization import MAX_TEXT


def _alive(pid: int) -> bool:
    """Running (a zombie, killed but not yet reaped, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_an_exception_whose_str_raises_is_a_step_failure(journal):
    @zart.workflow("bad-str-flow")
    def flow(_):
        return zart.wait([zart.schedule(raise_bad_str)], return_exceptions=True)

    [error] = zart.run(flow, None, journal=journal, workers=1)
    assert type(error) is zart.StepFailed and error.step_key == "bad-str#0"
    assert "BadStr" in str(error)


def test_an_output_the_driver_cannot_load_fails_the_step_and_is_not_kept(journal, tmp_path):
    marker = tmp_path / "loadable"

    @zart.workflow("unloadable-flow")
    def flow(path):
        return unloadable(path)

    with pytest.raises(zart.StepFailed, match="unloadable#0.*cannot be unpickled"):
        zart.run(flow, str(marker), execution_id="u-1", journal=journal, workers=1)
    [step] = zart.journal(journal).list_steps("u-1")
    assert step.status is zart.StepStatus.FAILED
    marker.touch()  # the re-run runs the step again instead of failing on the stored output forever
    assert zart.run(flow, str(marker), execution_id="u-1", journal=journal, workers=1) == "loadable now"


def test_a_huge_error_message_is_stored_cut_with_a_note(journal):
    @zart.workflow("shouting")
    def flow(size):
        return shout(size)

    with pytest.raises(zart.StepFailed) as caught:
        zart.run(flow, 1_000_000, execution_id="s-1", journal=journal, workers=1)
    assert len(str(caught.value)) < MAX_TEXT + 1000
    [step] = zart.journal(journal).list_steps("s-1")
    assert "[zart: cut" in step.error and len(step.error) < MAX_TEXT + 1000
    assert len(step.traceback) < MAX_TEXT + 1000
    record = zart.journal(journal).execution_record("s-1")
    assert len(record.error or "") < MAX_TEXT + 1000


def test_an_open_file_argument_is_refused_naming_the_step_and_the_argument(journal):
    @zart.workflow("reads-a-file")
    def flow(path):
        with open(path) as handle:
            return read_it(handle)

    with pytest.raises(zart.SerializationError, match=r"argument 'handle' of step 'read-it#0'.*open file"):
        zart.run(flow, __file__, execution_id="f-1", journal=journal, workers=1)
    assert zart.journal(journal).list_steps("f-1") == []


def test_a_step_that_forks_gets_its_own_result_and_the_run_goes_on(journal):
    @zart.workflow("forking")
    def flow(n):
        return [forker(i) for i in range(n)] + [square(5)]

    assert zart.run(flow, 3, execution_id="k-1", journal=journal, workers=1) == [
        (0, False), (1, False), (2, False), 25]
    previews = {s.step_key: s.output_preview for s in zart.journal(journal).list_steps("k-1")}
    assert previews == {"forker#0": "(0, False)", "forker#1": "(1, False)", "forker#2": "(2, False)",
                        "square#0": "25"}


def test_a_timed_out_step_leaves_no_child_process_running(journal, tmp_path):
    pid_file = tmp_path / "child.pid"
    bounded = zart.step("spawner-bounded", timeout=1.0)(spawner.fn)

    @zart.workflow("spawns-then-times-out")
    def flow(path):
        return bounded(path)

    with pytest.raises(zart.StepTimeout):
        zart.run(flow, str(pid_file), journal=journal, workers=1)
    child = int(pid_file.read_text())
    wait_until(lambda: not _alive(child), timeout=30, what=f"child {child} of the step killed")


def test_a_cancelled_step_leaves_no_child_process_running(journal, tmp_path):
    pid_file = tmp_path / "child.pid"

    @zart.workflow("spawns-then-is-cancelled")
    def flow(path):
        return spawner(path)

    execution = zart.start(flow, str(pid_file), journal=journal, workers=1)
    wait_until(pid_file.exists, what="the step's child process")
    child = int(pid_file.read_text())
    assert _alive(child)
    execution.cancel()
    with pytest.raises(zart.Cancelled):
        execution.result(timeout=60)
    wait_until(lambda: not _alive(child), timeout=30, what=f"child {child} of the step killed")


def test_a_worker_that_dies_at_start_up_costs_no_attempt_and_the_pool_heals(journal, tmp_path,
                                                                                      monkeypatch):
    from zart_nb._runtime import runtime

    # Each worker process starting while a "die-*" file exists takes one and exits at once.
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(textwrap.dedent(f"""
        import os
        if "ZART_WORKER_SYS_PATH" in os.environ:
            for name in sorted(os.listdir({str(site)!r})):
                if name.startswith("die-"):
                    try:
                        os.unlink(os.path.join({str(site)!r}, name))
                    except FileNotFoundError:
                        continue
                    os._exit(3)
    """))
    for index in range(2):
        (site / f"die-{index}").touch()
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    sturdy = zart.step("sturdy-square", retries=zart.RetryPolicy(retries=3, backoff=0.01))(square.fn)

    @zart.workflow("outlives-dead-workers")
    def flow(x):
        return sturdy(x)

    runtime.shutdown_executor()  # new workers start with the environment above
    try:
        assert zart.run(flow, 7, execution_id="d-1", journal=journal, workers=1) == 49
    finally:
        runtime.shutdown_executor()
    assert not any(name.startswith("die-") for name in os.listdir(site))
    # A worker that dies while starting has run nothing it was sent: the attempt goes back to the queue
    # (before, it failed as "died during the step", a retry spent on a step that never ran). The pool
    # healed and the step ran once, on its first attempt.
    reader = zart.journal(journal)
    assert reader.list_attempts("d-1") == []  # no failed attempt
    assert [(s.step_key, s.attempts) for s in reader.list_steps("d-1")] == [("sturdy-square#0", 1)]


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_alive_helper_sees_this_process():
    assert _alive(os.getpid())


@pytest.fixture
def dying_workers(tmp_path, monkeypatch):
    """Worker processes exit as they start (each adds an ``x`` to the file this returns); the pool is
    started afresh for the test and shut down after it."""
    from zart_nb._runtime import runtime

    site = tmp_path / "site"
    site.mkdir()
    deaths = tmp_path / "deaths.log"
    (site / "sitecustomize.py").write_text(textwrap.dedent(f"""
        import os
        if "ZART_WORKER_SYS_PATH" in os.environ:
            with open({str(deaths)!r}, "a") as handle:
                handle.write("x")
            os._exit(3)
    """))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    runtime.shutdown_executor()
    yield deaths
    runtime.shutdown_executor()


@zart.workflow("never-starts")
def _never_starts(x):
    return square(x)


def _gave_up_lines(caplog) -> int:
    return len([r for r in caplog.records if "exited while starting" in r.getMessage()])


def test_workers_that_cannot_start_end_the_pool_instead_of_respawning_forever(journal, dying_workers, caplog):
    from zart_nb._executors.local import STARTUP_DEATHS
    from zart_nb._runtime import runtime

    with pytest.raises(zart.WorkerCrashed, match="square#0"):
        zart.run(_never_starts, 3, journal=journal, workers=1)
    pool = runtime.executor
    wait_until(lambda: pool is None or pool.closed, timeout=60, what="the pool to give up")
    # Bounded, not a process started every few milliseconds forever: one pool's worth. The pool started ahead of
    # the run (while the journal opens) may give up before the run's first dispatch, which then fails with its
    # error rather than start a second pool (before, a clean CI run counted 10 starts and two error lines).
    assert len(dying_workers.read_text()) <= STARTUP_DEATHS + 2
    assert _gave_up_lines(caplog) == 1


def test_a_pool_started_ahead_that_gave_up_fails_the_run_with_its_error_and_starts_no_other(
        journal, dying_workers, caplog):
    """The pool started ahead of a run (as while a journal opens) gives up before the run's first
    dispatch: that dispatch fails with the pool's error, and no second pool starts. The next run, told
    already, gets a new pool (workers that cannot start may have been fixed meanwhile)."""
    from zart_nb._executors.local import STARTUP_DEATHS
    from zart_nb._runtime import runtime

    runtime.prestart(workers=1).join()
    pool = runtime.executor
    wait_until(lambda: not pool.pids, timeout=60, what="the pool started ahead to give up")
    assert len(dying_workers.read_text()) == STARTUP_DEATHS and not pool.closed  # it has not told a run yet
    with pytest.raises(zart.WorkerCrashed, match="worker processes in a row exited while starting"):
        zart.run(_never_starts, 3, journal=journal, workers=1)
    assert len(dying_workers.read_text()) == STARTUP_DEATHS  # no second pool
    assert _gave_up_lines(caplog) == 1 and pool.closed and runtime.executor is pool
    with pytest.raises(zart.WorkerCrashed, match="square#0"):
        zart.run(_never_starts, 4, journal=journal, workers=1)
    assert runtime.executor is not pool and len(dying_workers.read_text()) > STARTUP_DEATHS
