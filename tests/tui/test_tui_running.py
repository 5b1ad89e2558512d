"""A running step in zart-tui: listed as running with its attempt and worker (asked of the engine, not
announced per step), opened while it runs, its output followed live, then its record once it finished."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import wait_until
from textual.widgets import DataTable, Static
from tui_helpers import open_running, rows, run_async, settle, wait_for
from zart_tui.app import ZartApp
from zart_tui.screens.step import StepScreen

from zart_nb._monitor import endpoint as endpoint_file

DRIVER = Path(__file__).parent.parent / "scripts" / "printing_driver.py"


@run_async
async def test_a_running_step_is_listed_running_and_its_output_followed_live(tmp_path):
    journal = tmp_path / ".zart" / "nb.duckdb"
    journal.parent.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    with open(tmp_path / "out", "w") as out, open(tmp_path / "err", "w") as err:
        driver = subprocess.Popen([sys.executable, str(DRIVER), str(journal), str(work), "live"], cwd=tmp_path,
                                  stdout=out, stderr=err, env={**os.environ, "ZART_WORKERS": "2"})
    try:
        wait_until(lambda: endpoint_file.read(journal), what="the driver's endpoint")
        app = ZartApp(str(journal.parent), poll=30)
        async with app.run_test(size=(150, 40)) as pilot:
            steps = (await open_running(pilot, "live")).query_one("#steps", DataTable)

            def running_rows():
                found = {r[0]: r for r in rows(steps) if r[0].startswith("slow-")}
                return found if len(found) == 2 and all(r[1] == "running" for r in found.values()) else None

            found = await wait_for(pilot, running_rows, what="both slow steps listed running")
            for row in found.values():
                assert row[2] == "1" and row[5].startswith("worker-"), row  # attempt, worker
            assert "2 running" in str(app.screen.query_one("#summary", Static).render())
            steps.move_cursor(row=[r[0] for r in rows(steps)].index("slow-0"))
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, StepScreen)
            await wait_for(pilot, lambda: "slow 0 started" in str(app.screen.query_one("#step-live", Static).render()),
                           what="the running step's output, live")
            (work / "release").touch()
            await wait_for(pilot, lambda: "completed" in str(app.screen.query_one("#step-head", Static).render()),
                           what="the step's record once it finished")
            detail = lambda: str(app.screen.query_one("#step-detail", Static).render())  # noqa: E731
            await wait_for(pilot, lambda: "slow 0 started" in detail(), what="its journaled output")
        assert driver.wait(60) == 0, (tmp_path / "err").read_text()
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()


@run_async
async def test_the_execution_screen_shows_a_queues_backlog(tmp_path):
    journal = tmp_path / ".zart" / "nb.duckdb"
    journal.parent.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    with open(tmp_path / "out", "w") as out, open(tmp_path / "err", "w") as err:
        driver = subprocess.Popen([sys.executable, str(DRIVER), str(journal), str(work), "queued", "queue"],
                                  cwd=tmp_path, stdout=out, stderr=err, env={**os.environ, "ZART_WORKERS": "2"})
    try:
        wait_until(lambda: endpoint_file.read(journal), what="the driver's endpoint")
        app = ZartApp(str(journal.parent), poll=30)
        async with app.run_test(size=(150, 40)) as pilot:
            await open_running(pilot, "queued")
            summary = lambda: str(app.screen.query_one("#summary", Static).render())  # noqa: E731
            await wait_for(pilot, lambda: "1 running" in summary() and "1 waiting on queue 'slow'" in summary(),
                           what="one slow step running, the other waiting on its queue")
        (work / "release").touch()
        assert driver.wait(60) == 0, (tmp_path / "err").read_text()
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
