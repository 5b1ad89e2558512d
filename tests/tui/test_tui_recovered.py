"""An execution its on_failure handler recovered reads completed, and its screen says what it recovered from."""
from __future__ import annotations

from steps_lib import fail_if
from textual.widgets import DataTable, Static
from tui_helpers import rows, run_async, settle
from zart_tui.app import ZartApp
from zart_tui.screens.execution import ExecutionScreen

import zart_nb as zart


def _fallback(data, failure):
    return f"fallback after {type(failure).__name__}"


@zart.workflow("saved", on_failure=_fallback)
def saved(xs: list[int]) -> list[int]:
    return zart.wait([zart.schedule(fail_if, x, 2) for x in xs])


@run_async
async def test_a_recovered_execution_says_so(tmp_path):
    journal = tmp_path / ".zart" / "nb.duckdb"
    assert zart.run(saved, [1, 2], execution_id="saved-1", journal=journal) == "fallback after StepFailed"
    zart.journal(journal, live=False).close()
    app = ZartApp(str(journal))
    async with app.run_test(size=(150, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#executions", DataTable)
        assert rows(table)[0][:3] == ["saved-1", "saved", "completed"]
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ExecutionScreen)
        summary = str(app.screen.query_one("#summary", Static).render())
        assert "ended:  recovered by on_failure from StepFailed" in summary
        assert "run 1: completed" in summary and "recovered by on_failure" in summary.split("run 1:")[1]
