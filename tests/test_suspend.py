"""Suspension: a long sleep or event wait ends the run (``sleeping``/``waiting``), lets go of the journal,
and the process that suspended it continues it when due; the lease decides who may continue it."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from conftest import wait_until

import zart_nb as zart
from zart_nb._journal import suspension
from zart_nb._journal.suspension import SuspendedRow
from zart_nb._runtime import runtime
from zart_nb._status import ExecutionStatus, RunEnd
from zart_nb._suspend import LEASE_TIME, due_at, lease_time, lease_until, suspend_after


@pytest.fixture
def quick(monkeypatch):
    """Sleeps over 0.3 s suspend, and a wait suspends after 0.3 s."""
    monkeypatch.setenv("ZART_SUSPEND_AFTER", "0.3")


@zart.step("suspend-double")
def double(x: int) -> int:
    return 2 * x


@zart.workflow("suspend-sleeper")
def sleeper(n: int) -> list[int]:
    first = double(n)
    zart.sleep("nap", 1.5)
    return [first, double(first)]


@zart.workflow("suspend-waiter")
def waiter(n: int) -> dict:
    got = zart.wait_for_event("approve")
    return {"n": double(n), "got": got}


def _record(journal, execution_id):
    return zart.journal(journal, live=False).execution_record(execution_id)


def test_a_started_long_sleep_suspends_lets_go_of_the_journal_and_continues_when_due(journal, quick, inline):
    execution = zart.start(sleeper, 3, execution_id="nap", journal=journal, display=False)
    wait_until(lambda: execution.status is ExecutionStatus.SLEEPING, what="sleeping")
    assert execution.suspension is not None and execution.suspension[0] == "nap"
    assert not execution.done
    wait_until(lambda: not runtime.journal(journal).is_open, what="the journal let go")
    record = _record(journal, "nap")
    if record.status == "sleeping":  # (it may already have continued)
        runs = zart.journal(journal, live=False).list_runs("nap")
        assert runs[0].ended_by is RunEnd.SUSPENDED
    assert execution.result(timeout=30) == [6, 12]
    runs = zart.journal(journal, live=False).list_runs("nap")
    assert [r.ended_by for r in runs] == [RunEnd.SUSPENDED, RunEnd.COMPLETED]
    assert _record(journal, "nap").status == "completed"


def test_run_blocks_through_a_suspended_sleep_and_returns_the_output(journal, quick, inline):
    assert zart.run(sleeper, 5, execution_id="blocking", journal=journal, display=False) == [10, 20]
    runs = zart.journal(journal, live=False).list_runs("blocking")
    assert [r.ended_by for r in runs] == [RunEnd.SUSPENDED, RunEnd.COMPLETED]
    steps = {s.step_key: s.run_number for s in zart.journal(journal, live=False).list_steps("blocking")}
    assert steps["suspend-double#0"] == 1 and steps["suspend-double#1"] == 2  # the first was not run again


def test_a_waiting_execution_continues_at_once_when_its_event_is_sent(journal, quick, inline):
    execution = zart.start(waiter, 4, execution_id="w", journal=journal, display=False)
    wait_until(lambda: execution.status is ExecutionStatus.WAITING, what="waiting")
    wait_until(lambda: _record(journal, "w").status == "waiting", what="journaled waiting")
    assert zart.send_event("w", "approve", {"ok": True}, journal=journal) is True
    assert execution.result(timeout=30) == {"n": 8, "got": {"ok": True}}


def test_a_suspended_execution_is_cancelled_and_deleted_as_an_unfinished_one(journal, quick, inline):
    execution = zart.start(waiter, 1, execution_id="c", journal=journal, display=False)
    wait_until(lambda: execution.status is ExecutionStatus.WAITING, what="waiting")
    zart.cancel("c", journal=journal)
    assert execution.done and execution.status is ExecutionStatus.CANCELLED
    with pytest.raises(zart.Cancelled):
        execution.result(timeout=5)
    assert _record(journal, "c").status == "cancelled"
    zart.delete("c", journal=journal)
    assert _record(journal, "c") is None


def test_wake_ends_a_suspended_sleep_of_this_process_now(journal, monkeypatch, inline):
    monkeypatch.setenv("ZART_SUSPEND_AFTER", "1")

    @zart.workflow("suspend-long-nap")
    def long_nap(_: None) -> str:
        zart.sleep("long", 3600)
        return "awake"

    execution = zart.start(long_nap, None, execution_id="long", journal=journal, display=False)
    wait_until(lambda: execution.status is ExecutionStatus.SLEEPING, what="sleeping")
    wait_until(lambda: not runtime.journal(journal).is_open, what="the journal let go")
    assert zart.wake("long", journal=journal) is True
    assert execution.result(timeout=30) == "awake"


def test_the_threshold_is_read_from_the_environment(monkeypatch):
    monkeypatch.delenv("ZART_SUSPEND_AFTER", raising=False)
    assert suspend_after() == 60.0
    monkeypatch.setenv("ZART_SUSPEND_AFTER", "inf")
    assert suspend_after() == float("inf")
    monkeypatch.setenv("ZART_SUSPEND_AFTER", "soon")
    with pytest.raises(zart.ConfigurationError, match="ZART_SUSPEND_AFTER"):
        suspend_after()


def _row(status="sleeping", wake_at=100.0, owner=None, until=None, event=False):
    return SuspendedRow("x", ExecutionStatus(status), "n", wake_at, owner, until, event)


@pytest.mark.parametrize(("row", "due"), [
    (_row(), 100.0),  # no lease: its wake time
    (_row(owner="me"), 100.0),  # its own lease
    (_row(owner="other", until=130.0), 130.0),  # a live owner's lease: after it ends
    (_row(owner="dead", until=130.0), 100.0),  # a dead owner's lease is free
    (_row("waiting", None, owner="other"), None),  # a wait without timeout and no event: not foreseeable
    (_row("waiting", None, event=True), 50.0),  # its event is there: now
    (_row("waiting", None, owner="other", event=True), None),  # ... but a live owner continues it
    (_row("waiting", 200.0), 200.0),  # its timeout
])
def test_when_a_suspended_execution_is_due_for_this_process(row, due):
    assert due_at(row, "me", 50.0, alive=lambda owner: owner != "dead") == due


def test_the_lease_is_free_when_none_own_or_expired_or_its_owner_is_gone():
    assert suspension.lease_free(None, None, "me", 1.0, lambda o: True)
    assert suspension.lease_free("me", 9.0, "me", 1.0, lambda o: True)
    assert suspension.lease_free("other", 0.5, "me", 1.0, lambda o: True)
    assert not suspension.lease_free("other", 9.0, "me", 1.0, lambda o: True)
    assert not suspension.lease_free("other", None, "me", 1.0, lambda o: True)
    assert suspension.lease_free("other", None, "me", 1.0, lambda o: False)
    assert suspension.alive(suspension.owner())
    assert lease_until(100.0) == 100.0 + LEASE_TIME and LEASE_TIME > 0


def test_the_lease_time_comes_from_its_variable_and_bad_values_are_refused(monkeypatch):
    monkeypatch.setenv("ZART_LEASE_TIME", "6")
    assert lease_time() == 6.0 and lease_until(100.0) == 106.0
    for bad in ("0.5", "-1", "nan", "inf", "soon"):
        monkeypatch.setenv("ZART_LEASE_TIME", bad)
        with pytest.raises(zart.ConfigurationError, match="ZART_LEASE_TIME"):
            lease_time()


def test_a_lease_on_another_host_is_free_only_once_it_expired_and_one_here_once_its_pid_is_gone():
    other = "another-host.invalid:1"
    assert suspension.alive(other)  # its pid cannot be looked at from here: its expiry decides
    assert not suspension.lease_free(other, 130.0, "me", 129.0, suspension.alive)
    assert suspension.lease_free(other, 130.0, "me", 130.0, suspension.alive)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    here = f"{os.uname().nodename}:{gone.pid}"
    assert not suspension.alive(here)
    assert suspension.lease_free(here, time.time() + 3600, "me", time.time(), suspension.alive)


def test_the_widget_says_what_a_suspended_execution_waits_for_and_keeps_following_it(journal, monkeypatch, inline):
    from zart_nb._notebook.progress import Tracker
    from zart_nb._notebook.render import header_html

    monkeypatch.setenv("ZART_SUSPEND_AFTER", "1")

    @zart.workflow("suspend-widget-nap")
    def nap(_: None) -> str:
        zart.sleep("nap", 3600)
        return "awake"

    execution = zart.start(nap, None, execution_id="widget", journal=journal, display=False)
    wait_until(lambda: execution.status is ExecutionStatus.SLEEPING, what="sleeping")
    snap = Tracker(execution, "suspend-widget-nap").snapshot()
    assert not snap.done and snap.waits is not None and snap.waits.startswith("sleep 'nap' until ")
    assert "sleep &#x27;nap&#x27; until" in header_html(snap) and "sleeping" in header_html(snap)
    assert "waits for sleep 'nap'" in snap.summary()
    zart.cancel("widget", journal=journal)
    assert Tracker(execution, "suspend-widget-nap").snapshot().done


def test_resume_continues_an_execution_suspended_in_this_process_now(journal, quick, inline):
    execution = zart.start(waiter, 2, execution_id="r", journal=journal, display=False)
    wait_until(lambda: execution.status is ExecutionStatus.WAITING, what="waiting")
    runs = len(zart.journal(journal, live=False).list_runs("r"))
    assert zart.resume("r", journal=journal) is execution  # continued now, by this process
    wait_until(lambda: len(zart.journal(journal, live=False).list_runs("r")) > runs, what="a new run")
    zart.send_event("r", "approve", 1, journal=journal)
    assert execution.result(timeout=30) == {"n": 4, "got": 1}


def test_a_sleeping_execution_of_this_process_is_deleted_without_a_cancel_first(journal, quick, inline):
    execution = zart.start(waiter, 1, execution_id="d", journal=journal, display=False)
    wait_until(lambda: execution.status is ExecutionStatus.WAITING, what="waiting")
    zart.delete("d", journal=journal)
    assert execution.done and _record(journal, "d") is None


@zart.workflow("suspend-long-sleeper")
def long_sleeper(n: int) -> int:
    zart.sleep("long-nap", 3600)
    return double(n)


def test_a_deadline_that_passes_while_an_execution_sleeps_fails_it_then(journal, quick, inline):
    execution = zart.start(long_sleeper, 2, execution_id="late", journal=journal, display=False, deadline=2.0)
    wait_until(lambda: execution.status is ExecutionStatus.SLEEPING, what="sleeping")
    with pytest.raises(zart.DeadlineExceeded):
        execution.result(timeout=30)  # not an hour: the deadline is when it is due
    record = _record(journal, "late")
    assert record.status == "failed" and "deadline" in (record.error or "").lower()
    assert zart.journal(journal, live=False).list_steps("late")[-1].step_key != "suspend-double#0"  # never ran
