"""The inline executor: the engine's test seam runs steps on driver threads through the worker's runner."""
import os

import pytest
from conftest import wait_until
from steps_lib import fail_if, slow_forever, square, wait_for_file, whereami

import zart_nb as zart
from zart_nb._executors.inline import InlineExecutor

pytestmark = pytest.mark.usefixtures("inline")


def test_steps_run_in_this_process_with_their_context(journal, inline):
    @zart.workflow("inline-ctx")
    def flow(xs):
        return zart.wait([zart.schedule(square, x) for x in xs]), whereami()

    squares, (execution_id, key, attempt, pid) = zart.run(flow, [1, 2, 3], execution_id="i-1",
                                                          journal=journal)
    assert squares == [1, 4, 9]
    assert (execution_id, key, attempt, pid) == ("i-1", "whereami#0", 1, os.getpid())
    assert isinstance(inline.executor, InlineExecutor)
    steps = zart.journal(journal).list_steps("i-1")
    assert {s.step_key: s.status for s in steps} == {
        "square#0": "completed", "square#1": "completed", "square#2": "completed",
        "whereami#0": "completed"}


def test_failures_are_retried_and_reported(journal):
    retried = zart.step("retried-fail", retries=zart.RetryPolicy(retries=2, backoff=0.01))(fail_if.fn)

    @zart.workflow("inline-fail")
    def flow(_):
        return zart.wait([zart.schedule(retried, 1, 1)], return_exceptions=True)

    [error] = zart.run(flow, None, execution_id="i-2", journal=journal)
    assert isinstance(error, zart.StepFailed) and error.attempts == 3
    assert "bad value 1" in str(error)
    assert len(zart.journal(journal).list_attempts("i-2", "retried-fail#0")) == 3


def test_a_timed_out_attempt_is_abandoned_and_reported(journal, tmp_path):
    @zart.workflow("inline-timeout")
    def flow(path):
        return zart.wait([zart.schedule(slow_forever, path)], return_exceptions=True)

    try:
        [error] = zart.run(flow, str(tmp_path / "never"), journal=journal)
    finally:
        (tmp_path / "never").touch()  # let the abandoned thread end
    assert isinstance(error, zart.StepTimeout) and error.step_key == "slow-forever#0"


def test_cancel_ends_the_running_steps(journal, tmp_path):
    gate = tmp_path / "gate"

    @zart.workflow("inline-cancel")
    def flow(path):
        return zart.wait([zart.schedule(wait_for_file, path)])

    execution = zart.start(flow, str(gate), journal=journal)
    wait_until(lambda: execution.status is zart.ExecutionStatus.RUNNING, what="running")
    execution.cancel()
    with pytest.raises(zart.Cancelled):
        execution.result(timeout=60)
    gate.touch()
    assert execution.status is zart.ExecutionStatus.CANCELLED
