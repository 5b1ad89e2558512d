"""The one JSON codec of event payloads and published values (``_monitor.jsonvalue``), and the surfaces that
take JSON text from a user: ``zart.send_event(payload_json=)`` and ``zart event --data``."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

import zart_nb as zart
from zart_nb._monitor import jsonvalue


def test_encode_is_compact_and_refuses_what_is_not_a_small_json_value():
    assert jsonvalue.encode({"a": [1, 2.5, None, True], "é": "ü"}, "x") == '{"a":[1,2.5,null,true],"é":"ü"}'
    for bad in ({1, 2}, float("inf"), object()):
        with pytest.raises(zart.SerializationError, match="the thing must be a JSON value"):
            jsonvalue.encode(bad, "the thing")
    with pytest.raises(zart.SerializationError, match="the thing is 65,539 bytes as JSON; the limit is 65,536"):
        jsonvalue.encode("x" * (zart.MAX_JSON_BYTES + 1), "the thing")
    assert len(jsonvalue.encode("x" * (zart.MAX_JSON_BYTES - 2), "x").encode()) == zart.MAX_JSON_BYTES


def test_parse_checks_text_as_encode_checks_values_and_decode_reads_it_back():
    assert jsonvalue.parse(' { "approved" : true } ', "p") == '{"approved":true}'
    assert jsonvalue.decode(jsonvalue.parse("[1, null]", "p")) == [1, None]
    for bad, why in (("{ok: true}", "is not JSON"), ("", "is not JSON"), ("NaN", "NaN is not a JSON value"),
                     ('"' + "x" * zart.MAX_JSON_BYTES + '"', "the limit is 65,536"),
                     (" " * (5 * zart.MAX_JSON_BYTES) + "1", "the limit is 65,536")):
        with pytest.raises(zart.SerializationError, match=f"the payload .*{why}"):
            jsonvalue.parse(bad, "the payload")
    with pytest.raises(zart.SerializationError, match="must be JSON text, got bytes"):
        jsonvalue.parse(b"1", "the payload")  # type: ignore[arg-type]


@zart.workflow("codec-waits")
def waits(_: None) -> object:
    return zart.wait_for_event("approve", timeout=0.05)


def test_send_event_takes_json_text_checked_by_the_codec(journal, inline):
    with pytest.raises(zart.EventTimeout):
        zart.run(waits, None, execution_id="codec-1", journal=journal)  # failed: it still takes events
    assert zart.send_event("codec-1", "approve", journal=journal, payload_json='{"ok": true}')
    with pytest.raises(zart.SerializationError, match="the payload of event 'approve' is not JSON"):
        zart.send_event("codec-1", "approve", journal=journal, payload_json="{ok: true}")
    with pytest.raises(zart.ConfigurationError, match="a payload or payload_json, not both"):
        zart.send_event("codec-1", "approve", {"ok": True}, journal=journal, payload_json='{"ok": true}')
    from zart_nb._messages import pending_events

    assert [(e.name, e.payload) for e in pending_events("codec-1", journal=journal)] == [("approve", '{"ok":true}')]


def test_zart_event_refuses_data_that_is_not_json_and_sends_what_is(journal, inline):
    with pytest.raises(zart.EventTimeout):
        zart.run(waits, None, execution_id="codec-2", journal=journal)
    from zart_nb._runtime import runtime

    runtime.journal(journal).close()

    def event(data: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "zart_nb", "event", "codec-2", "approve", "--data", data,
                               "--journal", str(journal), "--json"], capture_output=True, text=True, timeout=120)

    bad = event("{approved: true}")
    assert bad.returncode == 1
    assert "zart event: --data: the payload of event 'approve' is not JSON" in bad.stderr
    assert "quote it for the shell" in bad.stderr and bad.stdout == ""
    good = event('{"approved": true}')
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout) == {"execution_id": "codec-2", "name": "approve", "sent": True}
    from zart_nb._messages import pending_events

    assert [e.payload for e in pending_events("codec-2", journal=journal)] == ['{"approved":true}']
