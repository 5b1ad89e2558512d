"""The read API's sorting, step filters and keyset pages: the same answers from the file and through a live
engine's monitor (issue 13, item 7)."""
from __future__ import annotations

import os
import time

import pytest
from conftest import wait_until
from steps_lib import fail_if, quick

import zart_nb as zart
from zart_nb._monitor import endpoint as endpoint_file
from zart_nb._monitor.client import MonitorClient

BAD = {3, 10, 17, 24}


@zart.workflow("paging-many")
def many(n: int) -> list[int]:
    return zart.wait([zart.schedule(fail_if, x, x if x in BAD else -1) for x in range(n)])


@zart.workflow("paging-one")
def one(x: int) -> int:
    return quick(x)


@zart.workflow("paging-hold")
def hold(path: str) -> str:
    """Holds the journal (and so the monitor) open without a worker until ``path`` exists."""
    deadline = time.monotonic() + 60
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    return "released"


@pytest.fixture
def readers(tmp_path, journal):
    """``[file reader, monitor client]`` of one journal: executions c, a, e, b, d (created in that order)
    and ``many`` (30 steps, 4 failed), read while an engine holds it."""
    for name in "caebd":
        zart.run(one, ord(name), execution_id=name, journal=journal)
    with pytest.raises(zart.StepFailed):
        zart.run(many, 30, execution_id="many", journal=journal)
    release = tmp_path / "release"
    holder = zart.start(hold, str(release), execution_id="holder", journal=journal)
    found = wait_until(lambda: endpoint_file.read(journal), what="the endpoint file")
    client = MonitorClient(found)
    wait_until(lambda: client.execution_record("holder"), what="the holder's run to begin")
    local = zart.journal(journal, live=False)
    try:
        yield [local, client]
    finally:
        client.close()
        release.touch()
        holder.result(timeout=60)


def test_executions_sort_by_any_key_across_every_row(readers):
    for reader in readers:
        # a page of two: the two smallest ids of all, not of the newest two
        assert [r.execution_id for r in reader.list_executions(sort="id", descending=False, limit=2)] == ["a", "b"]
        assert [r.execution_id for r in reader.list_executions(sort="id", limit=2)] == ["many", "holder"]
        assert [r.execution_id for r in reader.list_executions(limit=3)] == ["holder", "many", "d"]  # newest first
        by_total = reader.list_executions(sort="total", limit=1)
        assert by_total[0].execution_id == "many"
        by_status = [r.status.value for r in reader.list_executions(sort="status", descending=False)]
        assert by_status == sorted(by_status)
        workflows = [r.workflow for r in reader.list_executions(sort="workflow", descending=False)]
        assert workflows == sorted(workflows)
        for key in ("created", "done", "run", "started", "duration"):
            assert len(reader.list_executions(sort=key)) == 7


@pytest.mark.parametrize("sort", ["nope", "id; DROP TABLE executions", "e.execution_id"])
def test_an_unknown_sort_key_is_a_clear_error_on_both_paths(readers, sort):
    for reader in readers:
        with pytest.raises(zart.ConfigurationError, match="sort by one of created, id, workflow"):
            reader.list_executions(sort=sort)
    assert readers[0].execution_record("c") is not None  # nothing reached SQL


def test_steps_filter_by_status_and_find_a_key(readers):
    local, client = readers
    every = local.list_steps("many")
    assert len(every) == 30
    failed = [s.step_key for s in every if s.status is zart.StepStatus.FAILED]
    assert len(failed) >= 1
    for reader in readers:
        assert [s.step_key for s in reader.list_steps("many", status="failed")] == failed
        assert [s.step_key for s in reader.list_steps("many", status=zart.StepStatus.FAILED)] == failed
        assert reader.count_steps("many") == 30
        assert reader.count_steps("many", status="failed") == len(failed)
        # the next failed step after a key, and where a key is (the page to show it on)
        first = every[0].step_key
        assert [s.step_key for s in reader.list_steps("many", status="failed", after=first, limit=1)] == failed[:1]
        assert reader.step_index("many", every[12].step_key) == 12
        assert reader.step_index("many", failed[0], status="failed") == 0
        assert reader.step_index("many", every[0].step_key, status="failed") is None
        assert reader.step_index("many", "no-such-step") is None
        with pytest.raises(zart.ConfigurationError, match="no step status 'broken'"):
            reader.list_steps("many", status="broken")
    assert client.list_steps("many", status="failed") == local.list_steps("many", status="failed")


def test_keyset_pages_match_offset_pages(readers):
    local, client = readers
    keys = [s.step_key for s in local.list_steps("many")]
    for reader in readers:
        assert [s.step_key for s in reader.list_steps("many", after=keys[9], limit=5)] == keys[10:15]
        assert [s.step_key for s in reader.list_steps("many", before=keys[9], limit=5)] == keys[4:9]
        assert [s.step_key for s in reader.list_steps("many", before=keys[2], limit=5)] == keys[:2]
        assert [s.step_key for s in reader.list_steps("many", from_end=True, limit=7)] == keys[-7:]
        assert [s.step_key for s in reader.list_steps("many", after=keys[-1], limit=5)] == []
        assert [s.step_key for s in reader.list_steps("many", offset=25, limit=10)] == keys[25:]  # offset still
        # walking every page by key gives every step once, in order
        walked, after = [], None
        while page := reader.list_steps("many", after=after, limit=7):
            walked += [s.step_key for s in page]
            after = page[-1].step_key
        assert walked == keys
        with pytest.raises(zart.ConfigurationError, match="no step 'nope' in execution 'many'"):
            reader.list_steps("many", after="nope")
    assert client.list_steps("many", after=keys[3], limit=4) == local.list_steps("many", after=keys[3], limit=4)
