"""The one codec of the JSON values that cross processes: event payloads and published values.

They are JSON (the monitor endpoint and the HTTP API never unpickle), at most :data:`MAX_JSON_BYTES` once
encoded as compact UTF-8 JSON. Every surface goes through here: ``zart.publish`` and ``zart.send_event``
(:func:`encode`), ``zart event --data`` and zart-tui's prompt (:func:`parse`, through
``zart.send_event(payload_json=)``), the monitor server receiving an event (:func:`parse`), and every reader
(:func:`decode`). A refusal is a :class:`SerializationError` naming what was refused and why.
"""
from __future__ import annotations

import json
from typing import Any

from .._errors import SerializationError

MAX_JSON_BYTES = 64 * 1024  # an event's payload or a published value, encoded as JSON (UTF-8)
_KINDS = "dict, list, str, int, float, bool, None"


def encode(value: Any, what: str) -> str:
    """``value`` as compact JSON text; :class:`SerializationError` when it is not a JSON value (NaN and
    infinities included) or is larger than :data:`MAX_JSON_BYTES`. ``what`` names it in the error
    (``"the payload of event 'approve'"``)."""
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise SerializationError(f"{what} must be a JSON value ({_KINDS}): {exc}") from None
    _check_size(text, what)
    return text


def parse(text: str, what: str) -> str:
    """JSON text given by someone (``--data``, a prompt, a monitor request) checked and made compact, as
    :func:`encode` would have written its value; :class:`SerializationError` when it is not JSON or its
    value is refused by :func:`encode`."""
    if not isinstance(text, str):
        raise SerializationError(f"{what} must be JSON text, got {type(text).__name__}")
    if len(text) > 4 * MAX_JSON_BYTES:  # refused before parsing: whitespace aside, it cannot fit
        _check_size(text, what)
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise SerializationError(f"{what} is not JSON ({exc}); e.g. {{\"approved\": true}}, \"text\", 3 or null") \
            from None
    return encode(value, what)


def decode(text: str) -> Any:
    """The value of JSON text this codec wrote (read back from the journal or the monitor)."""
    return json.loads(text)


def _check_size(text: str, what: str) -> None:
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_JSON_BYTES:
        raise SerializationError(f"{what} is {size:,} bytes as JSON; the limit is {MAX_JSON_BYTES:,} "
                                 "(publish a path or a URL to something larger)")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")
