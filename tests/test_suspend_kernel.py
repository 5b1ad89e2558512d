"""Suspension in a real kernel (nbclient): zart.start returns at once and reports sleeping, with the journal
let go; zart.run of the same execution waits for its output through the suspension."""
from __future__ import annotations

import pytest
from nbhelpers import execute, text

pytestmark = pytest.mark.filterwarnings("ignore")

CELLS = [
    """
import time
import zart_nb as zart
from zart_nb._runtime import runtime

@zart.step("nb-double")
def double(x):
    return 2 * x

@zart.workflow("nb-nap")
def nap(n):
    first = double(n)
    zart.sleep("nap", 2)
    return [first, double(first)]
""",
    """
execution = zart.start(nap, 3, execution_id="nb-nap", journal="j.duckdb", workers=1)
deadline = time.monotonic() + 60
while execution.status is not zart.ExecutionStatus.SLEEPING and time.monotonic() < deadline:
    time.sleep(0.02)
print("STATUS", execution.status.value, execution.suspension[0], execution.done)
while runtime.journal("j.duckdb").is_open and time.monotonic() < deadline:
    time.sleep(0.02)
print("HELD", runtime.journal("j.duckdb").is_open)
""",
    """
print("OUT", zart.run(nap, 3, execution_id="nb-nap", journal="j.duckdb", workers=1))
print("RUNS", [r.ended_by.value for r in zart.journal("j.duckdb", live=False).list_runs("nb-nap")])
""",
]


def test_start_reports_sleeping_and_run_waits_through_the_suspension(tmp_path):
    nb = execute(CELLS, tmp_path, env={"ZART_SUSPEND_AFTER": "0.5", "ZART_DISPLAY": "0"})
    assert "STATUS sleeping nap False" in text(nb.cells[1])
    assert "HELD False" in text(nb.cells[1])  # nothing holds the journal while it sleeps
    out = text(nb.cells[2])
    assert "OUT [6, 12]" in out and "RUNS ['suspended', 'completed']" in out
