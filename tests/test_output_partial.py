"""An unfinished line (no newline yet: a progress bar, "waiting for the server...") reaches the driver
once it waited a moment, so a step killed mid-line keeps it, and a line rewritten with carriage returns
is shown as a terminal shows it: its last state."""
import time

from conftest import wait_until

import zart_nb as zart
from zart_nb._handles import run_of


@zart.step("hangs-mid-line")
def hangs_mid_line() -> str:
    print("connecting", flush=True)
    for percent in (10, 50, 90):
        print(f"\rloading {percent}%", end="", flush=True)
    print("; waiting for the server...", end="", flush=True)
    time.sleep(60)
    return "never"


def test_a_step_cancelled_mid_line_keeps_its_unfinished_line(journal, capsys):
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
    execution.cancel(origin="a test")
    try:
        execution.result(timeout=60)
    except zart.Cancelled:
        pass
    (step,) = zart.journal(journal).list_steps("ml-1")
    assert step.status == zart.StepStatus.CANCELLED
    assert step.log == "connecting\nloading 90%; waiting for the server..."
    live = capsys.readouterr().out.splitlines()
    assert live == ["[hangs-mid-line#0] connecting", "[hangs-mid-line#0] loading 90%; waiting for the server..."]
