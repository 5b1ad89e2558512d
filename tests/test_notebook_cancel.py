"""`zart cancel ID` from a terminal, in a real kernel: the cell running the execution ends with one line
saying who cancelled it (as the stop button's interrupt does), not a 48-line traceback of zart_nb's
internals."""
from __future__ import annotations

import pytest
from nbhelpers import execute

import zart_nb as zart


@pytest.mark.filterwarnings("ignore")
def test_zart_cancel_from_a_terminal_ends_the_cell_with_one_line(tmp_path):
    journal, started = tmp_path / "j.duckdb", tmp_path / "started"
    nb = execute([
        f"""
import os, subprocess, sys, threading, time
import zart_nb as zart
J = dict(journal={str(journal)!r}, workers=1)

@zart.step("quick")
def quick(i):
    return i

@zart.step("stuck")
def stuck(started):
    open(started, "w").close()
    time.sleep(120)

@zart.workflow("gets-cancelled")
def gets_cancelled(started):
    return [quick(i) for i in range(3)] + [stuck(started)]

CANCEL = {{}}

def cancel_from_a_terminal():
    deadline = time.monotonic() + 60
    while not os.path.exists({str(started)!r}) and time.monotonic() < deadline:
        time.sleep(0.02)
    proc = subprocess.Popen([sys.executable, "-m", "zart_nb", "cancel", "c-1", "--journal", J["journal"]],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    CANCEL["pid"] = proc.pid
    CANCEL["out"] = proc.communicate(timeout=60)
""",
        "threading.Thread(target=cancel_from_a_terminal, daemon=True).start()\n"
        f"out = zart.run(gets_cancelled, {str(started)!r}, execution_id='c-1', **J)",
        "deadline = time.monotonic() + 60\n"
        "while 'out' not in CANCEL and time.monotonic() < deadline: time.sleep(0.02)\n"
        "print(CANCEL['pid'])\nprint(CANCEL['out'])",
    ], tmp_path, allow_errors=True)
    errors = [out for out in nb.cells[1].outputs if out.get("output_type") == "error"]
    pid = int("".join(out.get("text", "") for out in nb.cells[2].outputs).split()[0])
    assert [e["traceback"] for e in errors] == [[
        f"Cancelled: execution 'c-1' cancelled from zart cancel (pid {pid}) after 3 of 4 steps (run 1); "
        "run the cell again to resume"]]
    assert "execution 'c-1' cancelled (was running)" in "".join(out.get("text", "") for out in nb.cells[2].outputs)
    reader = zart.journal(journal)
    try:
        assert reader.execution_record("c-1").status is zart.ExecutionStatus.CANCELLED
    finally:
        reader.close()
