"""Settling an attempt's outcome: what its end means for its step. Pure code beside ``_replay``.

:func:`settle` decides, from how an attempt ended and the state of its step and run, the step's new
status (``retrying`` when another attempt is due), its error, the retry delay, the rows to journal and
the event to publish. It reads no file, takes no lock and changes nothing it is handed: the engine
(``RunState.on_outcomes``) does the I/O around it (it loads the output, builds the typed error, then
records the rows, publishes the events and resolves the handles, in that order).

The executor's ``Outcome`` is read, never rewritten: when the engine makes something else of it (an
output it cannot load, a traceback located in a notebook cell, output it captured itself) it settles
a copy (``dataclasses.replace``, off the hot path).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Protocol

from ._definitions import FATAL_MARK
from ._events import StepEvent
from ._executors.base import Outcome, OutcomeKind
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
_S_COMPLETED = StepStatus.COMPLETED  # module constants: read per outcome (an enum class lookup costs more)
_new = tuple.__new__  # a Settled is built without its Python-level __new__ on the hot path


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


class Settled(NamedTuple):
    """What to record of an ended attempt. ``status`` is ``RETRYING`` when another attempt is due
    after ``delay`` seconds (``step_row`` is then None: the step is not finished)."""

    status: StepStatus
    delay: float | None
    step_row: StepRow | None
    attempt_row: AttemptRow | None  # a failed attempt (not a cancelled one)
    event: StepEvent | None  # built only when someone listens


def settle(execution_id: str, run_number: int, state: Attempted, outcome: Outcome, error: StepError | None,
           stopping: bool, publish: bool) -> Settled:
    """Decide what an attempt's end means. ``outcome.kind`` is UNPICKLABLE when the driver could not
    load an OK output; ``error`` is the typed error of a failed attempt (None when it succeeded);
    ``stopping``: the run is cancelled or closing, so no attempt starts again; ``publish``: build the
    event too. The hot path (an OK outcome) builds one row and one tuple."""
    kind = outcome.kind
    task = outcome.task
    started_at = task.started_at or None
    worker = task.worker
    if kind is _OK:
        # In field order, each named: a 23-keyword call costs ~2.5 µs a row more (measured), on the path
        # every step takes; tests/test_settle.py checks the row field by field.
        row = StepRow(
            execution_id, state.key, run_number, state.seq,  # execution_id, step_key, run_number, seq
            state.name, state.code_hash, state.args_blob,  # name, def_id, args
            state.args_hash, state.args_preview, _COMPLETED,  # args_hash, args_preview, status
            outcome.blob, outcome.preview, None,  # output, output_preview, error
            outcome.error_type, outcome.traceback, state.attempt,  # error_type, traceback, attempts
            state.reason.value, True, state.scheduled_at,  # reason, current, scheduled_at
            started_at, outcome.finished_at, worker, outcome.output)  # started_at, finished_at, worker, log
        event = StepEvent(execution_id, state.key, _S_COMPLETED, state.name, state.attempt,
                          reason=state.reason, preview=outcome.preview, worker=worker,
                          started_at=started_at, at=outcome.finished_at) if publish else None
        return _new(Settled, (_S_COMPLETED, None, row, None, event))
    attempt_row = None
    if kind is not _CANCELLED:  # a cancelled attempt is not a failure: the step row says it
        attempt_row = AttemptRow(
            execution_id=execution_id, step_key=state.key, run_number=run_number, attempt=state.attempt,
            status=StepStatus.FAILED.value, error=outcome.error, traceback=outcome.traceback,
            started_at=started_at, finished_at=outcome.finished_at, worker=worker, log=outcome.output)
    if retryable(kind, state.attempt, state.policy, error, stopping):
        delay = state.policy.delay(state.attempt)
        event = StepEvent(execution_id, state.key, StepStatus.RETRYING, state.name, state.attempt + 1,
                          error=outcome.error, delay=delay, worker=worker) if publish else None
        return Settled(StepStatus.RETRYING, delay, None, attempt_row, event)
    status = StepStatus.CANCELLED if kind is _CANCELLED else StepStatus.FAILED
    text = None if error is None else str(error)
    row = StepRow(
        execution_id=execution_id, step_key=state.key, run_number=run_number, seq=state.seq, name=state.name,
        def_id=state.code_hash, args=state.args_blob, args_hash=state.args_hash, args_preview=state.args_preview,
        status=status.value, output=None, output_preview=outcome.preview, error=text, error_type=outcome.error_type,
        traceback=outcome.traceback, attempts=state.attempt, reason=state.reason.value, current=True,
        scheduled_at=state.scheduled_at, started_at=started_at, finished_at=outcome.finished_at,
        worker=worker, log=outcome.output)
    event = StepEvent(execution_id, state.key, status, state.name, state.attempt, reason=state.reason,
                      error=text, preview=outcome.preview, worker=worker, started_at=started_at,
                      at=outcome.finished_at) if publish else None
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
