"""Retry rules, deadlines and failure handling, with real worker processes (issue 16's slice)."""
from __future__ import annotations

import os
import time

import pytest
from steps_lib import calls

import zart_nb as zart

ZERO = dict(backoff=0.0, max_backoff=0.0)


def _record(counter_dir: str, key: str) -> None:
    fd = os.open(os.path.join(counter_dir, "calls.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.write(fd, f"{key}\n".encode())
    os.close(fd)


class Transient(Exception):
    pass


def _raiser(kind: str, message: str):
    def fail(counter_dir: str) -> None:
        _record(counter_dir, kind)
        raise {"value": ValueError, "conn": ConnectionError}[kind](message)
    return fail


# --- retry rules ---------------------------------------------------------------------------------


def test_retry_on_stops_at_a_fatal_error_type_in_the_worker(journal, tmp_path):
    fails = zart.step("fatal", retries=zart.RetryPolicy(retries=3, retry_on=(ConnectionError,), **ZERO))(
        _raiser("value", "bad input"))

    @zart.workflow("fatal-flow")
    def flow(counter_dir):
        return fails(counter_dir)

    with pytest.raises(zart.StepFailed) as caught:
        zart.run(flow, str(tmp_path), execution_id="f-1", journal=journal, workers=1)
    assert calls(tmp_path) == ["value"]  # one attempt: ValueError is not in retry_on
    assert type(caught.value.__cause__) is ValueError and str(caught.value.__cause__) == "bad input"
    assert caught.value.attempts == 1 and "not retried" in str(caught.value)


def test_retry_on_keeps_retrying_the_listed_types(journal, tmp_path):
    fails = zart.step("transient", retries=zart.RetryPolicy(retries=2, retry_on=(ConnectionError,), **ZERO))(
        _raiser("conn", "reset"))

    @zart.workflow("transient-flow")
    def flow(counter_dir):
        return fails(counter_dir)

    with pytest.raises(zart.StepFailed) as caught:
        zart.run(flow, str(tmp_path), execution_id="t-1", journal=journal, workers=1)
    assert calls(tmp_path) == ["conn"] * 3
    assert caught.value.attempts == 3 and type(caught.value.__cause__) is ConnectionError


def test_should_retry_is_a_predicate_on_the_exception(journal, tmp_path):
    policy = zart.RetryPolicy(retries=3, should_retry=lambda exc: "again" in str(exc), **ZERO)

    def fail(counter_dir: str, message: str) -> None:
        _record(counter_dir, message)
        raise RuntimeError(message)

    fails = zart.step("predicate", retries=policy)(fail)

    @zart.workflow("predicate-flow")
    def flow(data):
        return zart.wait([zart.schedule(fails.named(message), data, message) for message in ("again", "stop")],
                         return_exceptions=True)

    again, stop = zart.run(flow, str(tmp_path), execution_id="p-1", journal=journal, workers=1)
    assert sorted(calls(tmp_path)) == ["again"] * 4 + ["stop"]
    assert again.attempts == 4 and stop.attempts == 1
    assert str(stop.__cause__) == "stop"


def _sleepy(seconds: float) -> None:
    time.sleep(seconds)


def _die() -> None:
    os._exit(3)


def test_retry_on_timeout_false_gives_up_after_one_timed_out_attempt(journal):
    sleepy = zart.step("sleepy", timeout=0.3,
                       retries=zart.RetryPolicy(retries=2, retry_on_timeout=False, **ZERO))(_sleepy)

    @zart.workflow("sleepy-flow")
    def flow(_):
        return sleepy(30)

    with pytest.raises(zart.StepTimeout) as caught:
        zart.run(flow, None, execution_id="s-1", journal=journal, workers=1)
    assert caught.value.attempts == 1
    assert len(zart.journal(journal).list_attempts("s-1", "sleepy#0")) <= 1


def test_retry_on_crash_false_gives_up_after_one_crash(journal):
    dies = zart.step("dies", retries=zart.RetryPolicy(retries=2, retry_on_crash=False, **ZERO))(_die)

    @zart.workflow("dies-flow")
    def flow(_):
        return dies()

    with pytest.raises(zart.WorkerCrashed) as caught:
        zart.run(flow, None, execution_id="c-1", journal=journal, workers=1)
    assert caught.value.attempts == 1


def test_crashes_are_still_retried_by_default(journal):
    dies = zart.step("dies-default", retries=zart.RetryPolicy(retries=1, **ZERO))(_die)

    @zart.workflow("dies-default-flow")
    def flow(_):
        return dies()

    with pytest.raises(zart.WorkerCrashed) as caught:
        zart.run(flow, None, execution_id="c-2", journal=journal, workers=1)
    assert caught.value.attempts == 2


@pytest.mark.parametrize(("field", "bad"), [
    ("retry_on", "ValueError"), ("retry_on", (ValueError, 3)), ("retry_on", ()), ("should_retry", 3),
    ("jitter", 2.0), ("jitter", -0.1), ("jitter", True), ("retry_on_timeout", "no"), ("retry_on_crash", None),
])
def test_bad_retry_rules_are_refused(field, bad):
    with pytest.raises(zart.DefinitionError, match=field):
        zart.RetryPolicy(retries=1, **{field: bad})


def test_jitter_spreads_the_delay_within_its_fraction():
    policy = zart.RetryPolicy(retries=1, backoff=1.0, jitter=0.5)
    delays = {policy.delay(1) for _ in range(50)}
    assert all(0.5 <= delay <= 1.5 for delay in delays) and len(delays) > 1
    assert zart.RetryPolicy(retries=1, retry_on=ValueError).retry_on == (ValueError,)


# --- deadlines -----------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _stall(counter_dir: str, tag: str) -> int:
    _record(counter_dir, f"{tag}:{os.getpid()}")
    time.sleep(120)
    return 0


stall = zart.step("stall")(_stall)


@zart.workflow("stalling")
def stalling(counter_dir):
    first = zart.schedule(stall.named("first"), counter_dir, "first")
    second = zart.schedule(stall.named("second"), counter_dir, "second")  # queued behind it: one worker
    return zart.wait([first, second])


def test_a_passed_deadline_kills_running_steps_and_fails_the_execution(journal, tmp_path):
    with pytest.raises(zart.DeadlineExceeded) as caught:
        zart.run(stalling, str(tmp_path), execution_id="d-1", journal=journal, workers=1, deadline=1.5)
    [started] = calls(tmp_path)  # the queued step never started
    assert started.startswith("first:")
    worker = int(started.split(":")[1])
    from conftest import wait_until
    wait_until(lambda: not _alive(worker), timeout=10, what="the running step's worker killed")
    error = caught.value
    assert error.execution_id == "d-1" and "deadline" in str(error)
    reader = zart.journal(journal)
    record = reader.execution_record("d-1")
    assert record.status is zart.ExecutionStatus.FAILED and "passed its deadline" in record.error
    assert record.ended_by is zart.RunEnd.DEADLINE_EXCEEDED
    steps = {step.step_key: step.status for step in reader.list_steps("d-1")}
    assert steps == {"first": zart.StepStatus.CANCELLED, "second": zart.StepStatus.CANCELLED}


def _fails_unless(path: str) -> str:
    if not os.path.exists(path):
        raise RuntimeError("not yet")
    return "done"


def test_the_deadline_is_journaled_at_the_first_run_and_kept_on_resume(journal, tmp_path):
    gate = tmp_path / "gate"
    step = zart.step("gated")(_fails_unless)

    @zart.workflow("gated-flow")
    def flow(path):
        return step(path)

    started = time.time()
    with pytest.raises(zart.StepFailed):
        zart.run(flow, str(gate), execution_id="k-1", journal=journal, workers=1, deadline=4)
    from conftest import wait_until
    wait_until(lambda: time.time() > started + 4.5, timeout=30, what="the deadline passed")
    gate.touch()
    # A resume keeps the first run's deadline, whatever it is given: it fails at once, running nothing.
    with pytest.raises(zart.DeadlineExceeded) as caught:
        zart.run(flow, str(gate), execution_id="k-1", journal=journal, workers=1, deadline=3600)
    assert started < caught.value.deadline < started + 4.5 + 1
    runs = zart.journal(journal).list_runs("k-1")
    assert [run.ended_by for run in runs] == [zart.RunEnd.FAILED, zart.RunEnd.DEADLINE_EXCEEDED]
    assert runs[1].executed == 0


def test_a_datetime_deadline_and_the_workflow_s_own(journal, tmp_path):
    from datetime import UTC, datetime, timedelta

    @zart.workflow("late", deadline=timedelta(seconds=1))
    def late(counter_dir):
        return stall(counter_dir, "late")

    with pytest.raises(zart.DeadlineExceeded):
        zart.run(late, str(tmp_path), execution_id="w-1", journal=journal, workers=1)
    past = datetime.now(UTC) - timedelta(seconds=1)
    with pytest.raises(zart.DeadlineExceeded) as caught:
        zart.run(late, str(tmp_path), execution_id="w-2", journal=journal, workers=1, deadline=past)
    assert caught.value.deadline == pytest.approx(past.timestamp())
    assert [call.split(":")[0] for call in calls(tmp_path)] == ["late"]  # w-2 ran nothing


class Stalling(zart.DurableExecution):
    deadline = 1.0

    def run(self, counter_dir):
        return stall(counter_dir, "class")


def test_durable_execution_deadline_and_the_scheduler(journal, tmp_path):
    registry = zart.TaskRegistry()
    registry.register("stalling-class", Stalling())
    scheduler = zart.DurableScheduler(registry, journal, workers=1, display=False)
    with pytest.raises(zart.DeadlineExceeded):
        scheduler.run("c-1", "stalling-class", str(tmp_path))
    execution = scheduler.start("c-2", "stalling-class", str(tmp_path), deadline=0.5)
    with pytest.raises(zart.DeadlineExceeded):
        execution.result(timeout=60)


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), True, "soon", [1]])
def test_bad_deadlines_are_refused(journal, bad):
    with pytest.raises(zart.ConfigurationError, match="deadline"):
        zart.run(stalling, None, journal=journal, deadline=bad)
    with pytest.raises(zart.ConfigurationError, match="deadline"):
        zart.workflow("bad", deadline=bad)(lambda data: data)


