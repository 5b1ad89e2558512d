"""SVG snapshots of the app (pytest-textual-snapshot) on a journal made by real runs, with a fixed clock.

The runs' times, pids and worker names differ every time; the fixture sets them to fixed values in the
journal file (straight SQL on a copy the app alone reads), so the pictures compare.
`pytest tests/tui/test_tui_snapshots.py --snapshot-update` redraws them after a deliberate change.
"""
from __future__ import annotations

import time

import duckdb
import pytest
from tui_helpers import make_journal, settle
from zart_tui.app import ZartApp
from zart_tui.fmt import Clock

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


def test_executions_screen(fixed_journal, snap_compare):
    assert snap_compare(app_for(fixed_journal), terminal_size=SIZE, run_before=settle)


def test_execution_screen_with_its_timeline(fixed_journal, snap_compare):
    async def open_bad(pilot):
        await settle(pilot)
        await pilot.press("enter")  # "bad" is the newest
        await settle(pilot)
        await pilot.press("down")

    assert snap_compare(app_for(fixed_journal), terminal_size=SIZE, run_before=open_bad)


def test_confirming_a_cancel(fixed_journal, snap_compare):
    async def ask(pilot):
        await settle(pilot)
        await pilot.press("c")

    assert snap_compare(app_for(fixed_journal), terminal_size=SIZE, run_before=ask)
