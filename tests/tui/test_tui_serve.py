"""zart-tui beside ``zart serve``: serve holds its journal without a monitor for a look at due work (here,
with ``$ZART_MONITOR=0``, for as long as a gated step runs). The app keeps showing what it read, says
"busy" after a couple of refreshes, and "locked" only once serve keeps the file past its patience; any
other holder is "locked" at once. A real ``zart serve`` process, the Textual pilot."""
from __future__ import annotations

import subprocess
import sys

import handover_lib
import processes
import pytest
from conftest import wait_until
from textual.widgets import DataTable, Static
from tui_helpers import open_schedules, rows, run_async, settle, wait_for
from zart_tui.app import ZartApp
from zart_tui.source import Source

import zart_nb as zart

ROWS = [["done-1", "quick", "completed"], ["long", "long", "sleeping"]]


def _journal_for_serve(tmp_path, schedule: bool = False):
    """``done-1`` completed, and ``long`` (handover_lib) suspended in its nap by a process that has ended:
    the next zart serve continues it, and holds the journal while its step waits for ``gate``. With
    ``schedule``, a recurring schedule of ``quick`` too (daily: no tick comes during the test)."""
    journal = tmp_path / ".zart" / "journal.duckdb"
    log, gate = tmp_path / "steps.log", tmp_path / "gate"
    data = {"log": str(log), "gate": str(gate), "nap": 0.5}
    setup = processes.script(tmp_path / "setup.py", f"""
        import time, handover_lib, zart_nb as zart
        zart.run(handover_lib.quick, {{"log": {str(log)!r}, "name": "done"}}, execution_id="done-1",
                 journal={str(journal)!r}, display=False)
        execution = zart.start(handover_lib.long, {data!r}, execution_id="long", journal={str(journal)!r},
                               display=False)
        deadline = time.monotonic() + 60
        while execution.status is not zart.ExecutionStatus.SLEEPING and time.monotonic() < deadline:
            time.sleep(0.02)
        assert execution.status is zart.ExecutionStatus.SLEEPING, execution.status
        if {schedule!r}:
            zart.recurring(handover_lib.quick, "0 3 * * *", data={{"log": {str(log)!r}}}, journal={str(journal)!r})
    """)
    subprocess.run([sys.executable, str(setup)], cwd=tmp_path, env=processes.env(ZART_SUSPEND_AFTER="0"), check=True,
                   timeout=120)
    return journal, log, gate


def _listed(app) -> list[list[str]]:
    return sorted(r[:3] for r in rows(app.screen.query_one("#executions", DataTable)))


def _header(app) -> str:
    return str(app.screen.query_one("#header").render())


@run_async
async def test_the_app_keeps_its_rows_while_serve_holds_the_journal_and_says_locked_only_when_serve_keeps_it(
        tmp_path):
    journal, log, gate = _journal_for_serve(tmp_path)
    app = ZartApp(str(journal), poll=0.3)  # the file is read again every 0.3 s
    async with app.run_test(size=(150, 40)) as pilot:
        await settle(pilot)
        source = app.sources[0]
        assert _listed(app) == ROWS and source.state == "file"
        source.busy_hint, source.serve_patience = 1.0, 3600.0
        serve = processes.serve(journal, tmp_path, tmp_path / "serve.log", ZART_MONITOR="0")
        try:
            wait_until(lambda: "start:first" in handover_lib.lines(log), timeout=60, what="serve to run the step")
            refresher = app.screen.refresher
            before = refresher.reads
            # serve holds the file (its step waits for the gate): reads find it so and keep what is shown
            await wait_for(pilot, lambda: source.kept and refresher.reads >= before + 3, what="reads beside serve")
            assert _listed(app) == ROWS  # before: no rows (the read gave nothing) and "locked" in the header
            assert source.state == "file" or source.state == "busy"
            assert "locked" not in _header(app)
            # after a couple of refreshes, a discreet hint: busy, naming serve
            await wait_for(pilot, lambda: "busy" in _header(app), what="the busy hint")
            assert source.state == "busy" and f"process {serve.pid}" in source.message, source.message
            assert "journal busy" in _header(app) and "locked" not in _header(app)
            assert _listed(app) == ROWS
            # a source that has read nothing yet (an app started now) says busy at once, not locked
            fresh = Source(journal)
            assert fresh.read(lambda reader: reader.stats()) is None
            assert fresh.kept and fresh.state == "busy" and "(zart serve) holds it" in fresh.message, fresh.message
            # serve keeps the file past the app's patience: now it is locked
            source.serve_patience = 0.5
            await wait_for(pilot, lambda: f"locked: process {serve.pid}" in _header(app),
                           what="locked once serve keeps it")
            assert source.state == "locked" and "serves no monitor" in _header(app)
            # serve lets go: the file is read again, and the execution it continued is there
            source.serve_patience = 3600.0
            gate.touch()
            await wait_for(pilot, lambda: ["long", "long", "completed"] in _listed(app), timeout=60,
                           what="serve's execution completed on screen")
            await wait_for(pilot, lambda: "journal: file" in _header(app), what="the file read again")
            assert "busy" not in _header(app) and "locked" not in _header(app)
        finally:
            gate.touch()
            assert processes.stop(serve) == 0


