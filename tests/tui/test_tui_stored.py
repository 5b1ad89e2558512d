"""zart-tui's step screen shows a stored value: a table's kind, size, schema and first rows (read from its
Parquet file), an array's dtype and shape; the app unpickles nothing (Textual's pilot, a real run)."""
from __future__ import annotations

import pytest
from textual.widgets import Static
from tui_helpers import open_first_execution, refuse_unpickling, run_async, settle, wait_for

pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

from tables_lib import table_and_array  # noqa: E402
from zart_tui.app import ZartApp  # noqa: E402
from zart_tui.screens.step import StepScreen  # noqa: E402

import zart_nb as zart  # noqa: E402


@run_async
async def test_the_step_screen_shows_a_stored_table_and_array(tmp_path, monkeypatch):
    journal = tmp_path / ".zart" / "nb.duckdb"
    monkeypatch.setenv("ZART_VALUE_THRESHOLD", "500")
    zart.run(table_and_array, 40, execution_id="ex", journal=journal, display=False)
    zart.journal(journal, live=False).close()

    refuse_unpickling(monkeypatch)
    app = ZartApp(str(journal))
    async with app.run_test(size=(150, 50)) as pilot:
        assert await open_first_execution(pilot) == ["fetch:raw-data#0", "grid#0"]
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, StepScreen)

        def detail() -> str:
            return str(app.screen.query_one("#step-detail", Static).render())

        await wait_for(pilot, lambda: "stored value" in detail(), what="the stored value section")
        text = detail()
        assert "pandas.DataFrame" in text and "80 rows x 2 columns" in text and "x: double" in text
        assert "... 75 more rows" in text
        await pilot.press("escape", "down", "enter")
        await settle(pilot)
        await wait_for(pilot, lambda: "stored value" in detail(), what="the array's stored value section")
        assert "numpy.ndarray" in detail() and "dtype=float32 shape=(40, 4)" in detail()
