"""An ``Execution`` as a cell's value displays at every moment of its life, in a real kernel: before its run
is journaled (another process holds the file, so the run waits to begin), running, completed, failed. A
display error is a cell error: Run All stopped at ``ex = zart.start(...); ex`` in 4 tries of 4."""
from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import wait_until
from nbhelpers import execute

from zart_nb._journal.reader import FileJournalReader
from zart_nb._runtime import runtime

HOLD = """
import os, sys, time
import duckdb
conn = duckdb.connect(sys.argv[1])
open(sys.argv[2] + ".held", "w").close()
while not os.path.exists(sys.argv[2]):
    time.sleep(0.02)
conn.close()
"""


def _html(cell) -> str:
    return "".join(out["data"].get("text/html", "") for out in cell.outputs
                   if out.get("output_type") == "execute_result")


@pytest.mark.filterwarnings("ignore")
def test_an_execution_as_a_cells_value_displays_at_every_moment(tmp_path):
    journal, release, gate, started = (tmp_path / "j.duckdb", tmp_path / "release", tmp_path / "gate",
                                       tmp_path / "started")
    FileJournalReader(runtime.journal(journal)).list_executions()  # a journal, then released to the holder
    runtime.forget_journal(runtime.journal(journal))
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(journal), str(release)], cwd=tmp_path)
    try:
        wait_until((tmp_path / "release.held").exists, timeout=60, what="another process to hold the journal")
        nb = execute([
            f"""
import os, time
import zart_nb as zart
J = dict(journal={str(journal)!r}, workers=1)

@zart.step("double")
def double(i):
    return 2 * i

@zart.step("gated")
def gated(gate, started):
    open(started, "w").close()
    while not os.path.exists(gate):
        time.sleep(0.02)
    return "opened"

@zart.step("broken")
def broken(i):
    raise ValueError(f"broken {{i}}")

@zart.workflow("doubles")
def doubles(n):
    return [double(i) for i in range(n)]

@zart.workflow("waits")
def waits(paths):
    return gated(*paths)

@zart.workflow("fails")
def fails(n):
    return broken(n)
""",
            "ex = zart.start(doubles, 3, execution_id='shown', **J)\nex",
            f"open({str(release)!r}, 'w').close()\nprint(ex.result(60))",
            "ex",
            f"slow = zart.start(waits, ({str(gate)!r}, {str(started)!r}), execution_id='slow', **J)\n"
            f"while not os.path.exists({str(started)!r}): time.sleep(0.02)\n"
            "slow",
            f"open({str(gate)!r}, 'w').close()\nprint(slow.result(60))\n"
            "bad = zart.start(fails, 7, execution_id='bad', **J)\n"
            "try:\n    bad.result(60)\nexcept zart.StepFailed:\n    pass\nbad",
        ], tmp_path, allow_errors=True)
    finally:
        release.touch()
        holder.wait(60)
    for cell in nb.cells:
        errors = [out for out in cell.outputs if out.get("output_type") == "error"]
        assert errors == [], (cell.source, errors)
    before, done, running, failed = (_html(nb.cells[i]) for i in (1, 3, 4, 5))
    assert "<code>shown</code>" in before and "running" in before and "not begun yet" in before
    assert "[0, 2, 4]" in "".join(out.get("text", "") for out in nb.cells[2].outputs)
    assert "<h4>Runs</h4>" in done and ">completed<" in done and "3/3 steps" in done
    assert "<h4>Runs</h4>" in running and ">running<" in running and "<code>slow</code>" in running
    assert "<h4>Runs</h4>" in failed and ">failed<" in failed and "broken 7" in failed
