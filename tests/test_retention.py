"""Retention (``zart.garbage_collect``, ``zart gc --keep/--older-than``) and the bulk forms of ``zart cancel``
and ``zart delete``: real worker processes, a real DuckDB file, and an engine in another process reached
through its monitor endpoint."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import wait_until
from steps_lib import squares

import zart_nb as zart
from zart_nb._monitor import endpoint as endpoint_file
from zart_nb._retention import parse_duration
from zart_nb._runtime import runtime
from zart_nb._status import ExecutionStatus

THRESHOLD = 4096
DRIVER = Path(__file__).parent / "scripts" / "retention_driver.py"


@pytest.fixture(autouse=True)
def small_threshold(monkeypatch):
    monkeypatch.setenv("ZART_VALUE_THRESHOLD", str(THRESHOLD))


@zart.step("payload")
def payload(tag: str) -> bytes:
    return tag.encode() * 10_000  # above THRESHOLD: a file of the value store


@zart.workflow("payloads")
def payloads(tag: str) -> int:
    return len(zart.wait([zart.schedule(payload, tag)])[0])


@zart.workflow("fails")
def fails(tag: str) -> None:
    raise RuntimeError(tag)


def _store(journal: Path) -> list[str]:
    folder = journal.with_name(journal.name + ".values")
    return sorted(os.listdir(folder)) if folder.exists() else []


def _ids(journal: Path) -> set[str]:
    reader = zart.journal(journal, live=False)
    try:
        return {record.execution_id for record in reader.list_executions()}
    finally:
        reader.close()


def _cli(journal: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "zart_nb", "--journal", str(journal), *args],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, cwd=cwd)


def _fill(journal: Path) -> None:
    for n in (1, 2, 3):
        zart.run(payloads, f"p{n}", execution_id=f"p{n}", journal=journal, display=False, workers=2)
    with pytest.raises(zart.TaskError):
        zart.run(fails, "f", execution_id="f1", journal=journal, display=False, workers=2)
    zart.run(squares, {"xs": [1, 2]}, execution_id="sq", journal=journal, display=False, workers=2)


def test_keep_deletes_the_older_finished_executions_with_their_rows_and_values(journal):
    _fill(journal)
    runtime.journal(journal).set_status("p1", ExecutionStatus.INTERRUPTED)  # as a killed run leaves it
    assert len(_store(journal)) == 3

    dry = zart.garbage_collect(journal, keep=1, workflow="payloads", dry_run=True, min_age=0)
    assert dry.dry_run and dry.executions == ("p2",) and dry.files == 1 and dry.bytes > 20_000
    assert _ids(journal) == {"p1", "p2", "p3", "f1", "sq"} and len(_store(journal)) == 3

    report = zart.garbage_collect(journal, keep=1, workflow="payloads", min_age=0)
    assert report.executions == ("p2",) and report.kept == 1  # p3 (newest) kept, p1 interrupted: untouched
    assert report.rows == dry.rows and report.rows_by_table["executions"] == 1 and report.rows_by_table["steps"] == 1
    assert report.files == 1 and report.bytes == dry.bytes
    assert _ids(journal) == {"p1", "p3", "f1", "sq"} and len(_store(journal)) == 2
    assert zart.load("p3", "payload#0", journal=journal) == b"p3" * 10_000  # kept values still load
    assert "freed 1 finished execution(s)" in str(report)

    everything = zart.garbage_collect(journal, older_than=0, min_age=0)  # every finished one, any workflow
    assert set(everything.executions) == {"p3", "f1", "sq"} and everything.files == 1
    assert _ids(journal) == {"p1"} and len(_store(journal)) == 1  # the interrupted one's value stays
    assert zart.garbage_collect(journal, older_than=timedelta(days=7)).executions == ()


def test_older_than_spares_recent_executions_and_bad_rules_are_refused(journal):
    _fill(journal)
    assert zart.garbage_collect(journal, older_than="7d").executions == ()
    assert zart.garbage_collect(journal).executions == ()  # no rule: orphans only
    assert _ids(journal) == {"p1", "p2", "p3", "f1", "sq"}
    for bad in ({"keep": -1}, {"keep": True}, {"older_than": "soon"}, {"older_than": -5}, {"workflow": ""}):
        with pytest.raises(zart.ConfigurationError):
            zart.garbage_collect(journal, **bad)
    assert parse_duration("7d") == 7 * 86400 and parse_duration("90") == 90 and parse_duration("1.5h") == 5400
    with pytest.raises(zart.JournalError, match="no journal file"):
        zart.garbage_collect(journal.with_name("missing.duckdb"), keep=0)


def test_zart_gc_keep_and_delete_on_a_filter_from_the_cli(journal):
    _fill(journal)
    runtime.journal(journal).close()
    dry = _cli(journal, "gc", "--keep", "2", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout)["journals"][0]
    assert report["dry_run"] and set(report["executions"]) == {"p1", "p2", "p3"} and report["files"] == 3
    assert _ids(journal) == {"p1", "p2", "p3", "f1", "sq"}

    listed = _cli(journal, "delete", "--status", "failed", "--older-than", "0s", "--dry-run")
    assert listed.returncode == 0 and "would delete 'f1' (failed, fails)" in listed.stdout, listed.stderr
    asked = _cli(journal, "delete", "--status", "failed", "--older-than", "0s")
    assert asked.returncode == 2 and "pass --yes" in asked.stderr  # stdin is not a terminal
    assert _cli(journal, "delete", "--status", "failed", "--older-than", "7d", "--yes").stdout.strip() \
        == "no execution to delete"
    done = _cli(journal, "delete", "--status", "failed", "--older-than", "0s", "--yes", "--json")
    assert done.returncode == 0, done.stderr
    assert [(row["execution_id"], row["done"]) for row in json.loads(done.stdout)["executions"]] == [("f1", "deleted")]
    assert _cli(journal, "delete", "p1", "--status", "failed").returncode == 2  # ids or a filter, not both
    assert _cli(journal, "cancel").returncode == 2  # neither

    gc = _cli(journal, "gc", "--keep", "1", "--workflow", "payloads", "--min-age", "0")
    assert gc.returncode == 0 and "deleted execution 'p1'" in gc.stdout and "deleted execution 'p2'" in gc.stdout
    assert _ids(journal) == {"p3", "sq"} and len(_store(journal)) == 1


def _start_driver(tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    journal = tmp_path / "j.duckdb"
    driver = subprocess.Popen([sys.executable, str(DRIVER), str(journal), str(tmp_path)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                              env={**os.environ, "ZART_VALUE_THRESHOLD": str(THRESHOLD)})
    wait_until(lambda: (tmp_path / "ready").exists() or driver.poll() is not None, timeout=120,
               what="the driver's live executions")
    assert driver.poll() is None, driver.communicate()
    wait_until(lambda: endpoint_file.read(journal), what="the driver's endpoint")
    return driver, journal


def _finish(driver: subprocess.Popen[str], tmp_path: Path) -> str:
    (tmp_path / "gate").touch()
    try:
        out, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert driver.returncode == 0, err
    return out


def test_zart_gc_runs_in_the_engine_that_holds_the_journal_and_spares_running_executions(tmp_path):
    driver, journal = _start_driver(tmp_path)
    try:
        store = journal.with_name(journal.name + ".values")
        assert len(os.listdir(store)) == 6  # each old-N: its step's output and its own
        gc = _cli(journal, "gc", "--keep", "1", "--json", "--min-age", "0")
        assert gc.returncode == 0, gc.stderr
        report = json.loads(gc.stdout)["journals"][0]
        assert set(report["executions"]) == {"old-1", "old-2", "old-3"} and report["kept"] == 1  # bad-1 is newest
        assert report["files"] == 6 and report["bytes"] > 6 * 100_000 and report["rows"] > 6
        assert os.listdir(store) == []
        reader = zart.journal(journal)
        try:
            assert isinstance(reader, zart.MonitorClient)  # read through the engine: it still holds the file
            assert {r.execution_id: r.status for r in reader.list_executions()} == {
                "bad-1": ExecutionStatus.FAILED, "live-1": ExecutionStatus.RUNNING, "live-2": ExecutionStatus.RUNNING}
        finally:
            reader.close()
    finally:
        out = _finish(driver, tmp_path)
    assert "live-1 completed" in out and "live-2 completed" in out


def test_zart_cancel_on_a_filter_cancels_every_running_execution_through_the_engine(tmp_path):
    driver, journal = _start_driver(tmp_path)
    try:
        dry = _cli(journal, "cancel", "--status", "running", "--all", "--dry-run", "--json")
        assert dry.returncode == 0, dry.stderr
        assert sorted(row["execution_id"] for row in json.loads(dry.stdout)["executions"]) == ["live-1", "live-2"]
        asked = _cli(journal, "cancel", "--status", "running", "--all")
        assert asked.returncode == 2 and "pass --yes" in asked.stderr
        done = _cli(journal, "cancel", "--status", "running", "--all", "--yes", "--json")
        assert done.returncode == 0, done.stderr
        rows = json.loads(done.stdout)["executions"]
        assert sorted((r["execution_id"], r["was"], r["status"]) for r in rows) == [
            ("live-1", "running", "cancelled"), ("live-2", "running", "cancelled")]
        out = driver.communicate(timeout=120)[0]
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert "live-1 cancelled" in out and "live-2 cancelled" in out
    assert _cli(journal, "cancel", "--all", "--yes").stdout.strip() == "no execution to cancel"


def test_a_value_another_execution_still_points_to_stays(journal):
    import duckdb

    _fill(journal)
    runtime.journal(journal).close()
    conn = duckdb.connect(str(journal))  # as a fork's reused step row does: the same file, another execution
    conn.execute("""INSERT INTO steps SELECT 'sq', 'borrowed#0', run_number, seq, name, def_id, args, args_hash,
                        args_preview, status, output, output_preview, error, error_type, traceback, attempts,
                        reason, current, scheduled_at, started_at, finished_at, worker, log
                    FROM steps WHERE execution_id = 'p1' AND step_key = 'payload#0'""")
    conn.close()
    report = zart.garbage_collect(journal, keep=0, workflow="payloads", min_age=0)
    assert set(report.executions) == {"p1", "p2", "p3"} and report.files == 2  # p1's file is sq's too
    assert len(_store(journal)) == 1 and zart.load("sq", "borrowed#0", journal=journal) == b"p1" * 10_000


def test_bulk_delete_asks_on_a_terminal(journal):
    import pty

    _fill(journal)
    runtime.journal(journal).close()

    def answer(text: str) -> subprocess.CompletedProcess[str]:
        controller, terminal = pty.openpty()
        try:
            os.write(controller, text.encode())
            return subprocess.run([sys.executable, "-m", "zart_nb", "--journal", str(journal), "delete", "--status",
                                   "failed"], stdin=terminal, capture_output=True, text=True, timeout=120)
        finally:
            os.close(terminal)
            os.close(controller)

    refused = answer("n\n")
    assert refused.returncode == 1 and "Delete 1 execution(s): 'f1' (failed)? [y/N]" in refused.stderr
    assert "f1" in _ids(journal)
    agreed = answer("y\n")
    assert agreed.returncode == 0 and "f1: deleted (was failed)" in agreed.stdout, agreed.stderr
    assert "f1" not in _ids(journal)
