"""The monitor's wire format: JSON objects as ``multiprocessing.connection`` byte messages, never pickles.

A client sends a :class:`Request` and gets one :class:`Response` with the same ``id``. After a
``subscribe`` request its connection carries only :class:`EventBatch` messages (coalesced events).
Records travel as JSON objects of their fields: datetimes as POSIX seconds, enums as their values.
Anything that does not parse is a :class:`ProtocolError` (the server answers it with an error reply).
"""
from __future__ import annotations

import dataclasses
import enum
import json
import math
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from .._errors import MonitorError
from .._events import Event, ExecutionEvent, StepEvent
from .._status import ExecutionStatus, RunEnd, RunReason, RunTrigger, StepStatus

if TYPE_CHECKING:  # the read API's records load with the client, not with the server an engine starts
    from .._progress import RunProgress

PROTOCOL_VERSION = 1
MAX_REQUEST_BYTES = 1 << 20  # a request is small; anything bigger is refused unread
MAX_RESPONSE_BYTES = 256 << 20

R = TypeVar("R")


class ProtocolError(MonitorError):
    """A message that is not valid JSON of the expected shape."""


class MessageType(enum.StrEnum):
    PING = "ping"
    LIST_EXECUTIONS = "list_executions"
    EXECUTION = "execution"
    LIST_STEPS = "list_steps"
    COUNT_STEPS = "count_steps"
    STEP_INDEX = "step_index"
    LIST_ATTEMPTS = "list_attempts"
    LIST_RUNS = "list_runs"
    STATS = "stats"
    LIST_DEFINITIONS = "list_definitions"
    SUBSCRIBE = "subscribe"
    CANCEL = "cancel"
    RETRY = "retry"
    RESUME = "resume"
    RESTART = "restart"
    RERUN = "rerun"
    FORK = "fork"
    RECOVER = "recover"
    DELETE = "delete"
    GARBAGE_COLLECT = "garbage_collect"  # retention: zart.garbage_collect / zart gc
    PROGRESS = "progress"
    LIVE_OUTPUT = "live_output"
    STORED_VALUES = "stored_values"
    VALUE_STORES = "value_stores"  # the journal's value_store= folders (zart stats)
    SEND_EVENT = "send_event"  # an event for an execution (zart.send_event, zart event, the TUI)
    PUBLISHED = "published"  # values an execution published under a key (zart.published, zart.stream)
    PENDING_EVENTS = "pending_events"  # events sent to an execution and not consumed yet
    WAKE = "wake"  # end the durable sleep an execution is in (zart wake)
    HANDOVER = "handover"  # a run of another process needs the journal: zart serve lets it go (_handover)
    EVENTS = "events"  # server to client, after subscribe


CONTROL_TYPES = frozenset({MessageType.CANCEL, MessageType.RETRY, MessageType.RESUME, MessageType.DELETE,
                           MessageType.RESTART, MessageType.RERUN, MessageType.FORK, MessageType.RECOVER,
                           MessageType.GARBAGE_COLLECT, MessageType.SEND_EVENT, MessageType.WAKE,
                           MessageType.HANDOVER})


def _loads(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"not a JSON message: {exc}") from None
    if not isinstance(value, dict):
        raise ProtocolError(f"a message must be a JSON object, got {type(value).__name__}")
    return value