@run_async
async def test_the_schedules_screen_keeps_its_rows_while_serve_holds_the_journal(tmp_path):
    journal, log, gate = _journal_for_serve(tmp_path, schedule=True)
    app = ZartApp(str(journal), poll=0.3)
    async with app.run_test(size=(150, 40)) as pilot:
        await settle(pilot)
        table = await open_schedules(pilot)
        assert [r[0] for r in rows(table)] == ["quick"]
        serve = processes.serve(journal, tmp_path, tmp_path / "serve.log", ZART_MONITOR="0")
        try:
            wait_until(lambda: "start:first" in handover_lib.lines(log), timeout=60, what="serve to run the step")
            refresher = app.screen.refresher
            before = refresher.reads
            await wait_for(pilot, lambda: refresher.reads >= before + 3, what="reads beside serve")
            assert [r[0] for r in rows(table)] == ["quick"]  # before: none, and "held by a running engine"
            assert "held by" not in str(app.screen.query_one("#schedules-note").render())
            with pytest.raises(zart.JournalLocked) as held:  # serve held the file all along (its step waits)
                zart.schedules(journal, lock_timeout=0.3)
            assert held.value.held_by_serve and held.value.pid == serve.pid
        finally:
            gate.touch()
            assert processes.stop(serve) == 0


@run_async
async def test_a_holder_that_is_not_serve_is_locked_at_once(tmp_path):
    journal, _, gate = _journal_for_serve(tmp_path)
    gate.touch()
    holder = subprocess.Popen([sys.executable, "-c", f"""
import sys, time
from zart_nb._runtime import runtime
with runtime.journal({str(journal)!r}).hold():
    print("held", flush=True)
    time.sleep(120)
"""], stdout=subprocess.PIPE, text=True, env=processes.env(ZART_MONITOR="0"))
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        app = ZartApp(str(journal), poll=0.3)
        async with app.run_test(size=(150, 40)) as pilot:
            await settle(pilot)
            source = app.sources[0]
            await wait_for(pilot, lambda: f"locked: process {holder.pid}" in _header(app), what="locked")
            assert source.state == "locked" and not source.kept and "serves no monitor" in _header(app)
        with pytest.raises(zart.JournalLocked) as held:
            zart.schedules(journal, lock_timeout=0.3)
        assert held.value.pid == holder.pid and not held.value.held_by_serve
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


