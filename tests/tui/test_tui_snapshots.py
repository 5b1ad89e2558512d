"""SVG snapshots of the app (pytest-textual-snapshot) on a journal made by real runs, with a fixed clock.

The runs' times, pids and worker names differ every time; the fixture sets them to fixed values in the
journal file (straight SQL on a copy the app alone reads), so the pictures compare.
`pytest tests/tui/test_tui_snapshots.py --snapshot-update` redraws them after a deliberate change.
"""
from __future__ import annotations

import time

import duckdb
import pytest
from textual.widgets import DataTable
from tui_helpers import make_journal, settle, wait_for
from zart_tui.app import ZartApp
from zart_tui.fmt import Clock
from zart_tui.screens.confirm import ConfirmScreen
from zart_tui.screens.execution import ExecutionScreen

BASE = 1_790_000_000.0  # a fixed "now" for the journal's times and the app's clock
SIZE = (130, 32)


def normalize(path) -> None:
    conn = duckdb.connect(str(path))
    try:
        conn.execute("UPDATE executions SET created_at = ? + CASE execution_id WHEN 'sq' THEN 0 ELSE 10 END, "
                     "owner_pid = 4242", [BASE])
        conn.execute("UPDATE executions SET started_at = created_at, finished_at = created_at + 1.25")
        conn.execute("UPDATE runs SET started_at = ? + CASE execution_id WHEN 'sq' THEN 0 ELSE 10 END, pid = 4242",
                     [BASE])
        conn.execute("UPDATE runs SET finished_at = started_at + 1.25")
        conn.execute("UPDATE steps SET scheduled_at = ? + seq * 0.25, started_at = ? + seq * 0.25 + 0.05, "
                     "finished_at = ? + seq * 0.25 + 0.2, worker = 'worker-' || (seq % 2) || ':pid' || (100 + seq % 2)",
                     [BASE, BASE, BASE])
        conn.execute("UPDATE attempts SET started_at = ?, finished_at = ? + 0.1, worker = 'worker-0:pid100'",
                     [BASE, BASE])
    finally:
        conn.close()


@pytest.fixture
def fixed_journal(tmp_path, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    path = make_journal(tmp_path / "nb.duckdb")
    normalize(path)
    yield path
    monkeypatch.undo()
    time.tzset()


def app_for(path) -> ZartApp:
    return ZartApp(str(path), clock=Clock(lambda: BASE + 100), poll=3600)


async def _rows_shown(pilot, table_id: str) -> None:
    """Reads run on workers: on a loaded machine they land later than ``settle`` waits, so poll."""
    await settle(pilot)
    await wait_for(pilot, lambda: any(table.row_count for table in pilot.app.screen.query(f"#{table_id}")
                                      if isinstance(table, DataTable)), what=f"rows in #{table_id}")
    await settle(pilot)


def test_executions_screen(fixed_journal, snap_compare):
    async def loaded(pilot):
        await _rows_shown(pilot, "executions")

    assert snap_compare(app_for(fixed_journal), terminal_size=SIZE, run_before=loaded)


def test_execution_screen_with_its_timeline(fixed_journal, snap_compare):
    async def open_bad(pilot):
        await _rows_shown(pilot, "executions")
        await pilot.press("enter")  # "bad" is the newest
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ExecutionScreen), what="the execution screen")
        await _rows_shown(pilot, "steps")
        await pilot.press("down")

    assert snap_compare(app_for(fixed_journal), terminal_size=SIZE, run_before=open_bad)


def test_confirming_a_cancel(fixed_journal, snap_compare):
    async def ask(pilot):
        await _rows_shown(pilot, "executions")
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen), what="the confirmation")

    assert snap_compare(app_for(fixed_journal), terminal_size=SIZE, run_before=ask)


def test_executions_screen_at_80x24(fixed_journal, snap_compare):
    """Every column on screen at 80 columns (one journal: no journal column; no run number below 100)."""
    async def loaded(pilot):
        await _rows_shown(pilot, "executions")

    assert snap_compare(app_for(fixed_journal), terminal_size=(80, 24), run_before=loaded)


def test_execution_screen_at_60x15(fixed_journal, snap_compare):
    """Steps still show at 60x15 (the timeline starts hidden under 30 rows)."""
    async def open_bad(pilot):
        await _rows_shown(pilot, "executions")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ExecutionScreen), what="the execution screen")
        await _rows_shown(pilot, "steps")

    assert snap_compare(app_for(fixed_journal), terminal_size=(60, 15), run_before=open_bad)
