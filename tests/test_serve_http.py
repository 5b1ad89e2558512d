"""`zart serve --http`: a real HTTP client (httpx) against a real `zart serve` process."""
from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import httpx
import processes
import pytest
import serve_lib
from conftest import wait_until

import zart_nb as zart
from zart_nb._runtime import runtime


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(tmp_path):
    journal = tmp_path / ".zart" / "journal.duckdb"
    zart.run(serve_lib.ticker, 0, execution_id="first", journal=journal, display=False)  # journals the workflow
    waiting = zart.start(serve_lib.approval, None, execution_id="approval-journaled", journal=journal,
                         display=False)  # journals the approval workflow, which POST /executions then starts
    wait_until(lambda: waiting.run_number is not None, what="its run to be journaled")  # then it takes events
    zart.send_event("approval-journaled", "approve", True, journal=journal)
    assert waiting.result(timeout=60) == {"approved": True}
    (tmp_path / "open").touch()
    zart.run(serve_lib.gated, {"gate": str(tmp_path / "open")}, execution_id="gated-first", journal=journal,
             display=False)
    runtime.journal(journal).close()
    port = _free_port()
    log = tmp_path / "serve.log"
    proc = processes.serve(journal, tmp_path, log, "--http", f":{port}")
    token_file = journal.with_name("journal.duckdb.token")
    try:
        wait_until(lambda: "HTTP API on" in log.read_text(), timeout=60, what="the HTTP API to listen")
        token = token_file.read_text().strip()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"},
                          timeout=30) as client:
            yield client, journal, tmp_path, log
    finally:
        code = processes.stop(proc)
    assert code == 0, log.read_text()


def test_no_token_no_access_and_the_token_file_is_owner_only(served):
    client, journal, _, log = served
    assert f"HTTP API on http://127.0.0.1:{client.base_url.port}" in log.read_text()  # localhost unless told
    token_file = journal.with_name("journal.duckdb.token")
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    for path in ("/executions", "/openapi.json", "/executions/first"):
        bare = httpx.get(f"{client.base_url}{path}")
        assert bare.status_code == 401 and bare.headers["www-authenticate"] == "Bearer"
        wrong = httpx.get(f"{client.base_url}{path}", headers={"Authorization": "Bearer not-the-token-at-all"})
        assert wrong.status_code == 401
    assert client.get("/executions").status_code == 200


def test_openapi_lists_and_detail(served):
    client, journal, _, _ = served
    document = client.get("/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert {"/executions", "/executions/{execution_id}", "/executions/{execution_id}/cancel",
            "/executions/{execution_id}/events/{name}"} <= set(document["paths"])
    listed = client.get("/executions", params={"status": "completed"}).json()
    assert listed["journal"] == str(journal.resolve())
    assert {e["execution_id"] for e in listed["executions"]} == {"first", "gated-first", "approval-journaled"}
    detail = client.get("/executions/first").json()
    assert detail["status"] == "completed" and detail["output_preview"] == "{'data': 0}"
    assert [s["step_key"] for s in detail["steps"]] == ["stamp#0"]
    assert [r["run_number"] for r in detail["runs"]] == [1]
    missing = client.get("/executions/nope")
    assert missing.status_code == 404 and missing.json()["type"] == "ExecutionNotFound"
    assert client.get("/executions", params={"limit": "x"}).status_code == 400
    assert client.get("/workflows").json() == {"workflows": ["approval", "gated", "ticker"]}
    assert client.get("/schedules").json() == {"schedules": []}


def test_start_a_journaled_workflow_by_name_with_json_data_then_cancel_one(served):
    client, journal, tmp_path, _ = served
    started = client.post("/executions", json={"workflow": "ticker", "data": {"a": [1, 2]}, "execution_id": "web-1"})
    assert started.status_code == 201, started.text
    assert started.json()["execution_id"] == "web-1"
    done = wait_until(lambda: (r := client.get("/executions/web-1").json())["status"] == "completed" and r,
                      what="the execution started over HTTP to complete")
    assert done["output_preview"] == "{'data': {'a': [1, 2]}}"
    assert done["input_preview"] == "{'a': [1, 2]}"
    again = client.post("/executions", json={"workflow": "ticker", "data": 5, "execution_id": "web-1"})
    assert again.status_code == 409 and "exists already" in again.json()["error"]  # a retry starts nothing

    gate = tmp_path / "never"
    started = client.post("/executions", json={"workflow": "gated", "data": {"gate": str(gate)}})
    assert started.status_code == 201, started.text
    execution_id = started.json()["execution_id"]
    assert execution_id.startswith("gated-")
    cancelled = client.post(f"/executions/{execution_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["was"] == "running"
    wait_until(lambda: client.get(f"/executions/{execution_id}").json()["status"] == "cancelled",
               what="the cancel to stop it")

    assert client.post("/executions", json={"workflow": "nope"}).status_code == 404
    assert client.post("/executions", content=b"{not json").status_code == 400
    assert client.post("/executions", json=["ticker"]).status_code == 400
    assert client.post("/executions/nope/cancel").status_code == 404


def test_an_event_sent_over_http_reaches_the_waiting_body_once(served):
    client, *_ = served
    started = client.post("/executions", json={"workflow": "approval", "execution_id": "approve-1"})
    assert started.status_code == 201, started.text
    wait_until(lambda: client.get("/executions/approve-1").json()["status"] == "running",
               what="the approval run to start")
    sent = client.post("/executions/approve-1/events/approve", json={"by": "ops"},
                       headers={"Idempotency-Key": "webhook-1"})
    assert sent.status_code == 200, sent.text
    assert sent.json() == {"execution_id": "approve-1", "event": "approve", "delivered": True}
    again = client.post("/executions/approve-1/events/approve", json={"by": "ops"},
                        headers={"Idempotency-Key": "webhook-1"})
    assert again.status_code == 200 and again.json()["delivered"] is False  # that key was delivered already
    wait_until(lambda: client.get("/executions/approve-1").json()["status"] == "completed",
               what="the body to take the event and finish")
    assert "'approved': {'by': 'ops'}" in client.get("/executions/approve-1").json()["output_preview"]
    finished = client.post("/executions/first/events/approve", json={"ok": True})
    assert finished.status_code == 409, finished.text  # a completed execution takes no event
    assert client.post("/executions/nope/events/approve", json={}).status_code == 404


def test_a_bad_address_or_a_token_file_others_may_read_is_refused(tmp_path):
    from zart_nb._serve.http import ensure_token, parse_address

    assert parse_address(":8750") == ("127.0.0.1", 8750)
    assert parse_address("0.0.0.0:80") == ("0.0.0.0", 80)
    with pytest.raises(zart.ConfigurationError, match="HOST:PORT"):
        parse_address("localhost:http")
    journal = tmp_path / "j.duckdb"
    token = ensure_token(journal)
    assert ensure_token(journal) == token and len(token) >= 32
    Path(f"{journal}.token").chmod(0o644)
    with pytest.raises(zart.ConfigurationError, match="chmod 600"):
        ensure_token(journal)
