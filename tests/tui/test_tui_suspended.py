"""A sleeping execution: zart-tui lists it as sleeping and its screen says what it waits for and until when."""
from __future__ import annotations

import time

from textual.widgets import DataTable, Static
from tui_helpers import rows, run_async, settle
from zart_tui.app import ZartApp
from zart_tui.screens.execution import ExecutionScreen

import zart_nb as zart
from zart_nb._journal import suspension
from zart_nb._runtime import runtime


@run_async
async def test_a_sleeping_execution_says_what_it_waits_for_and_until_when(tmp_path):
    journal = tmp_path / ".zart" / "nb.duckdb"
    held = runtime.journal(journal)
    wake_at = time.time() + 3600
    with held.hold():
        run_number, _, _ = held.begin_run("nap-1", "napper", "d", b"", "h", "", "rerun")
        held.transact(suspension.suspend, "nap-1", run_number, zart.ExecutionStatus.SLEEPING, "nap", wake_at,
                      "elsewhere:1", None, 0, 0, time.time(), "sleep 'nap'")
    held.close()
    app = ZartApp(str(journal))
    async with app.run_test(size=(150, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#executions", DataTable)
        assert rows(table)[0][:3] == ["nap-1", "napper", "sleeping"]
        assert "sleeping 1" in str(app.screen.query_one("#header").render())  # counted in the header
        await pilot.press("8")  # the waiting filter: not this one
        await settle(pilot)
        assert rows(table) == []
        await pilot.press("7")  # the sleeping filter
        await settle(pilot)
        assert [r[0] for r in rows(table)] == ["nap-1"]
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ExecutionScreen)
        summary = str(app.screen.query_one("#summary", Static).render())
        assert "waits:  sleep 'nap', until " in summary
        assert time.strftime("%Y-%m-%d", time.localtime(wake_at)) in summary.split("waits:")[1]