def _dumps(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode("utf-8")


@dataclasses.dataclass(frozen=True, slots=True)
class Request:
    id: int
    type: MessageType
    args: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> bytes:
        return _dumps({"id": self.id, "type": self.type.value, "args": self.args})

    @classmethod
    def from_json(cls, data: bytes) -> Request:
        value = _loads(data)
        request_id = value.get("id")
        if not isinstance(request_id, int) or isinstance(request_id, bool):
            raise ProtocolError("a request needs an integer 'id'")
        try:
            kind = MessageType(str(value.get("type")))
        except ValueError:
            raise ProtocolError(f"unknown request type {value.get('type')!r}") from None
        args = value.get("args", {})
        if not isinstance(args, dict):
            raise ProtocolError("'args' must be a JSON object")
        return cls(request_id, kind, args)


@dataclasses.dataclass(frozen=True, slots=True)
class Response:
    id: int | None
    ok: bool
    result: Any = None
    error_type: str | None = None
    error: str | None = None

    def to_json(self) -> bytes:
        return _dumps({"id": self.id, "ok": self.ok, "result": self.result, "error_type": self.error_type,
                       "error": self.error})

    @classmethod
    def failure(cls, request_id: int | None, exc: BaseException) -> Response:
        return cls(request_id, False, None, type(exc).__name__, str(exc))

    @classmethod
    def from_json(cls, data: bytes) -> Response:
        value = _loads(data)
        if not isinstance(value.get("ok"), bool):
            raise ProtocolError("a response needs a boolean 'ok'")
        return cls(value.get("id"), value["ok"], value.get("result"), value.get("error_type"),
                   value.get("error"))


@dataclasses.dataclass(frozen=True, slots=True)
class EventBatch:
    """Events since the last batch, the latest per step (``resync``: some were dropped, read again)."""

    events: list[dict[str, Any]]
    resync: bool = False

    def to_json(self) -> bytes:
        return _dumps({"type": MessageType.EVENTS.value, "events": self.events, "resync": self.resync})

    @classmethod
    def from_json(cls, data: bytes) -> EventBatch:
        value = _loads(data)
        if value.get("type") != MessageType.EVENTS.value or not isinstance(value.get("events"), list):
            raise ProtocolError("expected an events message")
        return cls(value["events"], bool(value.get("resync")))


# --- records ----------------------------------------------------------------------------------------

_ENUMS: dict[str, type[enum.Enum]] = {"ExecutionStatus": ExecutionStatus, "StepStatus": StepStatus,
                                      "RunReason": RunReason, "RunEnd": RunEnd, "RunTrigger": RunTrigger}


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def record_to_json(record: Any) -> dict[str, Any]:
    """A record dataclass as a JSON-ready object."""
    return {f.name: _encode(getattr(record, f.name)) for f in dataclasses.fields(record)}


def record_from_json(cls: type[R], value: Any) -> R:
    """Rebuild a record of ``cls`` from :func:`record_to_json`'s object; ``ProtocolError`` if it does not fit."""
    if not isinstance(value, dict):
        raise ProtocolError(f"a {cls.__name__} must be a JSON object")
    kwargs: dict[str, Any] = {}
    try:
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name not in value:
                if f.default is not dataclasses.MISSING:
                    continue
                raise ProtocolError(f"a {cls.__name__} lacks {f.name!r}")
            raw = value[f.name]
            kind = str(f.type)
            if raw is not None and "datetime" in kind:
                raw = datetime.fromtimestamp(float(raw))
            elif raw is not None and kind.split(" ")[0] in _ENUMS:
                raw = _ENUMS[kind.split(" ")[0]](raw)
            kwargs[f.name] = raw
        return cls(**kwargs)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ProtocolError(f"a {cls.__name__} does not fit: {exc}") from None


def progress_to_json(progress: RunProgress) -> dict[str, Any]:
    value = record_to_json(progress)
    value["running_steps"] = [record_to_json(step) for step in progress.running_steps]
    value["failed_steps"] = [record_to_json(step) for step in progress.failed_steps]
    value["queues"] = [record_to_json(queue) for queue in progress.queues]
    return value


def progress_from_json(value: Any) -> RunProgress:
    from .._progress import FailedStep, QueueBacklog, RunningStep, RunProgress

    if not isinstance(value, dict):
        raise ProtocolError("a RunProgress must be a JSON object")
    running = value.get("running_steps", [])
    failed = value.get("failed_steps", [])
    queues = value.get("queues", [])
    if not isinstance(running, list) or not isinstance(failed, list) or not isinstance(queues, list):
        raise ProtocolError("a RunProgress's step and queue lists must be JSON arrays")
    flat = {k: v for k, v in value.items() if k not in ("running_steps", "failed_steps", "queues")}
    progress = record_from_json(RunProgress, flat)
    return dataclasses.replace(progress, running_steps=tuple(record_from_json(RunningStep, s) for s in running),
                               failed_steps=tuple(record_from_json(FailedStep, s) for s in failed),
                               queues=tuple(record_from_json(QueueBacklog, q) for q in queues))


def event_from_json(value: dict[str, Any]) -> Event:
    """A :class:`StepEvent` or :class:`ExecutionEvent` from its ``to_dict()`` form."""
    try:
        if value.get("kind") == "step":
            reason = value.get("reason")
            return StepEvent(value["execution_id"], value["step_key"], StepStatus(value["status"]),
                             value.get("name") or "", int(value.get("attempt") or 1),
                             bool(value.get("reused")), None if reason is None else RunReason(reason),
                             value.get("error"), value.get("preview"), value.get("worker"),
                             value.get("delay"), value.get("started_at"), float(value["at"]))
        if value.get("kind") == "execution":
            return ExecutionEvent(value["execution_id"], ExecutionStatus(value["status"]),
                                  value.get("workflow") or "", value.get("run_number"),
                                  value.get("journal") or "", value.get("error"), float(value["at"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"an event does not fit: {exc}") from None
    raise ProtocolError(f"unknown event kind {value.get('kind')!r}")
