"""zart-tui's execution screen shows a workflow's table input as it shows a table output: its kind, rows,
columns, Parquet size and schema, from the journaled preview; the app unpickles nothing (Textual's pilot, a
real run with a worker process)."""
from __future__ import annotations

import numpy as np
import pytest
from textual.widgets import Static
from tui_helpers import open_first_execution, refuse_unpickling, run_async, settle

pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

from table_input_lib import frame_in  # noqa: E402
from workflow_values_lib import frame_of  # noqa: E402
from zart_tui.app import ZartApp  # noqa: E402
from zart_tui.screens.execution import ExecutionScreen  # noqa: E402

import zart_nb as zart  # noqa: E402


@run_async
async def test_the_execution_screen_shows_a_table_inputs_schema(tmp_path, monkeypatch):
    journal = tmp_path / ".zart" / "nb.duckdb"
    monkeypatch.delenv("ZART_VALUE_THRESHOLD", raising=False)
    zart.run(frame_in, frame_of(np.linspace(0, 1, 50), 1.0), execution_id="ex", journal=journal, display=False)
    zart.journal(journal, live=False).close()

    refuse_unpickling(monkeypatch)
    app = ZartApp(str(journal))
    async with app.run_test(size=(160, 50)) as pilot:
        assert await open_first_execution(pilot) == ["total#0"]
        await settle(pilot)
        assert isinstance(app.screen, ExecutionScreen)
        summary = str(app.screen.query_one("#summary", Static).render())
        line = next(line for line in summary.splitlines() if line.startswith("input:"))
        assert "<pandas.DataFrame rows=50 columns=4> [stored as Parquet: " in line
        assert "x: float64, cat: category, ts: datetime64[" in line