def test_a_naive_datetime_deadline_is_refused(journal):
    from datetime import datetime

    with pytest.raises(zart.ConfigurationError, match="time zone"):
        zart.start(stalling, None, journal=journal, deadline=datetime.now())


# --- max_recoveries ------------------------------------------------------------------------------


def test_max_recoveries_fails_an_execution_whose_process_died_that_often(tmp_path):
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from conftest import wait_until

    script = Path(__file__).parent / "scripts" / "recovery_driver.py"
    journal = tmp_path / ".zart" / "journal.duckdb"
    started = tmp_path / "started.log"

    def drive(name: str) -> subprocess.Popen:
        with open(tmp_path / f"{name}.out", "w") as out, open(tmp_path / f"{name}.err", "w") as err:
            return subprocess.Popen([sys.executable, str(script), str(journal), str(tmp_path), "r-1", "2"],
                                    stdout=out, stderr=err)

    for run in (1, 2):
        driver = drive(f"run{run}")
        try:
            wait_until(lambda n=run: started.exists() and len(started.read_text().split()) == n, timeout=60,
                       what=f"run {run}'s step started")
            driver.send_signal(signal.SIGKILL)
            assert driver.wait(60) == -signal.SIGKILL
        finally:
            if driver.poll() is None:
                driver.kill()
                driver.wait()
    driver = drive("run3")
    assert driver.wait(120) == 3, (tmp_path / "run3.err").read_text()
    out = (tmp_path / "run3.out").read_text()
    assert out.startswith("RecoveriesExhausted:") and "max_recoveries" in out
    assert len(started.read_text().split()) == 2  # not run a third time
    reader = zart.journal(journal)
    record = reader.execution_record("r-1")
    assert record.status is zart.ExecutionStatus.FAILED and "max_recoveries" in record.error
    ends = [run.ended_by for run in reader.list_runs("r-1")]
    assert ends == [zart.RunEnd.PROCESS_DIED, zart.RunEnd.PROCESS_DIED, zart.RunEnd.FAILED]


