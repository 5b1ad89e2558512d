"""Settling an attempt's outcome: what its end means for its step. Pure code beside ``_replay``.

:func:`settle` decides, from how an attempt ended and the state of its step and run, the step's new
status (``retrying`` when another attempt is due), its error, the retry delay, the rows to journal and
the event to publish. It reads no file, takes no lock and changes nothing it is handed: the engine
(``RunState.on_outcomes``) does the I/O around it (it loads the output, builds the typed error, then
records the rows, publishes the events and resolves the handles, in that order).

The outcome's facts arrive as an :class:`Ended` (the engine makes one per outcome, with the output it
loaded and the log it captured), so the executor's ``Outcome`` is never rewritten.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Protocol

from ._definitions import FATAL_MARK
from ._events import StepEvent
from ._executors.base import OutcomeKind
from ._journal import AttemptRow, StepRow
from ._status import RunReason, StepStatus

if TYPE_CHECKING:
    from ._definitions import RetryPolicy
    from ._errors import StepError

_OK = OutcomeKind.OK
_CANCELLED = OutcomeKind.CANCELLED
_UNPICKLABLE = OutcomeKind.UNPICKLABLE
_TIMEOUT = OutcomeKind.TIMEOUT
_CRASHED = OutcomeKind.CRASHED
_COMPLETED = StepStatus.COMPLETED.value


class Attempted(Protocol):
    """What settling reads of a step whose attempt ended (the engine's ``_StepState``)."""

    @property
    def key(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def code_hash(self) -> str: ...
    @property
    def policy(self) -> RetryPolicy: ...

    seq: int
    args_blob: bytes
    args_hash: str
    args_preview: str
    reason: RunReason
    attempt: int
    scheduled_at: float


class Ended(NamedTuple):
    """How one attempt ended, as settled: the executor's outcome with what the engine made of it."""

    kind: OutcomeKind  # UNPICKLABLE when the driver could not load an OK output
    blob: bytes | None  # the output's pickle (or stored value's reference) when OK
    preview: str | None
    error_type: str | None
    error: str | None  # the error text of a failed attempt
    traceback: str | None
    log: str | None  # what the attempt printed (the last 64 KiB)
    started_at: float | None
    finished_at: float | None
    worker: str | None


class Settled(NamedTuple):
    """What to record of an ended attempt. ``status`` is ``RETRYING`` when another attempt is due
    after ``delay`` seconds (``step_row`` is then None: the step is not finished)."""

    status: StepStatus
    delay: float | None
    step_row: StepRow | None
    attempt_row: AttemptRow | None  # a failed attempt (not a cancelled one)
    event: StepEvent | None  # built only when someone listens


def settle(execution_id: str, run_number: int, state: Attempted, ended: Ended, error: StepError | None,
           stopping: bool, publish: bool) -> Settled:
    """Decide what an attempt's end means. ``error`` is the typed error of a failed attempt (None when
    it succeeded); ``stopping``: the run is cancelled or closing, so no attempt starts again;
    ``publish``: build the event too. The hot path (an OK outcome) builds one row and one tuple."""
    kind = ended.kind
    if kind is _OK:
        row = StepRow(
            execution_id=execution_id, step_key=state.key, run_number=run_number, seq=state.seq,
            name=state.name, def_id=state.code_hash, args=state.args_blob, args_hash=state.args_hash,
            args_preview=state.args_preview, status=_COMPLETED, output=ended.blob,
            output_preview=ended.preview, error=None, error_type=ended.error_type, traceback=ended.traceback,
            attempts=state.attempt, reason=state.reason.value, current=True, scheduled_at=state.scheduled_at,
            started_at=ended.started_at, finished_at=ended.finished_at, worker=ended.worker, log=ended.log)
        event = StepEvent(execution_id, state.key, StepStatus.COMPLETED, state.name, state.attempt,
                          reason=state.reason, preview=ended.preview, worker=ended.worker,
                          started_at=ended.started_at, at=ended.finished_at) if publish else None
        return Settled(StepStatus.COMPLETED, None, row, None, event)
    attempt_row = None
    if kind is not _CANCELLED:  # a cancelled attempt is not a failure: the step row says it
        attempt_row = AttemptRow(
            execution_id=execution_id, step_key=state.key, run_number=run_number, attempt=state.attempt,
            status=StepStatus.FAILED.value, error=ended.error, traceback=ended.traceback,
            started_at=ended.started_at, finished_at=ended.finished_at, worker=ended.worker, log=ended.log)
    if retryable(kind, state.attempt, state.policy, error, stopping):
        delay = state.policy.delay(state.attempt)
        event = StepEvent(execution_id, state.key, StepStatus.RETRYING, state.name, state.attempt + 1,
                          error=ended.error, delay=delay, worker=ended.worker) if publish else None
        return Settled(StepStatus.RETRYING, delay, None, attempt_row, event)
    status = StepStatus.CANCELLED if kind is _CANCELLED else StepStatus.FAILED
    text = None if error is None else str(error)
    row = StepRow(
        execution_id=execution_id, step_key=state.key, run_number=run_number, seq=state.seq, name=state.name,
        def_id=state.code_hash, args=state.args_blob, args_hash=state.args_hash, args_preview=state.args_preview,
        status=status.value, output=None, output_preview=ended.preview, error=text, error_type=ended.error_type,
        traceback=ended.traceback, attempts=state.attempt, reason=state.reason.value, current=True,
        scheduled_at=state.scheduled_at, started_at=ended.started_at, finished_at=ended.finished_at,
        worker=ended.worker, log=ended.log)
    event = StepEvent(execution_id, state.key, status, state.name, state.attempt, reason=state.reason,
                      error=text, preview=ended.preview, worker=ended.worker, started_at=ended.started_at,
                      at=ended.finished_at) if publish else None
    return Settled(status, None, row, attempt_row, event)


def retryable(kind: OutcomeKind, attempt: int, policy: RetryPolicy, error: BaseException | None,
              stopping: bool) -> bool:
    """Whether a failed attempt (number ``attempt``) is tried again under ``policy``: not a cancelled
    one nor an output the driver cannot load, not while the run stops, not past ``retries``, not a
    timeout or crash the policy excludes, not an error the policy refused where it ran."""
    return (kind is not _CANCELLED and kind is not _UNPICKLABLE and not stopping
            and attempt <= policy.retries
            and (policy.retry_on_timeout or kind is not _TIMEOUT)
            and (policy.retry_on_crash or kind is not _CRASHED)
            and not getattr(None if error is None else error.__cause__, FATAL_MARK, False))
