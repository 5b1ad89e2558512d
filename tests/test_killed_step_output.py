"""A step killed by its timeout or a cancel keeps what it printed before the kill (journaled from the
lines already streamed to the driver), its unfinished last line too, and a running step is listed as
running, with its worker."""
import time

from conftest import wait_until

import zart_nb as zart
from zart_nb._handles import run_of


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
        progress = execution.progress()
        if progress is None or progress.running != 1:
            return None
        found = run_of(execution).output_so_far(progress.running_steps[0].key)
        return progress if found and "before the kill" in found[1] else None

    progress = wait_until(running_with_output, what="the step to run and print")
    (running,) = progress.running_steps
    assert (running.key, running.attempt) == ("hangs#0", 1) and running.worker and running.elapsed >= 0
    assert (progress.total, progress.running, progress.scheduled, progress.finished) == (1, 1, 0, 0)
    step = _cancelled(execution, journal)
    assert "cancelled: before the kill" in (step.log or "")
    record = zart.journal(journal).execution_record("co-1")
    assert (record.ended_by, record.end_detail) == (zart.RunEnd.CANCELLED, "cancelled from a test")


def test_steps_that_never_started_are_not_called_executed(journal):
    import subprocess
    import sys

    @zart.workflow("never-started")
    def flow(_):
        return zart.wait([zart.schedule(zart.step(f"hang-{i}")(talks_then_hangs.fn), str(i)) for i in range(3)])

    execution = zart.start(flow, None, execution_id="ns-1", journal=journal, workers=1)
    wait_until(lambda: (p := execution.progress()) is not None and p.running == 1 and p.total == 3,
               what="one step running, two waiting")
    execution.interrupt()
    try:
        execution.result(timeout=60)
    except (zart.Cancelled, KeyboardInterrupt):
        pass
    steps = {s.step_key: s for s in zart.journal(journal).list_steps("ns-1")}
    started = [k for k, s in steps.items() if s.started_at is not None]
    assert len(started) == 1 and all(s.status == zart.StepStatus.CANCELLED for s in steps.values()), steps
    zart.journal(journal).close()
    shown = subprocess.run([sys.executable, "-m", "zart_nb", "show", "ns-1", "--journal", str(journal)],
                           capture_output=True, text=True, timeout=60)
    rows = {line.split()[0]: line for line in shown.stdout.splitlines() if line.startswith("hang-")}
    assert "executed (new)" in rows[started[0]], shown.stdout
    for key in set(rows) - set(started):
        assert "cancelled before it started" in rows[key] and "executed" not in rows[key], shown.stdout
    record = zart.journal(journal).execution_record("ns-1")
    assert (record.status, record.ended_by) == (zart.ExecutionStatus.INTERRUPTED, zart.RunEnd.INTERRUPTED)


@zart.step("hangs-mid-line")
def hangs_mid_line() -> str:
    print("connecting", flush=True)
    for percent in (10, 50, 90):  # a progress bar: one line rewritten
        print(f"\rloading {percent}%", end="", flush=True)
    print("; waiting for the server...", end="", flush=True)
    time.sleep(60)
    return "never"


def test_a_step_cancelled_mid_line_keeps_its_unfinished_line(journal, capsys):
    # A line with no newline yet reaches the driver once it waited a moment; a line rewritten with
    # carriage returns is shown as a terminal shows it, in its last state.
    @zart.workflow("mid-line")
    def flow(_):
        return zart.wait([zart.schedule(hangs_mid_line)])

    execution = zart.start(flow, None, execution_id="ml-1", journal=journal, display=False)

    def unfinished_line_seen():
        run = run_of(execution)
        found = None if run is None else run.output_so_far("hangs-mid-line#0")
        return found if found and "waiting for the server..." in found[1] else None

    _, so_far = wait_until(unfinished_line_seen, what="the unfinished line to reach the driver")
    assert so_far == "connecting\nloading 90%; waiting for the server..."
    step = _cancelled(execution, journal)
    assert step.log == "connecting\nloading 90%; waiting for the server..."
    live = capsys.readouterr().out.splitlines()
    assert live == ["[hangs-mid-line#0] connecting", "[hangs-mid-line#0] loading 90%; waiting for the server..."]


def _cancelled(execution: zart.Execution, journal) -> zart.StepRecord:
    """Cancel ``execution`` (one step, running) and read its step back, cancelled."""
    execution.cancel(origin="a test")
    try:
        execution.result(timeout=60)
    except zart.Cancelled:
        pass
    (step,) = zart.journal(journal).list_steps(execution.execution_id)
    assert step.status == zart.StepStatus.CANCELLED
    return step
