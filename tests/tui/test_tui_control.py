"""The app's control keys: R restarts, e reruns the highlighted step, F forks from it, each after a
confirmation, through the engine that holds the journal (a real process) or a new `zart` process."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import wait_until
from textual.widgets import DataTable
from tui_helpers import rows, run_async, settle, wait_for
from zart_tui.app import ZartApp
from zart_tui.screens.confirm import ConfirmScreen
from zart_tui.screens.execution import ExecutionScreen

import zart_nb as zart
from zart_nb._monitor.client import MonitorClient

TESTS = Path(__file__).parent.parent
SIZE = (150, 40)
HOLDER = """
import os, sys, time
sys.path.insert(0, {tests!r})
import zart_nb as zart

@zart.workflow("holder")
def holder(release):
    while not os.path.exists(release):
        time.sleep(0.02)
    return "released"

print("HOLDER", zart.run(holder, sys.argv[2], execution_id="holder", journal=sys.argv[1], workers=1), flush=True)
"""


def _triggers(journal: Path, execution_id: str) -> list[str | None]:
    reader = zart.journal(journal)
    try:
        return [None if r.trigger is None else r.trigger.value for r in reader.list_runs(execution_id)
                if r.status is not zart.ExecutionStatus.RUNNING]
    finally:
        reader.close()


def _pipeline(journal: Path, tmp_path: Path) -> None:
    from control_lib import pipeline

    zart.run(pipeline, {"dir": str(tmp_path), "x": 2}, execution_id="p", journal=journal, workers=1)
    zart.journal(journal, live=False).close()
    from zart_nb._runtime import runtime

    runtime.journal(journal).close()


@run_async
async def test_rerun_and_fork_keys_go_through_the_engine_holding_the_journal(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    journal = tmp_path / ".zart" / "j.duckdb"
    _pipeline(journal, tmp_path)
    (tmp_path / "holder.py").write_text(HOLDER.format(tests=str(TESTS)))
    release = tmp_path / "release"
    engine = subprocess.Popen([sys.executable, str(tmp_path / "holder.py"), str(journal), str(release)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        wait_until(lambda: MonitorClient.connect(journal), timeout=60, what="the engine's endpoint").close()
        app = ZartApp(str(journal), poll=0.5)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            table = app.screen.query_one("#executions", DataTable)
            await wait_for(pilot, lambda: "p" in [r[0] for r in rows(table)], what="p listed")
            table.move_cursor(row=[r[0] for r in rows(table)].index("p"))
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, ExecutionScreen)
            steps = app.screen.query_one("#steps", DataTable)
            await wait_for(pilot, lambda: len(rows(steps)) == 3, what="the three steps")
            steps.move_cursor(row=[r[0] for r in rows(steps)].index("transform#0"))
            await pilot.press("e")
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("y")
            await wait_for(pilot, lambda: any("re-running a step in the engine" in n.message and "maybe stale: report#0"
                                              in n.message for n in app._notifications), what="the rerun's note")
            await wait_for(pilot, lambda: _triggers(journal, "p") == ["initial", "rerun"], what="run 2, a rerun")
            await wait_for(pilot, lambda: "run 2 (rerun: steps transform#0; reused after them, maybe stale: "
                           "report#0): completed" in str(app.screen.query_one("#summary").render()),
                           what="the execution screen naming run 2's trigger")
            steps.move_cursor(row=[r[0] for r in rows(steps)].index("report#0"))
            await pilot.press("F", "y")
            await wait_for(pilot, lambda: any("p-fork-1: forking in the engine" in n.message
                                              for n in app._notifications), what="the fork's note")
            await wait_for(pilot, lambda: _triggers(journal, "p-fork-1") == ["fork"], what="the fork's run")
            await pilot.press("r")
            assert not isinstance(app.screen, ConfirmScreen)  # r retries only a failed step
        release.touch()
        out, err = engine.communicate(timeout=60)
        assert "HOLDER released" in out, err
    finally:
        if engine.poll() is None:
            engine.kill()
            engine.communicate()


@run_async
async def test_restart_key_starts_a_zart_restart_process_when_no_engine_holds_the_journal(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    journal = tmp_path / ".zart" / "j.duckdb"
    _pipeline(journal, tmp_path)
    app = ZartApp(str(journal), poll=0.3)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#executions", DataTable)
        table.move_cursor(row=[r[0] for r in rows(table)].index("p"))
        await pilot.press("R")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")  # declined: nothing starts
        await pilot.press("R", "y")
        await wait_for(pilot, lambda: any("p: restarting in a new `zart restart` process" in n.message
                                          for n in app._notifications), what="the restart's note")
        await wait_for(pilot, lambda: any(r[0] == "p" and r[4] == "2" for r in rows(table)), timeout=60,
                       what="run 2 listed")
    wait_until(lambda: _triggers(journal, "p") == ["initial", "restart"], timeout=60, what="the restart's run")
