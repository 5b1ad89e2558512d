"""The schedules screen (R), driven by the pilot on a real journal: lists schedules with their next tick,
pauses, resumes and removes one (each confirmed), and says when a journal has none."""
from __future__ import annotations

import pytest
from textual.widgets import DataTable, Static
from tui_helpers import open_schedules, rows, run_async, settle, wait_for
from zart_tui.app import ZartApp
from zart_tui.screens.confirm import ConfirmScreen
from zart_tui.screens.schedules import SchedulesScreen

import zart_nb as zart


@zart.workflow("tui-nightly")
def nightly(data: object) -> object:
    return data


@pytest.fixture
def journal_path(tmp_path):
    path = tmp_path / "nb.duckdb"
    zart.recurring(nightly, "0 9 * * *", data={"source": "sales"}, tz="Europe/Paris", journal=path)
    zart.journal(path, live=False).close()
    return path


def _note(app) -> str:
    return str(app.screen.query_one("#schedules-note", Static).render())


@run_async
async def test_the_schedules_screen_pauses_resumes_and_removes(journal_path):
    app = ZartApp(str(journal_path))
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        table = await open_schedules(pilot)
        listed = rows(table)
        assert [r[:3] for r in listed] == [["tui-nightly", "cron '0 9 * * *' (Europe/Paris)", "skip"]]
        assert listed[0][3].endswith("T09:00:00+01:00") and listed[0][4] == "-"

        await pilot.press("p")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await wait_for(pilot, lambda: rows(app.screen.query_one("#schedules", DataTable))[0][3] == "paused",
                       what="the schedule to show paused")
        assert zart.schedules(journal_path)[0].paused

        await pilot.press("p", "y")
        await wait_for(pilot, lambda: rows(app.screen.query_one("#schedules", DataTable))[0][3] != "paused",
                       what="the schedule to show resumed")
        assert not zart.schedules(journal_path)[0].paused

        await pilot.press("x", "n")  # not confirmed: nothing removed
        await settle(pilot)
        assert len(zart.schedules(journal_path)) == 1
        await pilot.press("x", "y")
        await wait_for(pilot, lambda: "no recurring schedules" in _note(app), what="the empty note")
        assert zart.schedules(journal_path) == []
        await pilot.press("escape")
        assert not isinstance(app.screen, SchedulesScreen)
