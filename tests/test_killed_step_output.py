"""A step killed by its timeout or a cancel keeps what it printed before the kill (journaled from the
lines already streamed to the driver), and a running step is listed as running, with its worker."""
import time

from conftest import wait_until

import zart_nb as zart


@zart.step("talks-then-hangs", timeout=1.5)
def talks_then_hangs(tag: str) -> str:
    print(f"{tag}: before the kill", flush=True)
    time.sleep(60)
    return "never"


def test_a_step_killed_by_its_timeout_keeps_its_output(journal):
    @zart.workflow("timeout-output")
    def flow(_):
        return talks_then_hangs("timed")

    try:
        zart.run(flow, None, execution_id="to-1", journal=journal)
    except zart.StepTimeout:
        pass
    (step,) = zart.journal(journal).list_steps("to-1")
    assert step.status == zart.StepStatus.FAILED
    assert "timed: before the kill" in (step.log or "")


def test_a_cancelled_step_keeps_its_output_and_was_listed_running(journal):
    @zart.workflow("cancel-output")
    def flow(_):
        return zart.wait([zart.schedule(zart.step("hangs")(talks_then_hangs.fn), "cancelled")])

    execution = zart.start(flow, None, execution_id="co-1", journal=journal)

    def running_with_output():
        progress = execution.run.progress() if execution.run else None
        if progress is None or progress.running != 1:
            return None
        found = execution.run.output_so_far(progress.running_steps[0].key)
        return progress if found and "before the kill" in found[1] else None

    progress = wait_until(running_with_output, what="the step to run and print")
    (running,) = progress.running_steps
    assert (running.key, running.attempt) == ("hangs#0", 1) and running.worker and running.elapsed >= 0
    assert (progress.total, progress.running, progress.scheduled, progress.finished) == (1, 1, 0, 0)
    execution.cancel(origin="a test")
    try:
        execution.result(timeout=60)
    except zart.Cancelled:
        pass
    (step,) = zart.journal(journal).list_steps("co-1")
    assert step.status == zart.StepStatus.CANCELLED
    assert "cancelled: before the kill" in (step.log or "")
    record = zart.journal(journal).execution_record("co-1")
    assert (record.ended_by, record.end_detail) == (zart.RunEnd.CANCELLED, "cancelled from a test")
