"""Retention deletes an execution's events with it, as ``zart delete`` does: before, they stayed, and an
execution given the same id later met them (an idempotency key already used, an event it never sent for).
A real DuckDB file, real worker processes."""
from __future__ import annotations

import pytest

import zart_nb as zart


@zart.workflow("fails-for-events")
def fails(_: object) -> None:
    raise RuntimeError("fails, so it takes events (it may be resumed)")


def _failed(journal) -> None:
    with pytest.raises(zart.TaskError):
        zart.run(fails, None, execution_id="e", journal=journal, display=False)


@pytest.mark.parametrize("how", ["retention", "delete"])
def test_an_execution_deleted_by_retention_or_delete_takes_its_events_with_it(journal, how):
    _failed(journal)
    assert zart.send_event("e", "go", {"n": 1}, journal=journal, idempotency_key="k") is True
    assert zart.send_event("e", "go", {"n": 1}, journal=journal, idempotency_key="k") is False  # sent once
    if how == "retention":
        report = zart.garbage_collect(journal, keep=0, min_age=0)
        assert report.executions == ("e",) and report.rows_by_table["events"] == 1
    else:
        zart.delete("e", journal=journal)
    _failed(journal)  # the id again, a new execution
    assert zart.send_event("e", "go", {"n": 2}, journal=journal, idempotency_key="k") is True  # not the old one's
    pending = zart.journal(journal).pending_events("e")
    assert [event.payload for event in pending] == ['{"n":2}'], pending
