"""The monitor endpoint served by an engine in this process: reads, events, control, and its security."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, answer_challenge

import pytest
from conftest import wait_until
from steps_lib import flaky, quick, wait_for_file

import zart_nb as zart
from zart_nb._journal import journal as journal_module
from zart_nb._monitor import endpoint as endpoint_file
from zart_nb._monitor.client import MonitorClient
from zart_nb._monitor.protocol import (
    MAX_REQUEST_BYTES,
    MessageType,
    ProtocolError,
    Request,
    Response,
    record_from_json,
    record_to_json,
)


@zart.workflow("hold-open")
def hold_open(path: str) -> str:
    """Holds the journal without a worker (a step blocking a worker would hold up tasks queued to it)."""
    deadline = time.monotonic() + 60
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    return "released"


@zart.workflow("hold-with-step")
def hold_with_step(path: str) -> str:
    return wait_for_file(path)


@zart.workflow("flaky-flow")
def flaky_flow(data: dict) -> list[int]:
    return zart.wait([zart.schedule(flaky, x, data["marker"]) for x in data["xs"]])


@zart.workflow("step-then-hold")
def step_then_hold(path: str) -> int:
    """One step, then the body holds the run open (the run's end would fold its steps) until ``path``."""
    value = quick(1)
    deadline = time.monotonic() + 60
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    return value


@pytest.fixture
def served(tmp_path, journal):
    """An engine in this process holding ``journal`` (a step waits for ``release``): its endpoint."""
    release = tmp_path / "release"
    holder = zart.start(hold_open, str(release), execution_id="holder", journal=journal)
    found = wait_until(lambda: endpoint_file.read(journal), what="the endpoint file")
    with MonitorClient(found) as client:
        wait_until(lambda: client.execution_record("holder"), what="the holder's run to begin")
    yield found
    release.touch()
    holder.result(timeout=60)


def test_endpoint_file_and_socket_are_owner_only_and_removed_on_release(tmp_path, journal):
    release = tmp_path / "release"
    holder = zart.start(hold_open, str(release), execution_id="holder", journal=journal)
    found = wait_until(lambda: endpoint_file.read(journal), what="the endpoint file")
    assert found.pid == os.getpid() and found.is_live()
    assert stat.S_IMODE(endpoint_file.endpoint_path(journal).stat().st_mode) == 0o600
    assert stat.S_IMODE(os.stat(found.address).st_mode) & 0o077 == 0
    assert stat.S_IMODE(os.stat(os.path.dirname(found.address)).st_mode) == 0o700
    release.touch()
    assert holder.result(timeout=60) == "released"
    zart.journal(journal, live=False).close()  # release now rather than after the grace
    wait_until(lambda: not endpoint_file.endpoint_path(journal).exists(), what="the endpoint file removed")
    assert not os.path.exists(found.address)


def test_client_reads_the_same_records_as_the_file(tmp_path, journal, served):
    marker = tmp_path / "marker"
    marker.touch()
    with pytest.raises(zart.StepFailed):
        zart.run(flaky_flow, {"xs": [1, 3], "marker": str(marker)}, execution_id="flaky", journal=journal)
    local = zart.journal(journal, live=False)
    client = MonitorClient(served)
    try:
        # The monitor reads folded rows on a cursor of its own: the steps appear within a fold interval.
        wait_until(lambda: len(client.list_steps("flaky")) == 2, what="the steps folded")
        executions = {r.execution_id: r for r in client.list_executions()}
        assert executions["flaky"].status is zart.ExecutionStatus.FAILED
        assert executions["holder"].status is zart.ExecutionStatus.RUNNING
        assert [r.execution_id for r in client.list_executions("failed")] == ["flaky"]
        assert [r.execution_id for r in client.list_executions(search="HOLD")] == ["holder"]
        assert client.stats() == {zart.ExecutionStatus.FAILED: 1, zart.ExecutionStatus.RUNNING: 1}
        steps = client.list_steps("flaky")
        assert [(s.step_key, s.status) for s in steps] == [("flaky#0", zart.StepStatus.COMPLETED),
                                                           ("flaky#1", zart.StepStatus.FAILED)]
        assert "marker present" in steps[1].traceback
        assert client.list_steps("flaky", offset=1, limit=1)[0].step_key == "flaky#1"
        assert client.list_steps("flaky") == local.list_steps("flaky")
        assert client.execution_record("flaky") == local.execution_record("flaky")
        assert client.list_runs("flaky") == local.list_runs("flaky")
        assert client.list_attempts("flaky") == local.list_attempts("flaky")
        assert {d.name for d in client.list_definitions()} >= {"flaky", "flaky-flow"}
        assert client.execution_record("nope") is None

        marker.unlink()  # the step succeeds from now on: retry it through the engine
        client.retry("flaky", "flaky#1")
        wait_until(lambda: client.execution_record("flaky").status is zart.ExecutionStatus.COMPLETED,
                   what="the retried execution to complete")
        assert [r.run_number for r in client.list_runs("flaky")] == [1, 2]
        with pytest.raises(zart.DefinitionError, match="running"):
            client.delete("holder")
        client.delete("flaky")
        assert client.execution_record("flaky") is None
        with pytest.raises(zart.ExecutionNotFound):
            client.cancel("nope")
    finally:
        client.close()


def test_subscribe_streams_coalesced_events_and_cancel_stops_the_execution(tmp_path, journal, served):
    client = MonitorClient(served)
    seen: list[zart.Event] = []
    subscription = client.subscribe(lambda events, resync: seen.extend(events))
    try:
        gate = tmp_path / "gate"
        execution = zart.start(hold_with_step, str(gate), execution_id="second", journal=journal)
        wait_until(lambda: any(e.execution_id == "second" and e.step_key == "wait-for-file#0" for e in seen),
                   what="the scheduled step's event")
        assert client.cancel("second") is zart.ExecutionStatus.RUNNING  # answered once requested
        wait_until(lambda: execution.status is zart.ExecutionStatus.CANCELLED, what="the execution cancelled")
        wait_until(lambda: any(isinstance(e, zart.ExecutionEvent) and e.execution_id == "second"
                               and e.status is zart.ExecutionStatus.CANCELLED for e in seen),
                   what="the cancelled event")
        assert client.execution_record("second").status is zart.ExecutionStatus.CANCELLED
    finally:
        subscription.close()
        client.close()


@pytest.fixture
def slow_fold(monkeypatch):
    """The writer thread folds recorded steps into DuckDB within FOLD_INTERVAL (50 ms). Stretched to a
    minute (before the journal opens), a read that did not fold first misses a step every time rather
    than now and then."""
    monkeypatch.setattr(journal_module, "FOLD_INTERVAL", 60.0)


def test_a_read_has_the_step_an_event_just_reported_finished(slow_fold, tmp_path, journal, served):
    client = MonitorClient(served)
    finished: list[zart.StepEvent] = []
    subscription = client.subscribe(lambda events, resync: finished.extend(
        e for e in events if isinstance(e, zart.StepEvent) and e.execution_id == "one-step"
        and e.status is zart.StepStatus.COMPLETED))
    gate = tmp_path / "gate"
    try:
        execution = zart.start(step_then_hold, str(gate), execution_id="one-step", journal=journal)
        wait_until(lambda: finished, what="the step's completed event")
        steps = client.list_steps("one-step")
        assert [(s.step_key, s.status, s.output_preview) for s in steps] == \
            [("quick#0", zart.StepStatus.COMPLETED, "2")]
        assert client.execution_record("one-step").status is zart.ExecutionStatus.RUNNING  # not the run's end
    finally:
        gate.touch()
        subscription.close()
        client.close()
    assert execution.result(timeout=60) == 2


def test_a_wrong_key_is_refused(served):
    conn = Client(served.address, family="AF_UNIX")
    try:
        with pytest.raises(AuthenticationError):  # what Client(authkey=...) does, closing the socket after
            answer_challenge(conn, b"not the key")
    finally:
        conn.close()
    wrong = endpoint_file.Endpoint(served.address, served.pid, served.started, "00" * 32, served.journal)
    with pytest.raises(zart.MonitorError, match="refused the key"):
        MonitorClient(wrong)
    with MonitorClient(served) as client:  # and the server still serves
        assert client.request(MessageType.PING)["pid"] == os.getpid()


def test_malformed_and_huge_messages_get_error_replies(served):
    conn = Client(served.address, family="AF_UNIX", authkey=served.authkey)
    try:
        for bad in (b"\xff\xfe not json", b"[1, 2]", b'{"id": 1, "type": "drop_tables"}',
                    b'{"id": 2, "type": "list_steps", "args": {}}',
                    b'{"id": 3, "type": "list_executions", "args": {"limit": "ten"}}'):
            conn.send_bytes(bad)
            reply = Response.from_json(conn.recv_bytes())
            assert reply.ok is False and reply.error_type == "ProtocolError", bad
        try:  # the server answers after the length header and closes: the rest may not be sent
            conn.send_bytes(b"x" * (MAX_REQUEST_BYTES + 1))
        except BrokenPipeError:
            pass
        reply = Response.from_json(conn.recv_bytes())
        assert reply.ok is False and "longer than" in reply.error
    finally:
        conn.close()
    with MonitorClient(served) as client:  # the engine keeps serving
        assert client.execution_record("holder").status is zart.ExecutionStatus.RUNNING


def _plant_endpoint(journal, value: dict) -> None:
    """An endpoint file as an engine writes it (owner-only), with ``value`` in it."""
    path = endpoint_file.endpoint_path(journal)
    path.write_text(json.dumps(value))
    path.chmod(0o600)


def test_stale_endpoint_files_are_ignored_and_removed(tmp_path):
    journal = tmp_path / "j.duckdb"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    _plant_endpoint(journal, {"address": "/nonexistent", "pid": int(dead.stdout), "started": None, "key": "00",
                              "journal": ""})
    assert endpoint_file.find_live(journal) is None
    assert not endpoint_file.endpoint_path(journal).exists()
    # A live pid whose start time differs: the pid was reused by another program.
    _plant_endpoint(journal, {"address": "/nonexistent", "pid": os.getppid(), "started": "1", "key": "00",
                              "journal": ""})
    assert endpoint_file.find_live(journal) is None
    assert MonitorClient.connect(journal) is None


def test_protocol_round_trips_records_and_refuses_bad_ones(journal):
    zart.run(flaky_flow, {"xs": [1], "marker": "/nonexistent"}, execution_id="ok", journal=journal)
    reader = zart.journal(journal, live=False)
    for record in [reader.execution_record("ok"), *reader.list_steps("ok"), *reader.list_runs("ok")]:
        wire = json.loads(json.dumps(record_to_json(record)))
        assert record_from_json(type(record), wire) == record
    with pytest.raises(ProtocolError):
        record_from_json(type(reader.execution_record("ok")), {"execution_id": "x"})
    with pytest.raises(ProtocolError):
        Request.from_json(b'{"id": true, "type": "ping"}')


@zart.workflow("quick-fan")
def quick_fan(n: int) -> list[int]:
    return zart.wait([zart.schedule(quick, x) for x in range(n)])


def test_a_step_whose_end_was_published_is_not_listed_in_flight(journal):
    """A subscriber gets the steps in flight as the engine lists them just after it subscribed: a step
    whose end was published before must not be listed, or the subscriber shows it in flight for good
    (zart-tui showed a phantom 'not journaled yet' row when it connected as a step ended). The engine
    listed it until the step left its books, just after the event."""
    from zart_nb._events import events
    from zart_nb._handles import run_of
    from zart_nb._runtime import runtime

    ended: list[str] = []
    listed_after_end: list[str] = []

    def on_event(event: zart.Event) -> None:  # on the engine's thread, as the event is published
        if isinstance(event, zart.StepEvent) and event.status is zart.StepStatus.COMPLETED:
            ended.append(event.step_key)
            for execution in runtime.live_executions():
                run = run_of(execution)
                listed = [] if run is None else [key for key, *_ in run.in_flight()]
                listed_after_end.extend(key for key in listed if key == event.step_key)

    unsubscribe = events.subscribe(on_event)
    try:
        assert zart.run(quick_fan, 12, execution_id="fan", journal=journal, workers=2, display=False) == \
            [x + 1 for x in range(12)]
    finally:
        unsubscribe()
    assert len(ended) == 12
    assert listed_after_end == []


def test_the_steps_in_flight_when_a_client_subscribed_come_before_what_happened_since():
    """The list of steps in flight a subscriber starts from is older than every event offered since it
    subscribed: an execution that ended meanwhile must come after its steps in flight (a client clears
    them at the end; the other way round it kept one in flight for good)."""
    from zart_nb._monitor.server import _Subscription

    subscription = _Subscription("/j.duckdb", ["e"])
    subscription.offer(zart.StepEvent("e", "b", zart.StepStatus.COMPLETED, "b", 1))
    subscription.offer(zart.ExecutionEvent("e", zart.ExecutionStatus.COMPLETED, "flow", 1, "/j.duckdb"))
    subscription.seed([zart.StepEvent("e", "a", zart.StepStatus.RUNNING, "a", 1),
                       zart.StepEvent("e", "b", zart.StepStatus.RUNNING, "b", 1)])
    batch = subscription.take(0)
    assert batch is not None
    assert [(event.get("step_key"), event["status"]) for event in batch.events] == \
        [("a", "running"), ("b", "completed"), (None, "completed")]


def test_a_step_is_announced_scheduled_before_it_can_end(journal):
    """A step's "scheduled" event goes out before the step is sent to a worker: published after, it could
    come after the step's end (a worker and the driver's result thread are faster than the body's thread
    when it is descheduled), and a subscriber would then hold an ended step as scheduled for good. Here the
    subscriber holds the body's thread on each "scheduled" event for a while, long enough for a quick step
    sent before it to end."""
    from zart_nb._events import events

    order: list[tuple[str, str]] = []
    zart.run(quick_fan, 1, execution_id="warm", journal=journal, workers=2, display=False)  # workers up

    def on_event(event: zart.Event) -> None:
        if isinstance(event, zart.StepEvent) and event.execution_id == "fan":
            if event.status is zart.StepStatus.SCHEDULED:  # as if the body's thread were descheduled
                time.sleep(0.2)  # before this event reached its subscribers (widens a window only)
            order.append((event.step_key, event.status.value))

    unsubscribe = events.subscribe(on_event)
    try:
        zart.run(quick_fan, 3, execution_id="fan", journal=journal, workers=2, display=False)
    finally:
        unsubscribe()
    for key in {key for key, _ in order}:
        assert [status for k, status in order if k == key] == ["scheduled", "completed"], order
