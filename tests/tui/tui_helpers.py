"""Journals made by real runs for the app's tests, and helpers that let the app's reads land."""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import wait_until
from steps_lib import fail_if, flaky, square

import zart_nb as zart
from zart_nb._monitor import endpoint as endpoint_file

PRINTING_DRIVER = Path(__file__).parent.parent / "scripts" / "printing_driver.py"


@zart.workflow("squares")
def squares(xs: list[int]) -> int:
    return sum(zart.wait([zart.schedule(square, x) for x in xs]))


@zart.workflow("picky")
def picky(xs: list[int]) -> list[int]:
    return zart.wait([zart.schedule(fail_if, x, 2) for x in xs])


@zart.workflow("flaky-flow")
def flaky_flow(data: dict) -> list[int]:
    return zart.wait([zart.schedule(flaky, x, data["marker"]) for x in data["xs"]])


def make_journal(path: Path, marker: Path | None = None) -> Path:
    """``sq`` completed (3 steps), ``bad`` failed at step fail-if#1; with ``marker``, ``flaky`` failed
    while the marker exists. The file is released afterwards, as by an engine that finished."""
    zart.run(squares, [1, 2, 3], execution_id="sq", journal=path)
    with pytest.raises(zart.StepFailed):
        zart.run(picky, [1, 2, 3], execution_id="bad", journal=path)
    if marker is not None:
        marker.touch()
        with pytest.raises(zart.StepFailed):
            zart.run(flaky_flow, {"xs": [1, 3], "marker": str(marker)}, execution_id="flaky", journal=path)
    zart.journal(path, live=False).close()
    return path


async def settle(pilot, rounds: int = 2) -> None:
    """Let the app's read workers finish and their results reach the screen."""
    for _ in range(rounds):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


async def wait_for(pilot, condition, timeout: float = 30.0, what: str = "condition"):
    """Poll ``condition`` while the app runs (its timer reloads the screens)."""
    import time

    deadline = time.monotonic() + timeout
    started = time.monotonic()
    while True:
        value = condition()
        if value:
            if os.environ.get("ZART_TUI_TRACE"):
                print(f"waited {time.monotonic() - started:.2f}s for {what}", file=sys.__stderr__)
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await pilot.pause(0.05)


def rows(table) -> list[list[str]]:
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


async def open_first_execution(pilot) -> list[str]:
    """Open the first execution listed (once the list is read) and return the step keys its screen lists."""
    from textual.widgets import DataTable

    await settle(pilot)
    await pilot.press("enter")
    await settle(pilot)
    return [r[0] for r in rows(pilot.app.screen.query_one("#steps", DataTable))]


async def open_running(pilot, execution_id: str):
    """Open ``execution_id`` from the list once it is listed running; return its execution screen."""
    from textual.widgets import DataTable
    from zart_tui.screens.execution import ExecutionScreen

    await settle(pilot)
    table = pilot.app.screen.query_one("#executions", DataTable)
    await wait_for(pilot, lambda: any(r[0] == execution_id and r[2] == "running" for r in rows(table)),
                   what=f"{execution_id} running")
    table.move_cursor(row=[r[0] for r in rows(table)].index(execution_id))
    await pilot.press("enter")
    await settle(pilot)
    assert isinstance(pilot.app.screen, ExecutionScreen)
    return pilot.app.screen


async def open_schedules(pilot):
    """Open the schedules screen (``T``) and return its table once its first read landed."""
    from textual.widgets import DataTable
    from zart_tui.screens.schedules import SchedulesScreen

    await pilot.press("T")
    await settle(pilot)
    assert isinstance(pilot.app.screen, SchedulesScreen)
    return pilot.app.screen.query_one("#schedules", DataTable)


os.environ.setdefault("ZART_WORKERS", "2")


def run_async(fn):
    """Run an async pilot test in its own event loop (no pytest-asyncio needed)."""
    import asyncio
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


def refuse_unpickling(monkeypatch) -> None:
    """Make any unpickling in this process fail the test: the app shows stored values without it."""
    import pickle

    import cloudpickle

    def refuse(*args, **kwargs):
        raise AssertionError("the app unpickled something")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(cloudpickle, "loads", refuse)


@contextmanager
def driving(tmp_path: Path, quick: int, *mode: str) -> Iterator[Path]:
    """A driver process running execution ``bar``: ``quick`` quick steps, then two gated ones on its two
    workers (``mode``: ``"rerun"``, see the driver); released and waited for on the way out."""
    journal = tmp_path / ".zart" / "nb.duckdb"
    journal.parent.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    with open(tmp_path / "out", "w") as out, open(tmp_path / "err", "w") as err:
        command = [sys.executable, str(PRINTING_DRIVER), str(journal), str(work), "bar", str(quick), *mode]
        driver = subprocess.Popen(command, cwd=tmp_path, stdout=out, stderr=err,
                                  env={**os.environ, "ZART_WORKERS": "2"})
    try:
        wait_until(lambda: endpoint_file.read(journal), what="the driver's endpoint")
        yield journal
        (work / "release").touch()
        assert driver.wait(60) == 0, (tmp_path / "err").read_text()
        assert "RESULT" in (tmp_path / "out").read_text()
    finally:
        (work / "release").touch()
        if driver.poll() is None:
            driver.kill()
            driver.wait()