@run_async
async def test_a_filter_changed_while_serve_holds_the_journal_shows_the_last_read_filtered(tmp_path):
    """While serve holds the file, a new filter, search or sort cannot be read: the list shows the last
    read filtered and sorted here (before: an empty list until the file could be read again). A filter the
    last read cannot answer (none failed in it: none listed) says serve holds the file; the first filter
    comes back exactly as read. Once serve lets go, the file's own answer replaces it."""
    journal, log, gate = _journal_for_serve(tmp_path)
    app = ZartApp(str(journal), poll=0.3)
    async with app.run_test(size=(150, 40)) as pilot:
        await settle(pilot)
        source, screen = app.sources[0], app.screen
        assert _listed(app) == ROWS
        source.busy_hint, source.serve_patience = 1.0, 3600.0
        serve = processes.serve(journal, tmp_path, tmp_path / "serve.log", ZART_MONITOR="0")
        try:
            wait_until(lambda: "start:first" in handover_lib.lines(log), timeout=60, what="serve to run the step")
            refresher = screen.refresher
            before = refresher.reads
            await wait_for(pilot, lambda: source.kept and refresher.reads >= before + 2, what="reads beside serve")

            async def shown_after(*keys: str) -> list[list[str]]:
                """The rows once a read started after ``keys`` has landed (serve still holding the file)."""
                at = refresher.reads
                await pilot.press(*keys)
                await wait_for(pilot, lambda: refresher.reads > at and not refresher.running, what=f"{keys} read")
                assert source.kept, "serve let the file go: nothing here was read beside it"
                return [r[:3] for r in rows(screen.query_one("#executions", DataTable))]

            assert await shown_after("3") == [ROWS[0]]  # completed (before: no rows)
            assert await shown_after("7") == [ROWS[1]]  # sleeping
            assert await shown_after("2") == []  # failed: none in the last read
            assert "zart serve holds it" in str(screen.query_one("#empty", Static).render())
            assert await shown_after("0") == [ROWS[1], ROWS[0]]  # every status, newest first: as read
            assert await shown_after("S") == ROWS  # oldest first
            assert await shown_after("slash", "d", "o", "n", "enter") == [ROWS[0]]  # a search: "don"
            assert await shown_after("escape", "3") == [ROWS[0]]
            assert "busy" in _header(app) and "completed" in _header(app)
            gate.touch()  # serve lets go: the file's answer (long completed too) replaces the narrowed list
            await wait_for(pilot, lambda: sorted(r[:3] for r in rows(screen.query_one("#executions", DataTable)))
                           == [ROWS[0], ["long", "long", "completed"]], timeout=60, what="the file read again")
        finally:
            gate.touch()
            assert processes.stop(serve) == 0


def test_the_last_read_answers_a_new_query_only_when_it_holds_every_row_of_it():
    """``narrowed``, what the list shows for a query changed while serve holds the file: the last read
    filtered and sorted as the read API would, or None when that read cannot hold every row the query
    wants (it kept another status, a search the new one does not contain, or it filled its page)."""
    from datetime import datetime

    from zart_tui.screens.executions import PAGE, Query, narrowed

    def record(i: int, workflow: str, status: str) -> zart.ExecutionRecord:
        return zart.ExecutionRecord(f"run-{i}", workflow, zart.ExecutionStatus(status), 1, "", None, None, None,
                                    datetime(2026, 1, 1, 0, 0, i), None, None, None)

    def ids(records) -> list[str]:
        return [r.execution_id for r in records]

    read = [record(3, "train", "failed"), record(2, "etl", "failed"), record(1, "Train", "completed")]
    every = Query(None, None, "created", True)
    assert ids(narrowed(every, read, Query("failed", None, "created", True))) == ["run-3", "run-2"]
    assert ids(narrowed(every, read, Query(None, "TRAIN", "id", False))) == ["run-1", "run-3"]  # any case
    assert ids(narrowed(every, read, Query(None, "run-2", "created", True))) == ["run-2"]  # a part of the id
    searched = Query(None, "tra", "created", True)
    trains = [read[0], read[2]]
    assert ids(narrowed(searched, trains, Query("completed", "train", "created", True))) == ["run-1"]
    assert narrowed(searched, trains, Query(None, "t", "created", True)) is None  # wider than that read
    assert narrowed(searched, trains, every) is None
    assert narrowed(Query("failed", None, "created", True), read[:2], Query("completed", None, "created", True)) is None
    assert narrowed(every, [read[0]] * PAGE, Query("failed", None, "created", True)) is None  # a full page
