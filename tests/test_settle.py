"""Settling an attempt's outcome: a table of cases, no process, no journal."""
from dataclasses import dataclass, field

import pytest

from zart_nb._definitions import FATAL_MARK, RetryPolicy
from zart_nb._errors import StepFailed, StepTimeout, WorkerCrashed
from zart_nb._executors.base import Outcome, OutcomeKind, Task
from zart_nb._settle import settle
from zart_nb._status import RunReason, StepStatus


@dataclass
class _State:
    key: str = "fetch#0"
    name: str = "fetch"
    code_hash: str = "C"
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    seq: int = 3
    args_blob: bytes = b"args"
    args_hash: str = "A"
    args_preview: str = "(1,)"
    reason: RunReason = RunReason.NEW
    attempt: int = 1
    scheduled_at: float = 10.0


def _ended(kind, blob=None, error=None):
    task = Task(1, "f", b"fn", b"args", "e", "fetch#0", 1, started_at=11.0, worker="w1")
    return Outcome(task, kind, blob, "preview", None if kind is OutcomeKind.OK else "ValueError", error, "tb", 12.0,
                   "log")


def _error(kind, fatal=False):
    if kind is OutcomeKind.TIMEOUT:
        return StepTimeout("e", "fetch#0", "timed out", 1)
    if kind is OutcomeKind.CRASHED:
        return WorkerCrashed("e", "fetch#0", "died", 1)
    error = StepFailed("e", "fetch#0", "boom", 1)
    if fatal:
        cause = ValueError("refused")
        setattr(cause, FATAL_MARK, True)
        error.__cause__ = cause
    return error


_RETRY2 = RetryPolicy(retries=2, backoff=1.0, multiplier=3.0)


@pytest.mark.parametrize(("kind", "policy", "attempt", "stopping", "fatal", "status", "delay"), [
    (OutcomeKind.OK, RetryPolicy(), 1, False, False, StepStatus.COMPLETED, None),
    (OutcomeKind.OK, _RETRY2, 3, True, False, StepStatus.COMPLETED, None),  # stopping does not undo a result
    (OutcomeKind.ERROR, RetryPolicy(), 1, False, False, StepStatus.FAILED, None),
    (OutcomeKind.ERROR, _RETRY2, 1, False, False, StepStatus.RETRYING, 1.0),
    (OutcomeKind.ERROR, _RETRY2, 2, False, False, StepStatus.RETRYING, 3.0),
    (OutcomeKind.ERROR, _RETRY2, 3, False, False, StepStatus.FAILED, None),  # retries used up
    (OutcomeKind.ERROR, _RETRY2, 1, True, False, StepStatus.FAILED, None),  # the run stops: no retry
    (OutcomeKind.ERROR, _RETRY2, 1, False, True, StepStatus.FAILED, None),  # the policy refused the error
    (OutcomeKind.UNPICKLABLE, _RETRY2, 1, False, False, StepStatus.FAILED, None),
    (OutcomeKind.TIMEOUT, _RETRY2, 1, False, False, StepStatus.RETRYING, 1.0),
    (OutcomeKind.TIMEOUT, RetryPolicy(retries=2, retry_on_timeout=False), 1, False, False, StepStatus.FAILED, None),
    (OutcomeKind.CRASHED, _RETRY2, 1, False, False, StepStatus.RETRYING, 1.0),
    (OutcomeKind.CRASHED, RetryPolicy(retries=2, retry_on_crash=False), 1, False, False, StepStatus.FAILED, None),
    (OutcomeKind.CANCELLED, _RETRY2, 1, False, False, StepStatus.CANCELLED, None),
])
def test_what_an_attempt_s_end_means(kind, policy, attempt, stopping, fatal, status, delay):
    state = _State(policy=policy, attempt=attempt)
    error = None if kind in (OutcomeKind.OK, OutcomeKind.CANCELLED) else _error(kind, fatal)
    outcome = _ended(kind, b"\x80out" if kind is OutcomeKind.OK else None, "boom")
    settled = settle("e", 2, state, outcome, error, stopping, publish=True)
    assert settled.status is status
    assert settled.delay == delay
    assert (settled.step_row is None) == (status is StepStatus.RETRYING)
    # a failed attempt is journaled as one; a completed or cancelled one is not
    assert (settled.attempt_row is not None) == (kind not in (OutcomeKind.OK, OutcomeKind.CANCELLED))
    assert settled.event is not None and settled.event.status is status
    assert state.attempt == attempt  # nothing it is handed is changed
    assert outcome.kind is kind and outcome.output == "log"


def test_a_completed_step_s_row_and_event():
    settled = settle("e", 2, _State(attempt=2, reason=RunReason.ARGS_CHANGED), _ended(OutcomeKind.OK, b"\x80out"),
                     None, False, publish=True)
    row = settled.step_row
    assert row is not None
    assert (row.execution_id, row.step_key, row.run_number, row.seq, row.name, row.def_id) == \
        ("e", "fetch#0", 2, 3, "fetch", "C")
    assert (row.status, row.output, row.output_preview, row.error, row.attempts, row.reason, row.current) == \
        ("completed", b"\x80out", "preview", None, 2, "arguments changed", True)
    assert (row.scheduled_at, row.started_at, row.finished_at, row.worker, row.log) == (10.0, 11.0, 12.0, "w1", "log")
    event = settled.event
    assert event is not None
    assert (event.step_key, event.attempt, event.reason, event.preview, event.at) == \
        ("fetch#0", 2, RunReason.ARGS_CHANGED, "preview", 12.0)


def test_a_failed_step_keeps_no_output_and_says_its_error():
    settled = settle("e", 1, _State(), _ended(OutcomeKind.ERROR, b"\x80exc", "boom"), _error(OutcomeKind.ERROR),
                     False, publish=False)
    row = settled.step_row
    assert row is not None and row.status == "failed" and row.output is None
    assert row.error is not None and "boom" in row.error and row.error_type == "ValueError"
    attempt = settled.attempt_row
    assert attempt is not None and (attempt.attempt, attempt.status, attempt.error) == (1, "failed", "boom")
    assert settled.event is None  # nobody listens: no event is built


def test_a_retry_event_names_the_next_attempt_and_its_delay():
    settled = settle("e", 1, _State(policy=_RETRY2, attempt=2), _ended(OutcomeKind.ERROR, None, "boom"),
                     _error(OutcomeKind.ERROR), False, publish=True)
    event = settled.event
    assert event is not None
    assert (event.status, event.attempt, event.delay, event.error) == (StepStatus.RETRYING, 3, 3.0, "boom")
