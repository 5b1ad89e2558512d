"""zart.publish / published / stream and zart.send_event / wait_for_event: in this process, through a
driver's monitor endpoint, and through the file after the driver was killed mid-wait."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import wait_until

import zart_nb as zart
from zart_nb._messages import pending_events
from zart_nb._monitor.client import MonitorClient


@zart.step("messages-gate")
def gate(marker: str) -> str:
    if os.path.exists(marker):
        raise RuntimeError("the gate is closed")
    return "open"


def test_published_values_are_journaled_once_and_read_in_order(journal, tmp_path, inline):
    marker = tmp_path / "closed"
    marker.touch()

    @zart.workflow("publishing")
    def flow(marker: str) -> str:
        zart.publish("progress", {"done": 1})
        zart.publish("progress", {"done": 2})
        zart.publish("url", "https://example.test/approve/1")
        return gate(marker)

    with pytest.raises(zart.ExecutionNotFound, match="missing"):  # not `default`: the id is wrong
        zart.published("missing", "progress", journal=journal, default="none", timeout=5)
    with pytest.raises(zart.ExecutionNotFound, match="missing"):  # raised by the call, before iterating
        zart.stream("missing", "progress", journal=journal)
    with pytest.raises(zart.StepFailed):
        zart.run(flow, str(marker), execution_id="pub", journal=journal)
    marker.unlink()
    assert zart.run(flow, str(marker), execution_id="pub", journal=journal) == "open"
    assert zart.published("pub", "progress", journal=journal) == {"done": 2}
    assert zart.published("pub", "url", journal=journal) == "https://example.test/approve/1"
    assert zart.published("pub", "other", journal=journal, default=0) == 0
    assert list(zart.stream("pub", "progress", journal=journal)) == [{"done": 1}, {"done": 2}]  # not twice
    runs = {s.step_key: s.run_number for s in zart.journal(journal, live=False).list_steps("pub")}
    assert runs["publish:progress#1"] == 1 and runs["messages-gate#0"] == 2


@pytest.mark.parametrize(("value", "message"), [
    ({1, 2}, "JSON value"), (float("nan"), "JSON value"), ("x" * (zart.MAX_JSON_BYTES + 1), "limit is 65,536")])
def test_what_is_not_a_small_json_value_is_refused(journal, inline, value, message):
    @zart.workflow("bad-publish")
    def flow(_: None) -> None:
        zart.publish("k", value)

    with pytest.raises(zart.SerializationError, match=message):
        zart.run(flow, None, execution_id="bad", journal=journal)
    with pytest.raises(zart.SerializationError, match=message):
        zart.send_event("bad", "e", value, journal=journal)


def test_events_queue_in_order_are_kept_when_early_and_consumed_once(journal, inline):
    @zart.workflow("listening")
    def flow(_: None) -> list[object]:
        zart.publish("ready", True)
        first = zart.wait_for_event("go")
        return [first, zart.wait_for_event("go"), zart.wait_for_event("late")]

    execution = zart.start(flow, None, execution_id="ev", journal=journal, display=False)
    assert zart.published("ev", "ready", timeout=30, journal=journal) is True
    assert zart.send_event("ev", "late", "kept", journal=journal)  # before its wait: kept
    assert zart.send_event("ev", "go", 1, journal=journal, idempotency_key="a")
    assert not zart.send_event("ev", "go", 1, journal=journal, idempotency_key="a")  # delivered already
    assert zart.send_event("ev", "go", {"n": 2}, journal=journal)
    assert execution.result(timeout=60) == [1, {"n": 2}, "kept"]
    assert pending_events("ev", journal=journal) == []
    with pytest.raises(zart.StateConflict, match="completed"):
        zart.send_event("ev", "go", 3, journal=journal)
    # A sender's retry of a delivered key is answered as the first time was, whatever the execution did since
    assert zart.send_event("ev", "go", 1, journal=journal, idempotency_key="a") is False
    with pytest.raises(zart.ExecutionNotFound):
        zart.send_event("nobody", "go", 3, journal=journal)


def test_an_event_timeout_is_raised_in_the_body_and_again_on_replay(journal, tmp_path, inline):
    marker = tmp_path / "closed"
    marker.touch()

    @zart.workflow("impatient")
    def flow(marker: str) -> str:
        try:
            zart.wait_for_event("approve", timeout=0.2)
            answer = "approved"
        except zart.EventTimeout as exc:
            assert isinstance(exc, TimeoutError)
            answer = "timed out"
        return f"{answer}, {gate(marker)}"

    with pytest.raises(zart.StepFailed):
        zart.run(flow, str(marker), execution_id="late", journal=journal)
    assert zart.send_event("late", "approve", "too late", journal=journal)  # kept, but the wait is over
    marker.unlink()
    assert zart.run(flow, str(marker), execution_id="late", journal=journal) == "timed out, open"
    assert [event.payload for event in pending_events("late", journal=journal)] == ['"too late"']


_DRIVER = """
    import sys
    import zart_nb as zart

    @zart.workflow("approval")
    def approval(order):
        zart.publish("link", f"https://example.test/approve/{{order}}")
        decision = zart.wait_for_event("decision")
        return {{"order": order, "decision": decision}}

    result = zart.run(approval, 7, execution_id="order-7", journal={journal!r}, workers=1)
    print("RESULT", __import__("json").dumps(result))
