"""zart.stream beside a real engine process: 50 published values, each arriving once and in order, over one
monitor connection and one subscription (not a connection per look); then, the engine gone, from the file.
Also what the engine's monitor refuses (a payload that is not JSON) and what an unknown id is, live."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import wait_until

import zart_nb as zart
from zart_nb._monitor import client as client_module
from zart_nb._monitor.client import MonitorClient

_DRIVER = """
import json
import zart_nb as zart

@zart.step("stream-echo")
def echo(i):
    return i

@zart.workflow("ticker")
def ticker(n):
    for i in range(n):
        zart.publish("tick", echo(i))  # a step between two values: they come over time
        if i == n // 2 - 1:
            zart.wait_for_event("more", timeout=120)  # the test starts streaming here
    return n

out = zart.run(ticker, 50, execution_id="ticker", journal={journal!r}, workers=1, display=False)
print("RESULT", json.dumps(out))
"""


def _published_live(journal: Path, key: str) -> list[int]:
    client = MonitorClient.connect(journal)
    if client is None:
        return []
    with client:
        return [json.loads(text) for _, text in client.published("ticker", key)]


def test_a_stream_follows_an_engine_s_values_over_one_connection_then_reads_the_file(tmp_path, monkeypatch):
    journal = tmp_path / "j.duckdb"
    script = tmp_path / "driver.py"
    script.write_text(textwrap.dedent(_DRIVER.format(journal=str(journal))))
    driver = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=tmp_path)
    try:
        wait_until(lambda: len(_published_live(journal, "tick")) == 25, timeout=90,
                   what="the driver to publish 25 values and wait")
        with MonitorClient.connect(journal) as client:  # the engine's monitor checks a payload it is sent
            with pytest.raises(zart.SerializationError, match="the payload of event 'more' is not JSON"):
                client.send_event("ticker", "more", "{approved: true}")
        with pytest.raises(zart.ExecutionNotFound, match="nope"):
            zart.published("nope", "tick", journal=journal, timeout=5)
        with pytest.raises(zart.ExecutionNotFound, match="nope"):
            zart.stream("nope", "tick", journal=journal)

        connections: list[str] = []
        real_connect = client_module._connect
        monkeypatch.setattr(client_module, "_connect",
                            lambda endpoint: connections.append(endpoint.journal) or real_connect(endpoint))
        values = zart.stream("ticker", "tick", journal=journal)
        first = [next(values) for _ in range(25)]
        assert first == list(range(25))
        more = subprocess.run([sys.executable, "-m", "zart_nb", "event", "ticker", "more", "--journal", str(journal)],
                              capture_output=True, text=True, timeout=120)  # another process: not counted here
        assert more.returncode == 0, more.stderr
        rest = list(values)  # followed live while the engine publishes them, until the execution ends
        assert first + rest == list(range(50))  # every one, in order, once
        assert len(connections) == 2  # one for requests, one for the subscription, whatever the stream's length
        monkeypatch.undo()
        out, err = driver.communicate(timeout=90)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.communicate()
    assert driver.returncode == 0, err
    assert json.loads(out.split("RESULT", 1)[1]) == 50
    assert MonitorClient.connect(journal) is None  # nobody holds the journal now: the file is read
    assert list(zart.stream("ticker", "tick", journal=journal)) == list(range(50))
    assert zart.published("ticker", "tick", journal=journal) == 49
