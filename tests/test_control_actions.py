"""Control actions with real worker processes: restart, rerun_steps, retry_step, fork, resume --extend and
recover, each journaling its run's trigger; through the engine of another process when one holds the journal."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import wait_until
from control_lib import guarded, pipeline, two_transforms
from steps_lib import calls

import zart_nb as zart
from zart_nb._monitor.client import MonitorClient

TESTS = str(Path(__file__).parent)


def _data(tmp_path: Path, **extra: object) -> dict:
    return {"dir": str(tmp_path), "x": 2, **extra}


def _runs(journal: Path, execution_id: str) -> list[tuple[int, str, str | None]]:
    reader = zart.journal(journal, live=False)
    try:
        return [(r.run_number, r.status.value, None if r.trigger is None else r.trigger.value)
                for r in reader.list_runs(execution_id)]
    finally:
        reader.close()


def test_restart_runs_every_step_again_and_keeps_the_earlier_run(journal, tmp_path):
    assert zart.run(pipeline, _data(tmp_path), execution_id="p-1", journal=journal, workers=1) == \
        {"y": 20, "report": "report t"}
    handle = zart.restart("p-1", journal)
    assert isinstance(handle, zart.Execution) and handle.execution_id == "p-1"
    assert handle.result(60) == {"y": 20, "report": "report t"}
    assert handle.status is zart.ExecutionStatus.COMPLETED
    assert calls(tmp_path) == ["load:2", "transform:2", "report:t"] * 2
    assert _runs(journal, "p-1") == [(1, "completed", "initial"), (2, "completed", "restart")]
    reader = zart.journal(journal, live=False)
    steps = {s.step_key: s for s in reader.list_steps("p-1")}
    assert {s.run_number for s in steps.values()} == {2}
    assert steps["load#0"].reason == zart.RunReason.REQUESTED.value
    assert len(reader.list_steps("p-1", current_only=False)) == 6  # the first run's records are kept
    reader.close()


def test_rerun_steps_runs_the_named_step_again_and_names_the_reused_steps_after_it(journal, tmp_path):
    zart.run(pipeline, _data(tmp_path), execution_id="p-2", journal=journal, workers=1)
    handle = zart.rerun_steps("p-2", ["transform#0"], journal=journal)
    assert handle.result(60) == {"y": 20, "report": "report t"}
    assert calls(tmp_path) == ["load:2", "transform:2", "report:t", "transform:2"]
    reader = zart.journal(journal, live=False)
    run = reader.list_runs("p-2")[-1]
    reader.close()
    assert run.trigger is zart.RunTrigger.RERUN and (run.executed, run.reused) == (1, 2)
    assert run.trigger_detail == "steps transform#0; reused after them, maybe stale: report#0"

    after = zart.rerun_steps("p-2", ["transform#0"], after=True, journal=journal)
    after.result(60)
    assert calls(tmp_path)[4:] == ["transform:2", "report:t"]
    with pytest.raises(zart.ConfigurationError, match="no step 'nope#0'"):
        zart.rerun_steps("p-2", ["nope#0"], journal=journal)


def test_retry_step_runs_a_failed_step_again_and_continues(journal, tmp_path):
    (tmp_path / "fail").touch()
    with pytest.raises(zart.StepFailed):
        zart.run(pipeline, _data(tmp_path), execution_id="p-3", journal=journal, workers=1)
    with pytest.raises(zart.StateConflict, match="only a failed"):
        zart.retry_step("p-3", "load#0", journal)
    (tmp_path / "fail").unlink()
    handle = zart.retry_step("p-3", "transform#0", journal)
    assert handle.result(60) == {"y": 20, "report": "report t"}
    assert calls(tmp_path) == ["load:2", "transform:2", "transform:2", "report:t"]
    assert _runs(journal, "p-3") == [(1, "failed", "initial"), (2, "completed", "retry")]


def test_a_retry_runs_only_its_step_and_another_failed_step_fails_again_as_journaled(journal, tmp_path):
    (tmp_path / "fail").touch()
    with pytest.raises(zart.StepFailed):
        zart.run(two_transforms, _data(tmp_path), execution_id="two", journal=journal, workers=2)
    assert sorted(calls(tmp_path)) == ["transform:1", "transform:2"]
    (tmp_path / "fail").unlink()
    with pytest.raises(zart.StepFailed, match="transform failed.*failed before") as failed:
        zart.retry_step("two", "transform#0", journal).result(60)
    assert failed.value.step_key == "transform#1"
    assert sorted(calls(tmp_path)) == ["transform:1", "transform:1", "transform:2"]  # transform#1 did not run
    reader = zart.journal(journal, live=False)
    steps = {s.step_key: s for s in reader.list_steps("two")}
    reader.close()
    assert (steps["transform#0"].status, steps["transform#0"].run_number) == (zart.StepStatus.COMPLETED, 2)
    assert steps["transform#1"].this_run(2) == "failed in run 1, not run again"
    assert zart.retry_step("two", "transform#1", journal).result(60) == [10, 20]
    assert sorted(calls(tmp_path)) == ["transform:1", "transform:1", "transform:2", "transform:2"]
    assert _runs(journal, "two") == [(1, "failed", "initial"), (2, "failed", "retry"), (3, "completed", "retry")]


def test_fork_reuses_the_steps_before_the_named_one_and_takes_new_input(journal, tmp_path):
    zart.run(pipeline, _data(tmp_path), execution_id="p-4", journal=journal, workers=1)
    same = zart.fork("p-4", from_step="transform#0", journal=journal)
    assert same.execution_id == "p-4-fork-1"
    assert same.result(60) == {"y": 20, "report": "report t"}
    assert calls(tmp_path)[3:] == ["transform:2", "report:t"]  # load#0 copied, not run
    other = zart.fork("p-4", from_step="report#0", new_id="p-4-b", data=_data(tmp_path, tag="new"),
                      journal=journal)
    assert other.result(60) == {"y": 20, "report": "report new"}
    assert calls(tmp_path)[5:] == ["report:new"]
    reader = zart.journal(journal, live=False)
    runs = reader.list_runs("p-4-b")
    assert [(r.trigger, r.reused, r.executed) for r in runs] == [(zart.RunTrigger.FORK, 2, 1)]
    assert runs[0].trigger_detail == "from p-4 at step report#0 (2 steps before it copied), with a new input"
    assert reader.execution_record("p-4").run_number == 1  # the original is untouched
    ran = {s.step_key: s.this_run(1) for s in reader.list_steps("p-4-b")}
    reader.close()
    assert ran == {"load#0": "copied from p-4", "transform#0": "copied from p-4", "report#0": "executed (new)"}
    shown = _cli("show", "p-4-b", "--journal", str(journal), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    rows = {line.split()[0]: line for line in shown.stdout.splitlines() if "#0" in line}
    assert "copied from p-4" in rows["load#0"] and "copied from p-4" in rows["transform#0"], shown.stdout
    assert "executed (new)" in rows["report#0"], shown.stdout
    with pytest.raises(zart.StateConflict, match="exists already"):
        zart.fork("p-4", from_step="report#0", new_id="p-4-b", journal=journal)


def test_resume_extend_moves_a_passed_deadline(journal, tmp_path):
    with pytest.raises(zart.DeadlineExceeded):
        zart.run(_no_handler, {"dir": str(tmp_path)}, execution_id="d-1", journal=journal, workers=1,
                 deadline=0.5)
    (tmp_path / "gate").touch()
    handle = zart.resume("d-1", journal, extend=60)
    assert handle.result(60) == "through"
    assert _runs(journal, "d-1") == [(1, "failed", "initial"), (2, "completed", "resume")]


@zart.workflow("ungated")
def _no_handler(data: dict) -> str:
    from control_lib import gated

    return gated(data["dir"])


DRIVER = """
import sys
sys.path.insert(0, {tests!r})
import zart_nb as zart
from control_lib import guarded
zart.run(guarded, {{"dir": {folder!r}}}, execution_id="g-1", journal={journal!r}, workers=1, display=False)
"""


def test_recover_resumes_what_a_dead_process_left_and_keeps_the_journaled_on_failure(journal, tmp_path):
    journal.parent.mkdir()
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(tests=TESTS, folder=str(tmp_path), journal=str(journal)))
    driver = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True)
    try:
        wait_until(lambda: "gated" in calls(tmp_path), timeout=60, what="the step to start")
        os.killpg(driver.pid, signal.SIGKILL)
        driver.communicate(timeout=30)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.communicate()
    # One failed on purpose beside it: recover leaves it alone.
    (tmp_path / "fail").touch()
    with pytest.raises(zart.StepFailed):
        zart.run(pipeline, _data(tmp_path), execution_id="p-5", journal=journal, workers=1)
    handles = zart.recover(journal)
    assert [h.execution_id for h in handles] == ["g-1"]
    # The step fails now: the journaled @zart.workflow's on_failure turns it into an output.
    assert handles[0].result(60) == "recovered from StepFailed"
    reader = zart.journal(journal, live=False)
    runs = reader.list_runs("g-1")
    reader.close()
    assert [(r.trigger, r.ended_by) for r in runs] == [
        (zart.RunTrigger.INITIAL, zart.RunEnd.PROCESS_DIED), (zart.RunTrigger.RECOVER, zart.RunEnd.RECOVERED)]
    assert zart.recover(journal) == []


def test_a_resume_from_the_journal_keeps_the_workflow_options(journal, tmp_path):
    from zart_nb._actions import prepare_resume
    from zart_nb._runtime import runtime

    (tmp_path / "gate").touch()
    assert zart.run(guarded, {"dir": str(tmp_path)}, execution_id="g-2", journal=journal, workers=1) == "through"
    held = runtime.journal(journal)
    with held.hold():
        held.set_status("g-2", zart.ExecutionStatus.CANCELLED)
        workflow = prepare_resume(held, "g-2").workflow
    assert workflow.max_recoveries == 3 and workflow.on_failure is not None


HOLDER = """
import os, sys, time
sys.path.insert(0, {tests!r})
import zart_nb as zart

