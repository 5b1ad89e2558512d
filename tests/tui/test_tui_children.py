"""An execution started from a workflow body shows its parent on its screen."""
from __future__ import annotations

from steps_lib import square
from textual.widgets import DataTable, Static
from tui_helpers import rows, run_async, settle
from zart_tui.app import ZartApp
from zart_tui.screens.execution import ExecutionScreen

import zart_nb as zart


@zart.workflow("kid")
def kid(x: int) -> int:
    return zart.schedule(square, x).result()


@zart.workflow("mother")
def mother(x: int) -> int:
    return zart.run(kid, x, display=False)


@run_async
async def test_a_child_execution_names_its_parent(tmp_path):
    journal = tmp_path / ".zart" / "nb.duckdb"
    assert zart.run(mother, 3, execution_id="mum", journal=journal, display=False) == 9
    zart.journal(journal, live=False).close()
    app = ZartApp(str(journal))
    async with app.run_test(size=(150, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#executions", DataTable)
        assert [row[0] for row in rows(table)][:2] == ["mum/kid#0", "mum"]
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ExecutionScreen)
        summary = str(app.screen.query_one("#summary", Static).render())
        assert "parent: mum\n" in summary
