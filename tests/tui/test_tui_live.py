"""The app watching a workflow that another process runs: it advances and completes on screen, and the
app cancels the next one (its step's worker is killed)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import wait_until
from textual.widgets import DataTable
from tui_helpers import rows, run_async, settle, wait_for
from zart_tui.app import ZartApp
from zart_tui.screens.confirm import ConfirmScreen
from zart_tui.screens.execution import ExecutionScreen

from zart_nb._monitor import endpoint as endpoint_file

DRIVER = Path(__file__).parent.parent / "scripts" / "monitor_driver.py"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@run_async
async def test_the_app_follows_another_process_and_cancels_its_execution(tmp_path):
    journal = tmp_path / ".zart" / "nb.duckdb"
    journal.parent.mkdir()
    driver = subprocess.Popen([sys.executable, str(DRIVER), str(journal), str(tmp_path)], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: endpoint_file.read(journal), what="the driver's endpoint")
        app = ZartApp(str(journal.parent), poll=30)  # a long poll: what moves the screen is the events
        async with app.run_test(size=(150, 40)) as pilot:
            await settle(pilot)
            table = app.screen.query_one("#executions", DataTable)

            def status(execution_id: str) -> str | None:
                return next((r[2] for r in rows(table) if r[0] == execution_id), None)

            await wait_for(pilot, lambda: status("first") == "running", what="first running")
            assert "nb: live" in str(app.screen.query_one("#header").render())
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, ExecutionScreen)
            steps = app.screen.query_one("#steps", DataTable)
            # gated-0 started before the app came: the engine says it is running on subscribe
            await wait_for(pilot, lambda: [r[:2] for r in rows(steps)] == [["gated-0", "running"]],
                           what="the step in flight before the app came")
            (tmp_path / "go-0").touch()
            # gated-1 is in flight: the engine's events show it before the journal has a row of it
            # gated-1 runs: the screen asks the engine what runs (no event announces a start)
            await wait_for(pilot, lambda: [r[:2] for r in rows(steps)] == [["gated-0", "completed"],
                                                                           ["gated-1", "running"]],
                           what="gated-0 completed and gated-1 running")
            for i in (1, 2):
                (tmp_path / f"go-{i}").touch()
                await wait_for(pilot, lambda i=i: any(r[0] == f"gated-{i}" and r[1] == "completed"
                                                      for r in rows(steps)), what=f"gated-{i} completed")
            await wait_for(pilot, lambda: "completed" in str(app.screen.query_one("#summary").render()),
                           what="first completed on the execution screen")
            await pilot.press("escape")
            await wait_for(pilot, lambda: status("second") == "running", what="second running")
            pid_file = tmp_path / "second.pid"
            await wait_for(pilot, pid_file.exists, what="the second execution's step to start")
            worker = int(pid_file.read_text())
            table.move_cursor(row=[r[0] for r in rows(table)].index("second"))
            await pilot.press("c")
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("y")
            await wait_for(pilot, lambda: status("second") == "cancelled", timeout=60, what="second cancelled")
            # The engine answers the cancel at once; the status above came from its events.
            assert any("second: cancelling (was running)" in n.message for n in app._notifications)
        out, err = driver.communicate(timeout=60)
        assert "FIRST completed" in out and f"SECOND cancelled by zart-tui (pid {os.getpid()})" in out, err
        assert not _alive(worker)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
