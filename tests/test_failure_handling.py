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
