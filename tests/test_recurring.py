"""Recurring schedules: tick timing as a table of cases (no journal), then zart.recurring and the
`zart recurring` CLI on a real journal, and what one look of the serve loop starts (real worker processes)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import serve_lib
from conftest import wait_until

import zart_nb as zart
from zart_nb._journal import schedules as sql
from zart_nb._runtime import runtime
from zart_nb._serve import recurring as rec

TESTS = Path(__file__).parent


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.mark.parametrize(("cron", "every", "tz", "after", "expected"), [
    ("0 9 * * *", None, "UTC", "2026-12-06T08:59:59+00:00", "2026-12-06T09:00:00+00:00"),
    ("0 9 * * *", None, "UTC", "2026-12-06T09:00:00+00:00", "2026-12-07T09:00:00+00:00"),  # strictly after
    ("0 9 * * *", None, "Europe/Paris", "2026-12-06T07:00:00+00:00", "2026-12-06T08:00:00+00:00"),  # 9:00 CET
    ("*/15 * * * *", None, "UTC", "2026-12-06T10:07:00+00:00", "2026-12-06T10:15:00+00:00"),
    (None, 3600, "UTC", "2026-12-06T10:07:00+00:00", "2026-12-06T11:00:00+00:00"),  # on the hour
    (None, 3600, "UTC", "2026-12-06T11:00:00+00:00", "2026-12-06T12:00:00+00:00"),
    (None, 90, "UTC", "2026-12-06T00:00:00+00:00", "2026-12-06T00:01:30+00:00"),
])
def test_the_next_tick_is_the_first_strictly_after(cron, every, tz, after, expected):
    assert rec.next_tick(cron, every, tz, ts(after)) == ts(expected)


@pytest.mark.parametrize(("cron", "every", "last", "now", "expected"), [
    # nothing due yet
    ("0 9 * * *", None, "2026-12-06T09:00:00+00:00", "2026-12-06T20:00:00+00:00", None),
    # one tick due
    ("0 9 * * *", None, "2026-12-06T09:00:00+00:00", "2026-12-07T09:00:30+00:00", "2026-12-07T09:00:00+00:00"),
    # three days missed: one catch-up run, for the latest tick
    ("0 9 * * *", None, "2026-12-03T09:00:00+00:00", "2026-12-06T10:00:00+00:00", "2026-12-06T09:00:00+00:00"),
    # exactly at the tick
    ("0 9 * * *", None, "2026-12-05T09:00:00+00:00", "2026-12-06T09:00:00+00:00", "2026-12-06T09:00:00+00:00"),
    (None, 60, "2026-12-06T10:00:00+00:00", "2026-12-06T10:00:59+00:00", None),
    (None, 60, "2026-12-06T10:00:00+00:00", "2026-12-06T10:05:10+00:00", "2026-12-06T10:05:00+00:00"),
])
def test_missed_ticks_give_one_run_for_the_latest(cron, every, last, now, expected):
    due = rec.due_tick(cron, every, "UTC", ts(last), ts(now))
    assert due == (None if expected is None else ts(expected))


def test_a_tick_names_its_execution_in_iso_8601_in_the_schedules_time_zone():
    tick = ts("2026-12-06T08:00:00+00:00")
    assert rec.tick_execution_id("report", tick, "UTC") == "report@2026-12-06T08:00:00+00:00"
    assert rec.tick_execution_id("report", tick, "Europe/Paris") == "report@2026-12-06T09:00:00+01:00"
    assert rec.tick_execution_id("r", tick + 0.5, "UTC") == "r@2026-12-06T08:00:00.500+00:00"


@pytest.mark.parametrize(("kwargs", "words"), [
    ({}, "either cron"),
    ({"cron": "0 9 * * *", "every": 5}, "not both"),
    ({"cron": "every day"}, "not a valid cron"),
    ({"every": 0}, "every must be"),
    ({"every": float("nan")}, "every must be"),
    ({"every": True}, "every must be"),
    ({"every": 5, "tz": "Mars/Olympus"}, "not a time zone"),
    ({"every": 5, "overlap": "queue"}, "overlap must be"),
])
def test_a_bad_schedule_is_refused_with_what_is_wrong(journal, kwargs, words):
    with pytest.raises(zart.ConfigurationError, match=words):
        zart.recurring(serve_lib.ticker, journal=journal, **kwargs)
    assert not journal.exists() or zart.schedules(journal) == []


def test_recurring_journals_the_schedule_and_its_workflow_definition(journal):
    before = datetime.now(UTC)
    schedule = zart.recurring(serve_lib.ticker, "*/5 * * * *", data={"x": 1}, tz="Europe/Paris", overlap="allow",
                              journal=journal)
    assert (schedule.workflow, schedule.cron, schedule.every, schedule.tz, schedule.overlap, schedule.paused) == \
        ("ticker", "*/5 * * * *", None, "Europe/Paris", "allow", False)
    assert schedule.data_preview == "{'x': 1}" and schedule.last_tick is None and schedule.last_execution is None
    assert schedule.next_tick > before and schedule.next_tick.minute % 5 == 0
    # serve finds the definition by name, without the notebook
    found = runtime.journal(journal).query(sql.pickled_workflow, "ticker")
    assert found is not None
    # registering again changes it (one schedule per workflow)
    again = zart.recurring(serve_lib.ticker, every=30, data=[2], journal=journal)
    assert [(s.workflow, s.every, s.cron, s.data_preview) for s in zart.schedules(journal)] == \
        [("ticker", 30.0, None, "[2]")]
    assert again.next_tick.timestamp() % 30 == 0


def test_pause_resume_and_remove(journal):
    zart.recurring(serve_lib.ticker, every=60, journal=journal)
    assert zart.pause_schedule("ticker", journal=journal).paused
    assert zart.schedules(journal)[0].next_tick is None
    resumed = zart.resume_schedule(serve_lib.ticker, journal=journal)
    assert not resumed.paused and resumed.next_tick is not None
    zart.remove_schedule("ticker", journal=journal)
    assert zart.schedules(journal) == []
    with pytest.raises(zart.ScheduleNotFound, match="'ticker'"):
        zart.pause_schedule("ticker", journal=journal)


def _zart(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "zart_nb", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=60)


def test_the_cli_lists_pauses_resumes_and_removes_schedules(tmp_path):
    journal = tmp_path / ".zart" / "journal.duckdb"
    zart.recurring(serve_lib.ticker, "0 9 * * *", data={"x": 1}, journal=journal)
    runtime.journal(journal).close()
    listed = _zart("recurring", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "ticker  cron '0 9 * * *' (UTC)  overlap=skip  next 20" in listed.stdout
    assert _zart("recurring", "pause", "ticker", cwd=tmp_path).returncode == 0
    as_json = json.loads(_zart("recurring", "--json", cwd=tmp_path).stdout)
    assert [(s["workflow"], s["paused"], s["next_tick"]) for s in as_json] == [("ticker", True, None)]
    assert _zart("recurring", "resume", "ticker", cwd=tmp_path).returncode == 0
    assert json.loads(_zart("recurring", "--json", cwd=tmp_path).stdout)[0]["paused"] is False
    assert _zart("recurring", "remove", "ticker", cwd=tmp_path).returncode == 0
    assert _zart("recurring", cwd=tmp_path).stdout.strip() == "no recurring schedules"
    missing = _zart("recurring", "pause", "ticker", cwd=tmp_path)
    assert missing.returncode != 0 and "no recurring schedule of workflow 'ticker'" in missing.stderr


# --- one look of the serve loop, in this process -----------------------------------------------------


def _serve(journal: Path):
    import io

    from zart_nb._serve.loop import Serve

    return Serve([journal], poll=60.0, out=io.StringIO())


def _status(journal: Path, execution_id: str):
    record = zart.journal(journal, live=False).execution_record(execution_id)
    return None if record is None else record.status


@pytest.mark.parametrize("overlap", ["skip", "cancel", "allow"])
def test_a_tick_while_the_previous_execution_runs_skips_cancels_or_overlaps(tmp_path, overlap):
    journal = tmp_path / ".zart" / "journal.duckdb"
    gate = tmp_path / "gate"
    zart.recurring(serve_lib.gated, every=60, data={"gate": str(gate)}, overlap=overlap, journal=journal)
    serve = _serve(journal)
    served = serve.served[0]
    first_tick = rec.next_tick(None, 60, "UTC", runtime.journal(journal).query(sql.schedule_rows)[0].last_tick)
    try:
        serve.look(served, first_tick + 1)
        first = f"gated@{datetime.fromtimestamp(first_tick, UTC).isoformat()}"
        second = f"gated@{datetime.fromtimestamp(first_tick + 60, UTC).isoformat()}"
        assert [e.execution_id for e in serve.running()] == [first]
        serve.look(served, first_tick + 61)
        running = sorted(e.execution_id for e in serve.running())
        expected = {"skip": [first], "cancel": [second], "allow": [first, second]}[overlap]
        assert running == expected
        if overlap == "cancel":
            assert _status(journal, first) is zart.ExecutionStatus.CANCELLED
        if overlap == "skip":
            assert _status(journal, second) is None
            assert zart.schedules(journal)[0].last_tick.timestamp() == first_tick + 60  # dealt with
    finally:
        gate.touch()
        for execution in serve.running():
            execution.wait_done(30)
    wait_until(lambda: not serve.running(), what="the executions to end")
    for execution_id in running:
        assert _status(journal, execution_id) is zart.ExecutionStatus.COMPLETED
    assert zart.schedules(journal)[0].last_execution == running[-1]


def test_a_tick_whose_data_serve_cannot_load_is_skipped_and_the_others_run(tmp_path, monkeypatch, caplog):
    journal = tmp_path / ".zart" / "journal.duckdb"
    module = tmp_path / "mods" / "gone_mod.py"
    module.parent.mkdir()
    module.write_text("class Payload:\n    pass\n")
    monkeypatch.syspath_prepend(str(module.parent))
    import gone_mod

    zart.recurring(serve_lib.gated, every=60, data={"gate": str(tmp_path), "x": gone_mod.Payload()}, journal=journal)
    zart.recurring(serve_lib.ticker, every=60, data=1, journal=journal)
    monkeypatch.delitem(sys.modules, "gone_mod")
    sys.path.remove(str(module.parent))  # what serve lacks: the data's module
    serve = _serve(journal)
    now = rec.next_tick(None, 60, "UTC", time.time()) + 1
    serve.look(serve.served[0], now)
    wait_until(lambda: not serve.running(), what="the ticker tick to end")
    tick = rec.latest_tick(None, 60, "UTC", now)
    assert _status(journal, rec.tick_execution_id("ticker", tick, "UTC")) is zart.ExecutionStatus.COMPLETED
    assert _status(journal, rec.tick_execution_id("gated", tick, "UTC")) is None
    assert "is skipped: ModuleNotFoundError" in caplog.text
    assert [s.last_tick.timestamp() for s in zart.schedules(journal)] == [tick, tick]  # not tried again
