"""Failures and interrupts as a notebook user sees them (a real kernel): the failed step's own
traceback with the cell's source lines, one line for the stop button, a resumed run that says so."""
import re

import pytest
from jupyter_client.manager import start_new_kernel

import zart_nb as zart

pytestmark = pytest.mark.filterwarnings("ignore")

ANSI = re.compile(r"\x1b\[[0-9;]*m")

DEFINE = """
import os, time
import zart_nb as zart

@zart.step("flaky", retries=1)
def flaky(i):
    if i == 2:
        raise ValueError(f"item {i} is broken")
    return i

@zart.workflow("partly")
def partly(n):
    return zart.wait([zart.schedule(flaky, i) for i in range(n)])

@zart.workflow("body-fails")
def body_fails(n):
    zart.wait([zart.schedule(flaky, i) for i in range(n)])
    return 1 / 0

@zart.step("quick")
def quick(i):
    return i

@zart.step("gated")
def gated(gate, started):
    open(started, "w").close()
    while not os.path.exists(gate):
        time.sleep(0.01)
    return "opened"

@zart.workflow("long")
def long(paths):
    done = zart.wait([zart.schedule(quick, i) for i in range(29)])
    return done + [gated(*paths)]
"""


class Cell:
    def __init__(self, kc):
        self.kc = kc

    def __call__(self, code, wait=True):
        self.error, self.text, self.plain = None, [], []

        def hook(msg):
            kind, content = msg["msg_type"], msg["content"]
            if kind == "error":
                self.error = ANSI.sub("", "\n".join(content["traceback"]))
            elif kind == "stream":
                self.text.append(content["text"])
            elif kind in ("display_data", "update_display_data") and "text/plain" in content.get("data", {}):
                self.plain.append(content["data"]["text/plain"])

        return self.kc.execute_interactive(code, timeout=120, output_hook=hook)["content"]


def test_failures_and_interrupts_read_well_in_a_kernel(tmp_path):
    gate, started, journal = tmp_path / "gate", tmp_path / "started", tmp_path / "j.duckdb"
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    cell = Cell(kc)
    try:
        assert cell(DEFINE + f"J = dict(journal={str(journal)!r}, workers=2)")["status"] == "ok"

        cell("zart.run(partly, 4, display=False, **J)")
        lines = cell.error.splitlines()
        assert lines[0] == "Traceback of step 'flaky#2' in its worker (attempt 2):"
        assert re.fullmatch(r"  Cell In\[1\], line 7, in flaky", lines[1])
        assert lines[2].strip() == 'raise ValueError(f"item {i} is broken")'  # filled in from the cell
        assert lines[3] == "ValueError: item 2 is broken"
        assert "    return zart.wait([zart.schedule(flaky, i) for i in range(n)])" in lines
        assert lines[-1].startswith("StepFailed: step 'flaky#2' of execution 'partly-")
        assert lines[-1].endswith("ValueError: item 2 is broken (attempt 2 of 2)")
        assert "zart_nb" not in cell.error.replace("import zart_nb", "") and "site-packages" not in cell.error

        cell("zart.run(body_fails, 2, display=False, **J)")
        assert "    return 1 / 0" in cell.error and "ZeroDivisionError: division by zero" in cell.error
        assert cell.error.splitlines()[-1].startswith("TaskError: execution 'body-fails-")
        assert "site-packages" not in cell.error

        call = f"out = zart.run(long, ({str(gate)!r}, {str(started)!r}), execution_id='long-1', **J)"
        msg_id = kc.execute(call)
        error, interrupted, seen = None, False, False
        while True:  # the widget's own updates say when 29 steps are done and the gated one runs
            msg = kc.get_iopub_msg(timeout=60)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            seen = seen or (msg["msg_type"] == "comm_msg" and "29/30 done" in str(msg["content"]))
            if not interrupted and seen and started.exists():  # (updates keep coming while it runs)
                km.interrupt_kernel()
                interrupted = True
            if msg["msg_type"] == "error":
                error = msg["content"]["traceback"]
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        assert error == ["KeyboardInterrupt: execution 'long-1' interrupted after 29 of 30 steps (run 1); "
                         "run the cell again to resume"]
        gate.touch()
        assert cell(call)["status"] == "ok"
        assert cell.plain[-1] == "zart: long completed, 30/30 steps (29 reused from earlier runs)"
        cell("zart.journal(J['journal']).close()")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    reader = zart.journal(journal)
    try:
        runs = [(r.status.value, r.executed, r.reused) for r in reader.list_runs("long-1")]
        assert runs == [("interrupted", 30, 0), ("completed", 1, 29)]
        assert reader.list_attempts("long-1") == []  # the cancelled attempt is not a failure
        steps = {s.step_key: s.status.value for s in reader.list_steps("long-1")}
        assert steps["gated#0"] == "completed" and len(steps) == 30
    finally:
        reader.close()
