"""The app driven by Textual's pilot against journals made by real runs: every screen and action."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from textual.command import CommandPalette
from textual.widgets import DataTable, Static
from tui_helpers import make_journal, refuse_unpickling, rows, run_async, settle, wait_for
from zart_tui.app import ZartApp
from zart_tui.screens.confirm import ConfirmScreen
from zart_tui.screens.execution import ExecutionScreen
from zart_tui.screens.help import HelpScreen
from zart_tui.screens.step import StepScreen
from zart_tui.widgets.timeline import Timeline

import zart_nb as zart

SIZE = (150, 40)


def text_of(app, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


@pytest.fixture
def journal_path(tmp_path):
    return make_journal(tmp_path / ".zart" / "nb.duckdb", tmp_path / "marker")


@run_async
async def test_executions_screen_lists_counts_filters_and_searches(journal_path, monkeypatch):
    refuse_unpickling(monkeypatch)
    app = ZartApp(str(journal_path.parent))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#executions", DataTable)
        listed = rows(table)
        assert [r[0] for r in listed] == ["flaky", "bad", "sq"]  # newest first
        # one journal: no journal column; a bar of 6 and the run number at 150 columns
        assert listed[2][:5] == ["sq", "squares", "completed", "██████ 3/3", "1"]
        assert listed[1][2] == "failed"
        header = text_of(app, "#header")
        assert "3 executions" in header and "failed 2" in header and "completed 1" in header
        assert "nb: file" in header
        await pilot.press("2")  # failed
        await settle(pilot)
        assert [r[0] for r in rows(table)] == ["flaky", "bad"]
        assert "filter: failed" in text_of(app, "#header")
        await pilot.press("f")  # the next filter: completed
        await settle(pilot)
        assert [r[0] for r in rows(table)] == ["sq"]
        await pilot.press("0", "slash", *"FLAK", "enter")
        await settle(pilot)
        assert [r[0] for r in rows(table)] == ["flaky"]
        await pilot.press("escape")
        await settle(pilot)
        assert len(rows(table)) == 3


@run_async
async def test_execution_and_step_screens(journal_path, monkeypatch):
    refuse_unpickling(monkeypatch)
    app = ZartApp(str(journal_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#executions", DataTable)
        table.move_cursor(row=[r[0] for r in rows(table)].index("bad"))
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ExecutionScreen)
        summary = text_of(app, "#summary")
        assert "bad" in summary and "failed" in summary and "ValueError: bad value 2" in summary
        assert "run 1: failed" in summary
        steps = rows(app.screen.query_one("#steps", DataTable))
        assert [(s[0], s[1]) for s in steps] == [("fail-if#0", "completed"), ("fail-if#1", "failed"),
                                                 ("fail-if#2", "completed")]
        assert steps[1][4] == "executed (new)" and steps[1][5].startswith("worker-")
        timeline = str(app.screen.query_one(Timeline).render())
        assert "worker-" in timeline and "█" in timeline
        await pilot.press("t")
        assert not app.screen.query_one(Timeline).display
        await pilot.press("down", "enter")
        await settle(pilot)
        assert isinstance(app.screen, StepScreen)
        detail = text_of(app, "#step-detail")
        assert "ValueError: bad value 2" in detail  # the traceback
        # its one attempt's traceback is the step's: shown once (before, again as "traceback of attempt 1")
        assert "traceback of attempt" not in detail and "failed attempts (1)" in detail
        assert "def fail_if(x: int, bad: int)" in detail  # the step's source
        assert "bad value 2" in text_of(app, "#step-head")
        await pilot.press("escape")
        assert isinstance(app.screen, ExecutionScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, ExecutionScreen)


@run_async
async def test_delete_is_confirmed(journal_path):
    app = ZartApp(str(journal_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#executions", DataTable)
        table.move_cursor(row=[r[0] for r in rows(table)].index("sq"))
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await settle(pilot)
        assert "sq" in [r[0] for r in rows(table)]
        await pilot.press("d", "y")
        await wait_for(pilot, lambda: "sq" not in [r[0] for r in rows(table)], what="sq deleted")
    assert zart.journal(journal_path, live=False).execution_record("sq") is None


@run_async
async def test_retry_a_failed_step_from_the_step_screen(journal_path, tmp_path, monkeypatch):
    (tmp_path / "marker").unlink()  # the step succeeds from now on
    # The `zart resume` process the app starts imports the workflow and steps by reference, as a
    # notebook's modules would be: give it the test helpers' folders.
    here = Path(__file__).parent
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(here), str(here.parent)]))
    app = ZartApp(str(journal_path), poll=0.3)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#executions", DataTable)
        table.move_cursor(row=[r[0] for r in rows(table)].index("flaky"))
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("r")  # the highlighted step completed: nothing to retry
        assert not isinstance(app.screen, ConfirmScreen)
        await pilot.press("down", "enter")
        await settle(pilot)
        assert isinstance(app.screen, StepScreen) and app.screen.step.step_key == "flaky#1"
        await pilot.press("r", "y")  # a `zart resume` process runs it again
        await pilot.press("escape", "escape")
        await wait_for(pilot, lambda: any(r[0] == "flaky" and r[2] == "completed" for r in rows(table)),
                       timeout=60, what="the retried execution to complete")
    runs = zart.journal(journal_path, live=False).list_runs("flaky")
    assert [r.status for r in runs] == [zart.ExecutionStatus.FAILED, zart.ExecutionStatus.COMPLETED]


@run_async
async def test_help_and_command_palette(journal_path):
    app = ZartApp(str(journal_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"show failed")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(pilot)
        table = app.screen.query_one("#executions", DataTable)
        assert sorted(r[0] for r in rows(table)) == ["bad", "flaky"]
        await pilot.press("q")
    assert app.return_code == 0


@run_async
async def test_bad_journals_show_a_message_and_the_app_keeps_working(tmp_path):
    import duckdb

    folder = tmp_path / "journals"
    folder.mkdir()
    (folder / "corrupt.duckdb").write_bytes(b"not a database at all" * 100)
    foreign = duckdb.connect(str(folder / "foreign.duckdb"))
    foreign.execute("CREATE TABLE customers (id INTEGER)")
    foreign.close()
    make_journal(folder / "good.duckdb")
    app = ZartApp(str(folder))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)  # reads run on workers: on a loaded machine they land later, so poll

        def every_journal_named() -> str | None:
            header = text_of(app, "#header")
            return header if all(part in header for part in ("corrupt: error", "foreign: error", "good: file")) \
                else None

        header = await wait_for(pilot, every_journal_named, what="the header to name every journal")
        assert "not a DuckDB database" in header and "not a zart journal" in header
        await wait_for(pilot, lambda: sorted(r[1] for r in rows(app.screen.query_one("#executions", DataTable)))
                       == ["bad", "sq"], what="the good journal's executions")
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
    missing = ZartApp(str(tmp_path / "nowhere.duckdb"))
    async with missing.run_test(size=SIZE) as pilot:
        await settle(pilot)
        header = await wait_for(pilot, lambda: "missing" in text_of(missing, "#header") and
                                text_of(missing, "#header"), what="the header to say the journal is missing")
        assert "no journal at" in header


def test_zart_tui_without_textual_says_how_to_install_it():
    code = "import sys; sys.modules['textual'] = None; from zart_nb._cli import main; sys.exit(main(['tui']))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 2
    assert "pip install 'zart_nb[tui]'" in out.stderr


@pytest.mark.skipif(not shutil.which("tmux"), reason="the smoke test drives zart-tui in tmux")
def test_smoke_script_in_tmux():
    script = Path(__file__).parent.parent / "scripts" / "tui_smoke.sh"
    out = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "tui smoke: OK" in out.stdout