@zart.step("ready")
def ready():
    return "released"

@zart.workflow("holder")
def holder(release):
    while not os.path.exists(release):
        time.sleep(0.02)
    return ready()

print("HOLDER", zart.run(holder, sys.argv[2], execution_id="holder", journal=sys.argv[1], workers=1), flush=True)
"""


def test_actions_go_through_the_engine_that_holds_the_journal(journal, tmp_path):
    zart.run(pipeline, _data(tmp_path), execution_id="p-6", journal=journal, workers=1)
    zart.journal(journal).close()
    from zart_nb._runtime import runtime

    runtime.journal(journal).close()
    (tmp_path / "holder.py").write_text(HOLDER.format(tests=TESTS))
    release = tmp_path / "release"
    engine = subprocess.Popen([sys.executable, str(tmp_path / "holder.py"), str(journal), str(release)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        wait_until(lambda: MonitorClient.connect(journal), timeout=60, what="the engine's endpoint").close()
        handle = zart.rerun_steps("p-6", ["transform#0"], journal=journal)
        assert isinstance(handle, zart.RemoteExecution) and handle.pid == engine.pid
        assert handle.stale == ("report#0",)
        record = handle.wait(60)
        assert record is not None and record.status is zart.ExecutionStatus.COMPLETED and record.run_number == 2
        assert handle.status is zart.ExecutionStatus.COMPLETED
        restarted = zart.restart("p-6", journal)
        assert restarted.wait(60).run_number == 3
        forked = zart.fork("p-6", from_step="report#0", data=_data(tmp_path, tag="remote"), journal=journal)
        assert "'report remote'" in forked.wait(60).output_preview
        with MonitorClient.connect(journal) as client:
            runs = client.list_runs("p-6")
            assert [(r.trigger, r.pid) for r in runs] == [
                (zart.RunTrigger.INITIAL, os.getpid()), (zart.RunTrigger.RERUN, engine.pid),
                (zart.RunTrigger.RESTART, engine.pid)]
        with pytest.raises(zart.StateConflict):
            zart.retry_step("p-6", "load#0", journal)
        release.touch()
        out, err = engine.communicate(timeout=60)
        assert "HOLDER released" in out, err
        assert forked.result(30) == {"y": 20, "report": "report remote"}  # read from the released file
    finally:
        if engine.poll() is None:
            engine.kill()
            engine.communicate()


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": TESTS, "ZART_LOCK_TIMEOUT": "5"}
    return subprocess.run([sys.executable, "-m", "zart_nb", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=120)


def test_the_cli_retries_reruns_forks_and_restarts_and_zart_runs_shows_each_trigger(journal, tmp_path):
    (tmp_path / "fail").touch()
    with pytest.raises(zart.StepFailed):
        zart.run(pipeline, _data(tmp_path), execution_id="c-1", journal=journal, workers=1)
    zart.journal(journal).close()
    from zart_nb._runtime import runtime

    runtime.journal(journal).close()
    j = str(journal)
    refused = _cli("retry", "c-1", "load#0", "--journal", j, cwd=tmp_path)
    assert refused.returncode == 1 and "only a failed" in refused.stderr
    (tmp_path / "fail").unlink()
    retried = _cli("retry", "c-1", "transform#0", "--journal", j, cwd=tmp_path)
    assert retried.returncode == 0, retried.stderr
    assert "Execution completed (run 2)." in retried.stdout
    rerun = _cli("rerun", "c-1", "--step", "transform#0", "--journal", j, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert "maybe stale: report#0" in rerun.stdout and "(run 3)" in rerun.stdout
    forked = _cli("fork", "c-1", "--from-step", "report#0", "--data", json_data(tmp_path, "cli"),
                  "--new-id", "c-2", "--journal", j, cwd=tmp_path)
    assert forked.returncode == 0, forked.stderr
    assert "report cli" in forked.stdout
    restarted = _cli("restart", "c-1", "--journal", j, cwd=tmp_path)
    assert restarted.returncode == 0 and "(run 4)" in restarted.stdout, restarted.stderr
    extended = _cli("resume", "c-1", "--extend", "-3", "--journal", j, cwd=tmp_path)
    assert extended.returncode == 2 and "expected a positive number of seconds" in extended.stderr
    nothing = _cli("recover", "--journal", j, cwd=tmp_path)
    assert nothing.returncode == 0 and "No execution to recover" in nothing.stdout
    runs = _cli("runs", "c-1", "--journal", j, cwd=tmp_path)
    assert runs.returncode == 0, runs.stderr
    assert "TRIGGER" in runs.stdout.splitlines()[0] and "initial" in runs.stdout.splitlines()[1].split()
    assert "retry: step transform#0" in runs.stdout and "rerun: steps transform#0" in runs.stdout
    assert "restart: was completed" in runs.stdout
    assert calls(tmp_path) == ["load:2", "transform:2", "transform:2", "report:t", "transform:2", "report:cli",
                               "load:2", "transform:2", "report:t"]


def json_data(tmp_path: Path, tag: str) -> str:
    import json

    return json.dumps(_data(tmp_path, tag=tag))