def test_bad_max_recoveries_are_refused():
    for bad in (0, -1, 1.5, True, "3"):
        with pytest.raises(zart.ConfigurationError, match="max_recoveries"):
            zart.workflow("bad", max_recoveries=bad)(lambda data: data)


# --- on_failure ----------------------------------------------------------------------------------


def _broken(counter_dir: str) -> None:
    _record(counter_dir, "broken")
    raise ValueError("the source is down")


broken = zart.step("broken")(_broken)


def _fallback(data: str, failure: BaseException) -> dict:
    _record(data, "fallback")
    return {"failure": type(failure).__name__, "cause": type(failure.__cause__).__name__,
            "key": getattr(failure, "step_key", None)}


@zart.workflow("recovers", on_failure=_fallback)
def recovers(counter_dir):
    return broken(counter_dir)


def test_on_failure_s_value_becomes_the_output_and_the_execution_reads_recovered(journal, tmp_path):
    import subprocess
    import sys

    output = zart.run(recovers, str(tmp_path), execution_id="o-1", journal=journal, workers=1)
    assert output == {"failure": "StepFailed", "cause": "ValueError", "key": "broken#0"}
    assert zart.run(recovers, str(tmp_path), execution_id="o-1", journal=journal, workers=1) == output
    assert calls(tmp_path) == ["broken", "fallback"]  # once: the completed execution is reused
    reader = zart.journal(journal)
    record = reader.execution_record("o-1")
    assert record.status is zart.ExecutionStatus.COMPLETED and record.ended_by is zart.RunEnd.RECOVERED
    assert "recovered by on_failure from StepFailed" in record.end_detail
    steps = {step.step_key: step.status for step in reader.list_steps("o-1")}
    assert steps == {"broken#0": zart.StepStatus.FAILED, "on_failure:on_failure#0": zart.StepStatus.COMPLETED}
    reader.close()
    shown = subprocess.run([sys.executable, "-m", "zart_nb._cli", "show", "o-1", "--journal", str(journal)],
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "recovered by on_failure from StepFailed" in shown.stdout


class LateButRecovered(zart.DurableExecution):
    deadline = 1.0

    def run(self, counter_dir):
        return stall(counter_dir, "late")

    def on_failure(self, counter_dir, failure):
        _record(counter_dir, "handler")
        return f"gave up: {type(failure).__name__}"


def test_on_failure_method_runs_after_a_deadline(journal, tmp_path):
    assert zart.run(LateButRecovered(), str(tmp_path), execution_id="o-2", journal=journal,
                    workers=1) == "gave up: DeadlineExceeded"
    assert [call.split(":")[0] for call in calls(tmp_path)] == ["late", "handler"]
    record = zart.journal(journal).execution_record("o-2")
    assert record.status is zart.ExecutionStatus.COMPLETED and "DeadlineExceeded" in record.end_detail


def _fails_too(data, failure):
    raise RuntimeError("no fallback either")


def test_a_failing_on_failure_leaves_the_execution_failed_with_its_own_error(journal, tmp_path):
    @zart.workflow("fails-twice", on_failure=_fails_too)
    def flow(counter_dir):
        return broken(counter_dir)

    with pytest.raises(zart.StepFailed) as caught:
        zart.run(flow, str(tmp_path), execution_id="o-3", journal=journal, workers=1)
    assert any("on_failure handler failed too" in note and "no fallback either" in note
               for note in caught.value.__notes__)
    assert zart.journal(journal).execution_record("o-3").status is zart.ExecutionStatus.FAILED


def test_a_non_callable_on_failure_is_refused():
    with pytest.raises(zart.DefinitionError, match="on_failure"):
        zart.workflow("bad", on_failure="fallback")(lambda data: data)


def test_a_journaled_on_failure_is_reused_when_the_execution_runs_again(journal, tmp_path):
    def first(counter_dir):
        return broken(counter_dir)

    def second(counter_dir):  # another body (its code changed): the completed execution runs again
        value = broken(counter_dir)
        return value

    output = zart.run(zart.workflow("reused-fallback", on_failure=_fallback)(first), str(tmp_path),
                      execution_id="o-4", journal=journal, workers=1)
    again = zart.run(zart.workflow("reused-fallback", on_failure=_fallback)(second), str(tmp_path),
                     execution_id="o-4", journal=journal, workers=1)
    assert again == output
    assert calls(tmp_path) == ["broken", "fallback", "broken"]  # the failed step ran again, not the handler
    runs = zart.journal(journal).list_runs("o-4")
    assert [run.ended_by for run in runs] == [zart.RunEnd.RECOVERED, zart.RunEnd.RECOVERED]
    assert runs[1].reused == 1
