"""`zart.cancel` and `zart.delete` given a list: an outcome per id, an unknown id reported with the others."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import wait_until

import zart_nb as zart
from zart_nb._monitor import endpoint as endpoint_file
from zart_nb._runtime import runtime

DRIVER = Path(__file__).parent / "scripts" / "monitor_driver.py"


def _unfinished(journal, execution_id):
    j = runtime.journal(journal)
    with j.hold():
        j.begin_run(execution_id, "wf", "def", b"", "h", "None", "rerun")


def _status(journal, execution_id):
    reader = zart.journal(journal)
    try:
        record = reader.execution_record(execution_id)
    finally:
        reader.close()
    return None if record is None else record.status


def test_a_list_is_cancelled_and_deleted_id_by_id_from_the_file(journal):
    zart.run(lambda x: x, 1, execution_id="done", journal=journal)
    _unfinished(journal, "stuck")
    runtime.journal(journal).close()

    cancelled = zart.cancel(["stuck", "nope", "done"], journal=journal)
    assert [(o.execution_id, o.done, o.was, o.status) for o in cancelled[::2]] == [
        ("stuck", "cancelled", zart.ExecutionStatus.RUNNING, zart.ExecutionStatus.CANCELLED),
        ("done", "already finished", zart.ExecutionStatus.COMPLETED, zart.ExecutionStatus.COMPLETED)]
    assert cancelled[1].done == "failed" and isinstance(cancelled[1].error, zart.ExecutionNotFound)
    assert [o.ok for o in cancelled] == [True, False, True]
    assert str(cancelled[0]) == "stuck: cancelled (was running)" and str(cancelled[2]) == "done: already completed"

    deleted = zart.delete(["done", "nope", "stuck"], journal=journal)
    assert [(o.execution_id, o.done, o.was) for o in deleted] == [
        ("done", "deleted", zart.ExecutionStatus.COMPLETED), ("nope", "failed", None),
        ("stuck", "deleted", zart.ExecutionStatus.CANCELLED)]
    assert isinstance(deleted[1].error, zart.ExecutionNotFound) and "nope" in str(deleted[1])
    assert zart.journal(journal).list_executions() == []


def test_the_one_id_forms_keep_their_return_types(journal):
    zart.run(lambda x: x, 1, execution_id="one", journal=journal)
    assert zart.cancel("one", journal=journal) is zart.ExecutionStatus.COMPLETED
    assert zart.delete("one", journal=journal) is None
    with pytest.raises(zart.ExecutionNotFound):
        zart.delete("one", journal=journal)
    assert zart.delete((), journal=journal) == [] and zart.cancel([], journal=journal) == []


@pytest.mark.parametrize("bad", [b"one", 3, ["ok", 3], ["ok", ""]])
def test_what_is_not_an_id_or_a_list_of_ids_is_a_clear_error(journal, bad):
    with pytest.raises(zart.ConfigurationError, match="execution id"):
        zart.cancel(bad, journal=journal)
    with pytest.raises(zart.ConfigurationError, match="execution id"):
        zart.delete(bad, journal=journal)


def test_a_list_goes_through_a_live_engine_and_an_unknown_id_does_not_stop_the_others(tmp_path):
    journal = tmp_path / "j.duckdb"
    driver = subprocess.Popen([sys.executable, str(DRIVER), str(journal), str(tmp_path), "2"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        wait_until(lambda: endpoint_file.read(journal), what="the driver's endpoint")
        wait_until(lambda: _status(journal, "first") is zart.ExecutionStatus.RUNNING, what="first to run")
        refused = zart.delete(["first", "nope"], journal=journal)  # first is running there
        assert [o.done for o in refused] == ["failed", "failed"]
        assert isinstance(refused[0].error, zart.DefinitionError) and "running" in str(refused[0].error)
        assert isinstance(refused[1].error, zart.ExecutionNotFound)

        (tmp_path / "go-0").touch()
        (tmp_path / "go-1").touch()
        wait_until((tmp_path / "second.pid").exists, what="the second execution's step to start")
        deleted = zart.delete(["first", "nope"], journal=journal)  # while the engine holds the journal
        assert [(o.done, o.was) for o in deleted] == [("deleted", zart.ExecutionStatus.COMPLETED),
                                                     ("failed", None)]
        cancelled = zart.cancel(["nope", "second", "first"], journal=journal)
        assert [type(o.error) for o in cancelled] == [zart.ExecutionNotFound, type(None), zart.ExecutionNotFound]
        assert (cancelled[1].done, cancelled[1].was, cancelled[1].status) == (
            "cancelled", zart.ExecutionStatus.RUNNING, zart.ExecutionStatus.CANCELLED)
        out, err = driver.communicate(timeout=60)
        assert "SECOND cancelled" in out, (out, err)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert [r.execution_id for r in zart.journal(journal).list_executions()] == ["second"]