"""


def _driver(tmp_path: Path, journal: Path) -> Path:
    script = tmp_path / "driver.py"
    script.write_text(textwrap.dedent(_DRIVER.format(journal=str(journal))))
    return script


def _published_live(journal: Path) -> object:
    client = MonitorClient.connect(journal)
    if client is None:
        return None
    with client:
        found = client.published("order-7", "link")
        return json.loads(found[-1][1]) if found else None


def test_another_process_reads_and_sends_through_the_driver_s_endpoint(tmp_path):
    journal = tmp_path / "j.duckdb"
    driver = subprocess.Popen([sys.executable, str(_driver(tmp_path, journal))], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        link = wait_until(lambda: _published_live(journal), timeout=60, what="the driver to publish its link")
        assert link == "https://example.test/approve/7"
        assert zart.published("order-7", "link", journal=journal) == link  # the same, through the endpoint
        assert zart.send_event("order-7", "decision", {"approved": True}, journal=journal)
        out, err = driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.communicate()
    assert driver.returncode == 0, err
    assert json.loads(out.split("RESULT", 1)[1]) == {"order": 7, "decision": {"approved": True}}


def test_a_driver_killed_mid_wait_gets_an_event_sent_to_the_file_when_resumed(tmp_path):
    journal = tmp_path / "j.duckdb"
    script = _driver(tmp_path, journal)
    first = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             cwd=tmp_path)
    try:
        wait_until(lambda: _published_live(journal), timeout=60, what="the driver to wait for its event")
        first.send_signal(signal.SIGKILL)
        assert first.wait(timeout=30) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    # Nobody holds the journal: the event goes into the file, through the `zart event` command
    sent = subprocess.run([sys.executable, "-m", "zart_nb", "event", "order-7", "decision", "--data",
                           '{"approved": false}', "--journal", str(journal)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert sent.returncode == 0, sent.stderr
    assert "sent" in sent.stdout
    assert [e.name for e in pending_events("order-7", journal=journal)] == ["decision"]
    from zart_nb._runtime import runtime
    runtime.journal(journal).close()
    second = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout.split("RESULT", 1)[1]) == {"order": 7, "decision": {"approved": False}}
    assert pending_events("order-7", journal=journal) == []


def test_zart_show_lists_the_events_not_consumed_yet(journal, inline):
    @zart.workflow("waits-once")
    def flow(_: None) -> object:
        return zart.wait_for_event("approve", timeout=0.05)

    with pytest.raises(zart.EventTimeout):
        zart.run(flow, None, execution_id="show-ev", journal=journal)
    assert zart.send_event("show-ev", "approve", {"by": "ops"}, journal=journal)
    from zart_nb._runtime import runtime
    runtime.journal(journal).close()
    shown = subprocess.run([sys.executable, "-m", "zart_nb", "show", "show-ev", "--journal", str(journal)],
                           capture_output=True, text=True, timeout=120)
    assert "Events sent, not consumed yet (1" in shown.stdout, shown.stderr
    assert '{"by":"ops"}' in shown.stdout
    as_json = subprocess.run([sys.executable, "-m", "zart_nb", "show", "show-ev", "--json", "--journal", str(journal)],
                             capture_output=True, text=True, timeout=120)
    events = json.loads(as_json.stdout)["pending_events"]
    assert [(e["name"], e["payload"]) for e in events] == [("approve", '{"by":"ops"}')]


def test_deleting_an_execution_deletes_its_events(journal, inline):
    @zart.workflow("waits-not")
    def flow(_: None) -> object:
        return zart.wait_for_event("go", timeout=0)

    with pytest.raises(zart.EventTimeout):
        zart.run(flow, None, execution_id="gone", journal=journal)
    assert zart.send_event("gone", "other", 1, journal=journal)
    zart.delete("gone", journal=journal)
    from zart_nb._journal import inbox
    from zart_nb._runtime import runtime
    assert runtime.journal(journal).query(inbox.pending_events, "gone") == []
    with pytest.raises(zart.ExecutionNotFound):
        zart.send_event("gone", "other", 1, journal=journal)
