"""Replay, dispatch and results: the durable heart of zart_nb.

A workflow body runs in an ordinary thread. Each step call or ``schedule`` gets a key in call order;
when the journal holds a completed record of that key with the same argument and code hashes, the
handle resolves at once from the stored pickle (nothing is dispatched), otherwise an attempt goes to
the worker pool. Outcomes come back in batches on the pool's I/O thread, are made durable (side log,
fsynced) and only then resolve their handles, so ``wait`` never returns an unjournaled result.

Shaped for suspension (durable sleep, external events): a run holds no state that replay from the
top cannot rebuild, so a body can unwind and a later run can continue it.
"""
from __future__ import annotations

import contextvars
import inspect
import logging
import sys
import threading
import time
import traceback as tb_module
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from . import _byref as byref
from . import _context
from . import _handover as handover
from . import _kinds as kinds
from . import _serialization as ser
from . import _stores as stores
from . import _tableinput as tableinput
from . import _values as values
from ._definitions import FATAL_MARK, Guarded, Queue, Step, WorkflowDef, deadline_at, limit_of, referenced_steps
from ._errors import (
    Cancelled,
    ConfigurationError,
    DeadlineExceeded,
    DefinitionError,
    NonDeterminism,
    RecoveriesExhausted,
    SerializationError,
    StepCancelled,
    StepError,
    StepFailed,
    StepTimeout,
    TaskError,
    ValueLost,
    ValueStoreError,
    WaitTimeout,
    WorkerCrashed,
    ZartError,
)
from ._events import ExecutionEvent, StepEvent, events
from ._executors import choice
from ._executors.base import TASK_IDS, Executor, Outcome, OutcomeKind, Task
from ._executors.capture import Capture, prefix_lines
from ._executors.choice import ExecutorSpec
from ._handles import Execution, StepHandle, journal_of, run_of
from ._journal import AttemptRow, InFlightRow, Journal, RunBeat, StepRow, StoredStep, suspension
from ._options import DEFAULT_OPTIONS, RunOptions, RunPlan
from ._replay import FAIL_AGAIN, PREFIXES, REDO, Keys, Kind, check_change, decide
from ._runtime import runtime
from ._settle import settle
from ._status import ExecutionStatus, RunEnd, RunReason, RunTrigger, StepStatus
from ._suspend import Suspend, continuer, lease_until
from ._tracebacks import locate_dynamic

if TYPE_CHECKING:
    from ._progress import QueueBacklog, RunProgress

WAIT_TICK = 0.1
MAX_CHILD_DEPTH = 32  # executions started from bodies, nested: deeper is a runaway recursion
_REF_FIRST = values.REF_FIRST  # a module constant: the replay loop reads it per reused step
_COMPLETED = StepStatus.COMPLETED  # read per outcome
logger = logging.getLogger("zart_nb")


@dataclass(slots=True)
class _Definition:
    fn_id: str
    fn_blob: bytes
    code_hash: str


class _StepState:
    """A step of a run whose attempts are dispatched (what ``_settle.settle`` reads: ``Attempted``)."""

    __slots__ = ("run", "handle", "step", "args_blob", "args_hash", "args_preview", "seq", "reason",
                 "supersedes", "attempt", "scheduled_at", "definition", "timeout", "limit", "key", "name",
                 "code_hash", "policy", "ended")

    def __init__(self, run: RunState, handle: StepHandle, step: Step[Any, Any], definition: _Definition,
                 args_blob: bytes, args_hash: str, args_preview: str, seq: int, reason: RunReason,
                 supersedes: bool, queue: Queue | None) -> None:
        self.run = run
        self.handle = handle
        self.step = step
        self.definition = definition
        self.args_blob = args_blob
        self.args_hash = args_hash
        self.args_preview = args_preview
        self.seq = seq
        self.reason = reason
        self.supersedes = supersedes
        self.attempt = 1
        self.scheduled_at = time.time()
        self.timeout = step.timeout
        self.limit = None if queue is None else limit_of(queue)  # its attempts' (retries' too) zart.Queue
        self.key = handle.key
        self.name = step.name
        self.code_hash = definition.code_hash
        self.policy = step.retry
        self.ended = False  # its end is published: no longer listed in flight, though still in _pending


# --- one run of one execution ------------------------------------------------------------------


class RunState:
    """The live state of one run (run 1, run 2 after a resume, ...) of an execution."""

    def __init__(self, journal: Journal, execution_id: str, run_number: int,
                 stored: dict[str, StoredStep], on_change: str, workers: int | None,
                 executor: ExecutorSpec = None, store: tuple[str, int] | None = None,
                 value_store: str | None = None) -> None:
        self.journal = journal
        # (value store folder, threshold): every task carries this one tuple (pickled once a batch)
        self.store = store or values.spec(journal.path)
        # The execution's journaled value_store (``_stores``): a folder a cluster's workers reach too, else None
        self.value_store = value_store
        self.execution_id = execution_id
        self.run_number = run_number
        self.stored = stored
        self.on_change = on_change
        self.workers = workers
        self.executor_spec = executor
        self.parent: RunState | None = None  # the run whose body started this one, if any
        self.children: list[RunState] = []  # runs its body started (cancelled with it)
        self.cancelled = False
        self.interrupted = False
        self.closing = False
        self.executed = 0
        self.reused = 0
        self.total = 0
        self.finished = 0
        # For progress views (read from other threads; written on failure paths only):
        self.failures: dict[str, tuple[int, str]] = {}  # step key -> (attempts, error)
        self.retrying: dict[str, str] = {}  # step key -> error of the attempt that failed
        self.retries = 0
        self.cancelled_steps = 0
        self.never_started = 0  # cancelled before an attempt began: not counted as executed
        # (key, attempt, stream, lines, the execution's id to name in their prefix or None)
        self.output_sinks: list[Callable[[str, int, str, str, str | None], None]] = []
        self.overlap_mark: int | None = None  # see ``runtime.run_opened``; None: its lines never name it
        self.cancel_origin: str | None = None  # who asked to stop it ("zart cancel (pid 12)")
        self.deadline_passed = False  # its deadline passed while it ran (its steps were stopped)
        self.started = time.time()
        # What running attempts printed so far (task id -> its first 16 KiB and last 64 KiB): an attempt
        # killed by its timeout, a cancel or a crash sends no output of its own, so this is what gets journaled.
        self._streamed: dict[int, Capture] = {}
        self._keys = Keys(execution_id)
        # Keyed by the Step object, which the dict keeps alive for the run: an ``id()`` key let a freed
        # call-site Step's id be reused by the next one, which then ran the old function.
        self._definitions: dict[Step[..., Any], _Definition] = {}
        self._pending: dict[int, _StepState] = {}
        self._cond = threading.Condition()
        self._executor: Executor | None = None
        # Stored arrays and tables this run loaded, by id (a weak reference tells a live one from a reused id):
        # passed unchanged to another step, one travels as its reference (``_by_reference``).
        self._mapped: dict[int, tuple[weakref.ref[Any], byref.Tracked]] = {}
        # A cluster's workers load a by-reference argument only from a store they share (value_store=)
        self._by_reference_ok = value_store is not None or choice.target(executor) is None
        self._sleeping: list[Any] | None = None  # [wake time, (key, seq, name)] while the body sleeps
        self._failed_before: dict[str, Any] | None = None  # a retry's other failed steps, read once (_fail_again)
        self.handover: str | None = None  # zart serve hands the journal over: stop at the next durable call

    # --- scheduling (workflow thread) ------------------------------------------------------------

    def schedule(self, step: Step[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                 key: str | None = None, queue: Queue | None = None, kind: Kind | None = None,
                 identity: tuple[Any, ...] | None = None) -> StepHandle:
        # The replay of a journaled step takes this path thousands of times: keep it lean.
        if self.cancelled:
            raise Cancelled(f"execution {self.execution_id!r} was cancelled")
        if self.handover is not None:  # a flag read a call: zart serve hands the journal over
            self._yield_journal()
        name = step.name
        if key is None and step._template_fields:
            key = step.key_for(args, kwargs)
        # ``kind``: None for a step (an enum member's lookup costs 70 ns a call on this path)
        key = self._keys.step_key(name, key) if kind is None else self._keys.key(kind, name, key)
        seq = self._keys.next_seq()  # its place in the run's call order (one sequence for what schedule() journals)
        self.total += 1
        sent = self._by_reference(args, kwargs) if self._mapped else None
        stored = self.stored.get(key)
        reason: RunReason | None
        if stored is None:  # a new call (every call of a first run): one pass gives blob, hash and preview
            call = ser.encode_call(args, kwargs, sent, identity=identity, fn=step.fn, step_key=key)
            definition = self._definitions.get(step) or self._definition(step)
            reason = RunReason.NEW
            handle = StepHandle(self, key, name)
        else:  # a journaled call: the hash alone decides; a call reused is never pickled
            try:
                if identity is not None:  # what a call of another kind is reused by, in place of its arguments
                    args_hash = ser.args_hash(identity, {})
                elif sent is None:
                    args_hash = ser.args_hash(args, kwargs)
                else:
                    args_hash = ser.args_hash(sent[2], sent[3])
            except SerializationError as exc:
                raise ser.argument_error(args, kwargs, exc, fn=step.fn, step_key=key) from exc
            definition = self._definitions.get(step) or self._definition(step)
            reason = decide(stored, args_hash, definition.code_hash)
            if reason is None:
                output = stored.output
                if output is not None and output[0] == _REF_FIRST:  # a stored value's reference, not a pickle
                    handle = StepHandle(self, key, name)
                    reason = self._reuse_stored(handle, output)
                else:  # done at once with the journaled pickle (one call: this runs per reused step)
                    handle = StepHandle(self, key, name, output)
            elif stored.status == FAIL_AGAIN:
                return self._fail_again(key, name)
            else:
                handle = StepHandle(self, key, name)
            if reason is None:
                self.reused += 1
                self.finished += 1
                if events.active:
                    events.publish(StepEvent(self.execution_id, key, StepStatus.COMPLETED, name, reused=True))
                return handle
            check_change(reason, self.on_change, self.execution_id, key)
            # Run again (rare on a replay): encoded whole, its hash computed a second time
            call = ser.encode_call(args, kwargs, sent, identity=identity, fn=step.fn, step_key=key)
        state = _StepState(self, handle, step, definition, call.blob, call.hash, call.preview, seq, reason,
                           stored is not None, queue or step.queue)
        self.executed += 1
        self._submit(state)
        return handle

    def _fail_again(self, key: str, name: str) -> StepHandle:
        """A failed step that a retry of another step does not run: done at once with its journaled error."""
        from ._journal import queries

        if self._failed_before is None:  # read once per run, not once per such step
            failed = self.journal.query(queries.list_steps, self.execution_id, status="failed")
            self._failed_before = {step.step_key: step for step in failed}
        record = self._failed_before.get(key)
        handle = StepHandle(self, key, name)
        handle.fail(StepFailed(self.execution_id, key, f"{record.error if record else 'failed'} (failed before; "
                               "a retry runs only its own step again)", record.attempts if record else 0, "",
                               (record.traceback or "") if record else ""))
        self.finished += 1
        return handle

    def _reuse_stored(self, handle: StepHandle, output: bytes) -> RunReason | None:
        """Reuse a journaled step whose output is in the value store (loaded now: mapped, so cheap for
        arrays); a missing or damaged file makes the step run again."""
        try:
            value = self._load(output)
        except ValueLost as exc:
            logger.warning("zart: step %r of execution %r runs again: %s", handle.key, self.execution_id, exc)
            return RunReason.VALUE_LOST
        handle.reuse_value(value)
        return None

    def _load(self, blob: bytes) -> Any:
        """A stored value, remembered (weakly) when it can go to another step by reference."""
        value, mapped = byref.load_tracked(blob, self.journal.path, Path(self.store[0]))
        if mapped is not None and self._by_reference_ok:
            self._mapped[id(value)] = (weakref.ref(value), mapped)
        return value

    def table_input(self, data: Any, blob: bytes, input_hash: str) -> Any:
        """The workflow's table input as its body gets it: read back from its Parquet file (``blob``), or
        ``data`` when it is the value a resume read from that file; remembered to go to steps by reference,
        hashed as the input (``input_hash``) rather than as its file."""
        held = tableinput.loaded(data, blob)
        if held is None:
            data, tracked = byref.load_tracked(blob, self.journal.path, Path(self.store[0]))
            held = tracked if isinstance(tracked, byref.Held) else None
        if held is not None and self._by_reference_ok:
            self._mapped[id(data)] = (weakref.ref(data), tableinput.held(held, input_hash))
        return data

    def _by_reference(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> \
            tuple[tuple[Any, ...], dict[str, Any], tuple[Any, ...], dict[str, Any]] | None:
        """``(args, kwargs)`` to send, then to hash, with stored arrays passed by reference (or None)."""
        return byref.replace(args, kwargs, self._mapped)

    def _definition(self, step: Step[..., Any]) -> _Definition:
        definition = self._definitions.get(step)
        if definition is None:
            try:
                # A policy that refuses some errors is evaluated where the step runs: it travels with it.
                blob = ser.dumps_by_value(Guarded(step.fn, step.retry) if step.retry.filters else step.fn)
            except Exception as exc:
                raise SerializationError(f"step {step.name!r} cannot be pickled to run in a worker "
                                         f"process: {exc}") from exc
            code = ser.code_hash(step.fn)
            definition = _Definition(ser.digest(blob), blob, code)
            self._definitions[step] = definition
            if not self.journal.has_definition(code):
                self.journal.save_definition(code, "step", step.name, ser.source_of(step.fn), blob)
        return definition

    def _task(self, state: _StepState, delay: float = 0.0) -> Task:
        """A new attempt of ``state``; the caller registers it in ``_pending`` under ``_cond``."""
        return Task(next(TASK_IDS), state.definition.fn_id, state.definition.fn_blob,
                    state.args_blob, self.execution_id, state.handle.key, state.attempt,
                    state.timeout, time.time() + delay if delay else 0.0, store=self.store,
                    shared_store=self.value_store, consumer=self, owner=state, limit=state.limit)

    def _submit(self, state: _StepState) -> None:
        task = self._task(state)
        with self._cond:
            self._pending[task.task_id] = state
        if events.active:  # before its dispatch: once dispatched, its end may be published first
            events.publish(StepEvent(self.execution_id, state.key, StepStatus.SCHEDULED, state.name,
                                     reason=state.reason))
        self._dispatch([task])

    def _dispatch(self, tasks: list[Task]) -> None:
        executor = self._executor
        if executor is None or executor.closed:
            executor = self._executor = runtime.get_executor(self.workers, self.executor_spec)
        executor.submit(tasks)

    # --- durable calls of other kinds: captures, sleeps (workflow thread; see ``_kinds``) ----------

    def recall(self, kind: Kind, name: str) -> tuple[str, int, StoredStep | None]:
        """``(key, seq, journaled record)`` of the next durable call of ``kind`` named ``name``."""
        if self.cancelled:
            raise Cancelled(f"execution {self.execution_id!r} was cancelled")
        if self.handover is not None:
            self._yield_journal()
        key = self._keys.key(kind, name)
        return key, self._keys.next_seq(), self.stored.get(key)

    def journal_call(self, kind: Kind, key: str, seq: int, name: str, blob: bytes, preview: str,
                     args_preview: str = "", finished_at: float | None = None, supersede: bool = False) -> None:
        """Journal a durable call of another kind than a step as completed (durable on return).
        ``finished_at``: when it ends, if not now (a sleep's wake time, readable without unpickling)."""
        now = time.time()
        row = StepRow(
            execution_id=self.execution_id, step_key=key, run_number=self.run_number, seq=seq, name=name,
            def_id=kind.value, args=b"", args_hash="", args_preview=args_preview,
            status=StepStatus.COMPLETED.value, output=blob, output_preview=preview, error=None, error_type=None,
            traceback=None, attempts=1, reason=RunReason.NEW.value, current=True, scheduled_at=now,
            started_at=now, finished_at=now if finished_at is None else finished_at, worker=None)
        replaces = supersede or key in self.stored
        self.journal.record([row], (), [(self.execution_id, key)] if replaces else ())

    def doze(self, until: float) -> None:
        """Block the workflow thread until ``until`` (POSIX seconds) or the next :meth:`poke` or outcome,
        whichever comes first; a cancel ends it with ``Cancelled``."""
        with self._cond:
            if self.cancelled:
                raise Cancelled(f"execution {self.execution_id!r} was cancelled")
            if self.handover is not None:
                self._yield_journal()
            remaining = until - time.time()
            if remaining > 0:
                self._cond.wait(min(remaining, 1.0))

    def poke(self) -> None:
        """Wake a body dozing in a wait (an event was sent to its execution)."""
        with self._cond:
            self._cond.notify_all()

    def pause(self, until: float, call: tuple[str, int, str] | None = None) -> None:
        """Block the workflow thread until ``until`` (POSIX seconds), or until :meth:`wake` when ``call``
        is the sleep's ``(key, seq, name)``; a cancel ends it with ``Cancelled``."""
        with self._cond:
            self._sleeping = [until, call]
            try:
                while True:
                    if self.cancelled:
                        raise Cancelled(f"execution {self.execution_id!r} was cancelled")
                    if self.handover is not None:
                        self._yield_journal()
                    remaining = self._sleeping[0] - time.time()
                    if remaining <= 0:
                        return
                    self._cond.wait(min(remaining, 1.0))
            finally:
                self._sleeping = None

    def suspend(self, status: ExecutionStatus, waits_for: str, wake_at: float | None,
                call: tuple[str, int, str] | None = None) -> None:
        """Suspend the execution (raise ``Suspend``: the body unwinds, see ``_suspend``), unless this run
        cannot be (a child execution: its parent's body waits for it), when this returns and the
        caller blocks instead."""
        if self.parent is None:
            raise Suspend(status, waits_for, wake_at, None if call is None else call[0])

    def hand_over(self, waits_for: str) -> None:
        """zart serve hands the journal over (``_handover``): the body stops at its next durable call (one
        it is dozing or sleeping in included), its steps in flight finishing first."""
        with self._cond:
            self.handover = waits_for
            self._cond.notify_all()

    def _yield_journal(self) -> None:
        """Suspend for a handover, due at once with a free lease; a child run (its parent's body waits
        for it) runs on, and its parent stops instead."""
        if self.parent is None and self.handover is not None:
            raise Suspend(ExecutionStatus.SLEEPING, self.handover, time.time(), handed_over=True)

    def finish_pending(self) -> None:
        """Wait until every attempt scheduled in this run so far has ended and is journaled (a
        suspension lets the steps in flight finish first); a cancel stops the wait."""
        with self._cond:
            while self._pending and not self.cancelled:
                self._cond.wait(WAIT_TICK)

    def wake(self) -> bool:
        """End the sleep the body is in now (``zart wake``): its wake time is journaled as now, so a
        replay does not sleep it again. False when the body is not in a durable sleep."""
        with self._cond:
            sleeping = self._sleeping
            call = None if sleeping is None else sleeping[1]
        if call is None:
            return False
        key, seq, name = call
        now = time.time()
        self.journal_call(Kind.SLEEP, key, seq, name, ser.dumps(now), kinds.until(now, woken=True), finished_at=now,
                          supersede=True)
        with self._cond:
            if self._sleeping is not None:
                self._sleeping[0] = now
            self._cond.notify_all()
        return True

    # --- outcomes (pool I/O thread) --------------------------------------------------------------

    @property
    def ran(self) -> int:
        """Steps of this run whose attempt actually started (the run's "executed" count)."""
        return self.executed - self.never_started

    def on_output(self, task: Task, stream: str, text: str) -> None:
        """Lines a running step printed: to the cell that started the execution, else to this
        process's own stream, prefixed with the step key (and the execution's id once another run was
        open beside this one in this process: their lines interleave)."""
        captured = self._streamed.get(task.task_id)
        if captured is None:
            captured = self._streamed[task.task_id] = Capture(None)
        captured.write(stream, text)
        mark = self.overlap_mark
        named = self.execution_id if mark is not None and runtime.overlapped(mark) else None
        sinks = self.output_sinks
        if sinks:
            for sink in sinks:
                sink(task.step_key, task.attempt, stream, text, named)
        else:
            target = sys.stderr if stream == "stderr" else sys.stdout
            target.write(prefix_lines(task.step_key, task.attempt, text, named))

    def on_outcomes(self, outcomes: list[Outcome]) -> None:
        """Settle a batch of ended attempts (``_settle.settle`` decides), then record them (fsynced),
        publish their events and resolve their handles, in that order."""
        step_rows: list[StepRow] = []
        attempt_rows: list[AttemptRow] = []
        supersede: list[tuple[str, str]] = []
        resolved: list[tuple[_StepState, Any, BaseException | None]] = []
        retries: list[tuple[_StepState, float]] = []
        published: list[StepEvent] = []
        publish = events.active
        execution_id, run_number = self.execution_id, self.run_number
        for outcome in outcomes:
            task = outcome.task
            state = cast(_StepState, task.owner)
            value: Any = None
            if self._streamed:
                captured = self._streamed.pop(task.task_id, None)
                if captured is not None and outcome.output is None:
                    outcome = replace(outcome, output=captured.close())
            error: StepError | None = None
            if outcome.kind is OutcomeKind.OK:
                # Loaded here, before it is journaled as completed: an output the driver cannot load
                # (a class only the worker has) fails the step instead of failing every re-run.
                try:
                    blob = outcome.blob
                    if blob is None:
                        value = None
                    elif blob[0] == _REF_FIRST:  # a reference (one byte tells; a pickle starts \x80)
                        value = self._load(blob)
                    else:
                        value = ser.loads(blob)
                except Exception as exc:
                    outcome = replace(outcome, kind=OutcomeKind.UNPICKLABLE, blob=None,
                                      error_type="SerializationError",
                                      error=ser.cap_text(f"its output cannot be unpickled in this process: "
                                                         f"{type(exc).__name__}: {_text(exc)}"))
                    error = self._error_for(state, outcome)
            else:
                # its traceback located (a notebook cell's lines) before it is journaled
                outcome = replace(outcome, traceback=locate_dynamic(outcome.traceback, state.step.fn))
                error = self._error_for(state, outcome)
            settled = settle(execution_id, run_number, state, outcome, error, self.cancelled or self.closing,
                             publish)
            status = settled.status
            if settled.attempt_row is not None:
                attempt_rows.append(settled.attempt_row)
            if settled.event is not None:
                published.append(settled.event)
            if status is _COMPLETED:
                if self.retrying:
                    with self._cond:  # progress() reads these under the lock (failure paths only)
                        self.retrying.pop(state.key, None)
            elif status is StepStatus.RETRYING:
                with self._cond:
                    self.retrying[state.key] = outcome.error or ""
                    self.retries += 1
                state.attempt += 1
                retries.append((state, cast(float, settled.delay)))
                continue
            else:
                with self._cond:
                    self.retrying.pop(state.key, None)
                    if status is StepStatus.FAILED:
                        self.failures[state.key] = (state.attempt, str(error))
                    else:
                        self.cancelled_steps += 1
                        if not task.started_at:
                            self.never_started += 1
            if state.supersedes:
                supersede.append((execution_id, state.key))
            step_rows.append(settled.step_row)  # type: ignore[arg-type]  # set once settled (cast() is a call)
            resolved.append((state, value, error))
        self.journal.record(step_rows, attempt_rows, supersede)
        # Published before the handles resolve, so a step's event always precedes whatever the
        # workflow does next (its execution's "completed" event included). A monitor subscribing now
        # lists what is in flight after it subscribed: a step whose end it was not sent must not be in it.
        if published:
            for state, _, _ in resolved:
                state.ended = True
            for event in published:
                events.publish(event)
        retry_tasks: list[Task] = []
        with self._cond:
            for outcome in outcomes:
                self._pending.pop(outcome.task.task_id, None)
            # Registered in the same critical section that retires the failed attempt, so
            # cancel_pending never sees an empty _pending while a retry is on its way.
            for state, delay in retries:
                task = self._task(state, delay)
                self._pending[task.task_id] = state
                retry_tasks.append(task)
            for state, value, failure in resolved:
                state.handle.resolve(value, failure)
                self.finished += 1
            self._cond.notify_all()
        if retry_tasks:
            self._dispatch(retry_tasks)

    def _error_for(self, state: _StepState, outcome: Outcome) -> StepError:
        """The typed error of a failed attempt (a step's own error is unpickled as its ``__cause__``)."""
        key = state.key
        attempts = state.attempt
        suffix = f" (attempt {attempts} of {state.policy.retries + 1})"
        if outcome.kind is OutcomeKind.TIMEOUT:
            return StepTimeout(self.execution_id, key, f"{outcome.error}{suffix}", attempts)
        if outcome.kind is OutcomeKind.CRASHED:
            return WorkerCrashed(self.execution_id, key, f"{outcome.error}{suffix}", attempts)
        if outcome.kind is OutcomeKind.CANCELLED:
            return StepCancelled(self.execution_id, key, "cancelled before it finished", attempts)
        cause = None
        if outcome.blob is not None:
            try:
                cause = ser.loads(outcome.blob)
            except Exception:
                pass
        if getattr(cause, FATAL_MARK, False):
            suffix = f" (attempt {attempts}; not retried: its retry policy refuses this error)"
        error = StepFailed(self.execution_id, key, f"{outcome.error}{suffix}", attempts,
                           outcome.error_type or "", outcome.traceback or "")
        if cause is not None:
            error.__cause__ = cause
        return error

    # --- waiting (workflow thread) ---------------------------------------------------------------

    def wait_for(self, handles: list[StepHandle], timeout: float | None = None,
                 tick: Callable[[], None] | None = None) -> None:
        """Block until every handle is done (an O(n) pass: each handle is checked until done once)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            for handle in handles:
                while not handle.done:
                    self._wait_tick(deadline, timeout)
                    if tick is not None:
                        tick()
            if self.cancelled:
                raise Cancelled(f"execution {self.execution_id!r} was cancelled")

    def wait_any(self, handles: list[StepHandle], timeout: float | None = None) -> None:
        """Block until at least one of ``handles`` is done (``WaitTimeout`` after ``timeout`` seconds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not any(handle.done for handle in handles):
                self._wait_tick(deadline, timeout)
            if self.cancelled:
                raise Cancelled(f"execution {self.execution_id!r} was cancelled")

    def _wait_tick(self, deadline: float | None, timeout: float | None) -> None:
        """One wait on the run's condition (held by the caller), after checking that the run goes on
        (``Cancelled``) and that ``timeout`` (ending at the monotonic ``deadline``) has not passed."""
        if self.cancelled:
            raise Cancelled(f"execution {self.execution_id!r} was cancelled")
        remaining = WAIT_TICK
        if deadline is not None:
            remaining = min(remaining, deadline - time.monotonic())
            if remaining <= 0:
                raise WaitTimeout(f"steps of {self.execution_id!r} still running "
                                  f"after {timeout}s (they keep running)")
        self._cond.wait(remaining)

    def capture(self, kind: Kind, name: str, identity: tuple[Any, ...], choose: Callable[[], Any],
                preview: Callable[[Any], str]) -> Any:
        """A value the body decides once (``choose()``) and every replay reads back: a durable call of
        ``kind`` that runs no step, journaled as a completed record of its own key (``wait:first#0``).
        Reused while ``identity`` (what it chose among) is the same; otherwise chosen again."""
        if self.cancelled:
            raise Cancelled(f"execution {self.execution_id!r} was cancelled")
        if self.handover is not None:
            self._yield_journal()
        key = self._keys.key(kind, name)
        # Its place in the run's call order: the sequence schedule() and recall() take theirs from (a count
        # of its own would give a capture the seq of the step after it, and a fork or rerun --after mix them)
        seq = self._keys.next_seq()
        self.total += 1
        code = f"zart:{kind.value}"
        stored = self.stored.get(key)
        call = None
        if stored is None:  # a new call: one pass gives blob, hash and preview (as a step's)
            call = ser.encode_call(identity, {}, identity=identity, step_key=key)
            args_hash = call.hash
        else:  # a journaled call: the hash alone decides
            args_hash = ser.args_hash(identity, {})
        reason = decide(stored, args_hash, code)
        if reason is None and stored is not None and stored.output is not None:
            self.reused += 1
            self.finished += 1
            return ser.loads(stored.output)
        if stored is not None and reason is not None:
            check_change(reason, self.on_change, self.execution_id, key)
        if call is None:
            call = ser.encode_call(identity, {}, identity=identity, step_key=key)
        value = choose()
        now = time.time()
        self.journal.record([StepRow(
            self.execution_id, key, self.run_number, seq, name, code, call.blob, call.hash,
            call.preview, StepStatus.COMPLETED.value, ser.dumps(value), preview(value), None, None,
            None, 1, (reason or RunReason.NEW).value, True, now, now, now, None)],
            (), [(self.execution_id, key)] if stored is not None else ())
        self.executed += 1
        self.finished += 1
        return value

    def fail_outcomes(self, outcomes: list[Outcome], exc: BaseException) -> None:
        """Journaling these outcomes failed: their handles fail too (never hang a ``wait``)."""
        with self._cond:
            for outcome in outcomes:
                self._pending.pop(outcome.task.task_id, None)
                handle = cast(_StepState, outcome.task.owner).handle
                if not handle.done:
                    handle.fail(StepFailed(self.execution_id, handle.key,
                                           f"its result could not be journaled: {exc}"))
                    self.finished += 1
            self._cond.notify_all()

    def _running_now(self) -> dict[int, tuple[Task, float]]:
        """This run's attempts running now, by task id, with when each started (asked of the executor)."""
        executor = self._executor
        if executor is None:
            return {}
        return {task.task_id: (task, started) for task, started in executor.running() if task.consumer is self}

    def in_flight(self) -> list[tuple[str, str, int, StepStatus, str, float | None]]:
        """``(step key, step name, attempt, status, worker, started_at)`` of every attempt queued,
        waiting for a retry or running (the monitor's view of a run it joins midway)."""
        running = self._running_now()
        with self._cond:
            found: list[tuple[str, str, int, StepStatus, str, float | None]] = []
            for task_id, state in self._pending.items():
                key = state.handle.key
                if state.ended:
                    continue
                if task_id in running:
                    task, started = running[task_id]
                    found.append((key, state.step.name, state.attempt, StepStatus.RUNNING, task.worker, started))
                elif key in self.retrying:
                    found.append((key, state.step.name, state.attempt, StepStatus.RETRYING, "", None))
                else:
                    found.append((key, state.step.name, state.attempt, StepStatus.SCHEDULED, "", None))
            return found

    def beat(self) -> RunBeat:
        """What the heartbeat journals of this run: its counts, and each running attempt with what it
        printed so far (listed as interrupted if this process dies)."""
        running = self._running_now()
        with self._cond:
            rows = []
            for task_id, state in self._pending.items():
                if task_id in running:
                    task, started = running[task_id]
                    captured = self._streamed.get(task_id)
                    rows.append(InFlightRow(self.execution_id, self.run_number, state.handle.key, state.step.name,
                                            state.seq, state.definition.code_hash, state.args_hash,
                                            state.args_preview, state.attempt, started, task.worker or None,
                                            None if captured is None else captured.close()))
            executed = self.finished - self.reused - self.never_started
            return RunBeat(self.execution_id, self.run_number, executed, self.reused, rows)

    def output_so_far(self, step_key: str) -> tuple[int, str] | None:
        """``(attempt, text)`` a running attempt of ``step_key`` printed so far (its first 16 KiB and last
        64 KiB, ``capture``), or ``None`` when no attempt of it is running here."""
        with self._cond:
            for task_id, state in self._pending.items():
                if state.handle.key == step_key:
                    captured = self._streamed.get(task_id)
                    return state.attempt, ("" if captured is None else captured.close() or "")
        return None

    def progress(self, listed: int = 8) -> RunProgress:
        """This run's progress now (its running and failed steps listed up to ``listed`` each, the
        longest running first). Counters are read under the run's lock, so they add up."""
        from ._progress import FailedStep, RunningStep, RunProgress  # views only: dataclasses stay unloaded

        running = self._running_now()
        now = time.time()
        with self._cond:
            total, finished, reused = self.total, self.finished, self.reused
            failed = [FailedStep(key, attempts, message) for key, (attempts, message) in self.failures.items()]
            cancelled, retrying, retries = self.cancelled_steps, len(self.retrying), self.retries
            executed = finished - reused - self.never_started
            steps = []
            for task_id, state in self._pending.items():
                if task_id in running:
                    task, started = running[task_id]
                    steps.append(RunningStep(state.handle.key, state.step.name, state.attempt, task.worker,
                                             started, max(0.0, now - started)))
        in_flight = total - finished
        steps.sort(key=lambda step: -step.elapsed)
        running_count = min(len(steps), in_flight)
        queues = self._backlog()
        queued = min(sum(queue.waiting for queue in queues), in_flight - running_count)
        retrying = min(retrying, in_flight - running_count - queued)
        return RunProgress(
            self.execution_id, self.run_number, total, finished, reused, executed,
            completed=max(0, finished - reused - len(failed) - cancelled), failed=len(failed),
            cancelled=cancelled, retrying=retrying, running=running_count,
            scheduled=max(0, in_flight - running_count - retrying - queued), retries=retries,
            running_steps=tuple(steps[:listed]), failed_steps=tuple(failed[:listed]), at=now,
            queued=queued, queues=queues)

    def _backlog(self) -> tuple[QueueBacklog, ...]:
        """This run's attempts held back by their queue's limit, per queue (asked of the executor)."""
        from ._progress import QueueBacklog
        executor = self._executor
        if executor is None:
            return ()
        waiting: dict[Any, int] = {}
        for task in executor.held():
            if task.consumer is self:
                waiting[task.limit] = waiting.get(task.limit, 0) + 1
        return tuple(QueueBacklog(limit.name, count, limit.active, limit.concurrency,
                                  None if limit.rate is None else f"{limit.rate[0]}/{limit.rate[1]:g}s")
                     for limit, count in sorted(waiting.items(), key=lambda item: item[0].name))

    def cancel_pending(self, timeout: float = 10.0) -> None:
        """Cancel every attempt still queued or running for this execution, and wait until the
        cancellations are journaled (so the run's final record comes after them)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self.closing = True  # no retry may start from now on
            pending = bool(self._pending)
        while pending and self._executor is not None and time.monotonic() < deadline:
            self._executor.cancel(self)
            with self._cond:
                if self._pending:
                    self._cond.wait(0.2)
                pending = bool(self._pending)

    def pass_deadline(self) -> None:
        """The run's deadline passed (its timer's thread): stop its steps; the body fails with
        ``DeadlineExceeded`` at its next step call or wait. A run already cancelled stays cancelled."""
        if self.cancelled:
            return
        self.deadline_passed = True
        self.cancel(origin="its deadline")

    def cancel(self, interrupted: bool = False, origin: str | None = None) -> None:
        """Stop the run; ``interrupted`` records it as interrupted (Ctrl-C) rather than cancelled.
        ``origin`` says who asked (journaled with the run's end)."""
        self.interrupted = self.interrupted or interrupted
        if origin is not None and self.cancel_origin is None:
            self.cancel_origin = origin
        self.cancelled = True
        self.cancel_pending()
        with self._cond:
            self._cond.notify_all()
            children = list(self.children)
        for child in children:  # its children stop with it (each cancels its own)
            if not child.cancelled:
                child.cancel(interrupted, origin=f"its parent execution {self.execution_id!r}")

    def adopt(self, child: RunState) -> None:
        """A run this run's body started: cancelled when this one is."""
        with self._cond:
            self.children.append(child)
        if self.cancelled:
            child.cancel(self.interrupted, origin=f"its parent execution {self.execution_id!r}")

    def child_id(self, workflow: str) -> str:
        """The id of an execution this body starts without one: this execution's id, ``/``, the workflow's
        name and its occurrence among the body's children of that workflow (``nightly/load#0``). A replay
        gives the same id whatever the child's input, so it finds the child's journaled run."""
        depth, run = 0, cast("RunState | None", self)
        while run is not None:
            depth, run = depth + 1, run.parent
        if depth >= MAX_CHILD_DEPTH:
            raise DefinitionError(f"execution {self.execution_id[:200]!r} starts {workflow!r} with children nested "
                                  f"{MAX_CHILD_DEPTH} deep: a workflow that starts itself without end?")
        key = self._keys.key(Kind.CHILD, workflow)
        return f"{self.execution_id}/{key.removeprefix(PREFIXES[Kind.CHILD])}"


# --- executing a workflow ----------------------------------------------------------------------


def execute(execution: Execution, workflow: WorkflowDef, data: Any, options: RunOptions = DEFAULT_OPTIONS,
            plan: RunPlan | None = None) -> None:
    """Run (or resume) ``execution`` in the calling thread; the outcome lands on ``execution``.

    ``execution`` must be the one ``claim`` registered for its id (or none may be registered).
    ``options``: checked (``RunOptions.make``); ``plan``: a control action's (restart, rerun, retry, fork,
    recover), else None."""
    journal = journal_of(execution)
    execution_id = execution.execution_id
    runtime.enter(execution)
    # Worker processes take longer to start than the journal to open: start them meanwhile. An open
    # journal answers at once, so the pool waits to be needed (a finished re-run needs none).
    opening = threading.Event()
    started = None if journal.is_open else runtime.prestart(options.workers, options.executor, opening)
    try:
        with handover.hold_for_run(journal, opening.set):
            opening.set()
            _execute_held(execution, workflow, data, options, plan)
    except BaseException as exc:
        execution.fail(exc)
        raise
    finally:
        if started is not None and run_of(execution) is None:  # no run: the pool was not needed
            runtime.stop_if_unused(started)
        suspended = execution.suspension
        if suspended is not None and execution.error is None and not handover.is_handover(suspended[0]):
            continuer.add(execution, workflow, data, options, execute)  # continued here when due
        else:
            runtime.release(execution)
            execution.set_done()
        if events.active:
            events.publish(ExecutionEvent(execution_id, execution.status, workflow.name,
                                          execution.run_number, str(journal.path),
                                          None if execution.error is None else str(execution.error)))


def _execute_held(execution: Execution, workflow: WorkflowDef, data: Any, options: RunOptions,
                  plan: RunPlan | None) -> None:
    journal = journal_of(execution)
    execution_id = execution.execution_id
    on_change = options.on_change
    workflow_hash, input_hash = execution.fingerprint or fingerprint(workflow, data)
    stored = journal.pickled_execution(execution_id)
    # A restart, rerun or retry runs a completed execution again: only a plain run returns its output.
    again = plan is not None and plan.trigger in _RUN_AGAIN
    forked = plan.fork_from[0] if plan is not None and plan.fork_from is not None and stored is None else None
    checked = stored is not None and options.value_store is not None  # another folder is refused, even if done
    value_store = stores.choose(journal, execution_id, True, options.value_store) if checked else None
    if stored is not None and stored.status == ExecutionStatus.COMPLETED.value and not again:
        unchanged = stored.input_hash == input_hash and stored.def_id == workflow_hash
        if unchanged:
            try:
                output = stores.load(journal, execution_id, stored.output) if stored.output is not None else None
            except ValueLost as exc:  # its steps are reused; the body runs again to make its output
                logger.warning("zart: execution %r runs again: %s", execution_id, exc)
            else:
                execution.finish(ExecutionStatus.COMPLETED, output)
                return
        elif on_change == "error":
            what = "input" if stored.input_hash != input_hash else _code_change(execution, workflow)
            raise NonDeterminism(f"execution {execution_id!r} completed with a different {what}, "
                                 "and on_change='error'")
    if not checked:
        value_store = stores.choose(journal, execution_id, stored is not None, options.value_store, forked)
    store = (str(stores.folder(journal.path, value_store)), values.threshold())
    # A large input journaled by an earlier run with the same hash is not written to the store again
    same = None if stored is None or stored.input_hash != input_hash else \
        values.kept(stored.input, data, Path(store[0]))
    try:  # only a run needs the input's pickle: a completed execution returned above
        input_blob, input_preview = same if same is not None else values.dumps(  # a table: Parquet, as the output
            data, store, (execution_id, values.INPUT_KEY),
            values.input_table_name(execution_id, None if stored is None else stored.input, input_hash))
    except Exception as exc:
        if isinstance(exc, ValueStoreError):
            raise
        raise SerializationError(f"the input of execution {execution_id!r} cannot be pickled: {exc}") \
            from exc
    if plan is not None and plan.fork_from is not None and stored is None:
        journal.copy_steps(plan.fork_from[0], execution_id, plan.fork_from[1])
    mark = runtime.run_opened(options.workers)
    try:
        _run_body(execution, workflow, data, options, plan, input_blob, input_preview, input_hash,
                  workflow_hash, store, value_store, new=stored is None and plan is None, overlap=mark,
                  replaced=None if stored is None or same is not None else stored.input)
    finally:
        runtime.run_closed()


def _code_change(execution: Execution, workflow: WorkflowDef) -> str:
    """What changed in a completed execution's workflow code: the steps whose function's code hash is
    not the one journaled with their steps, else the workflow body or a helper."""
    journaled = journal_of(execution).step_code_hashes(execution.execution_id)
    changed = sorted({step.name for step in referenced_steps(workflow.definition)
                      if step.name in journaled and ser.code_hash(step.fn) not in journaled[step.name]})
    if changed:
        names = ", ".join(repr(name) for name in changed)
        return (f"workflow code: step{'s' if len(changed) > 1 else ''} {names} changed (the code hash of "
                "the step function the workflow refers to differs from the one journaled with its steps)")
    return ("workflow code: the workflow body or a helper it calls changed (no step it refers to "
            "has a code hash other than the one journaled with its steps)")


def _run_body(execution: Execution, workflow: WorkflowDef, data: Any, options: RunOptions,
              plan: RunPlan | None, input_blob: bytes, input_preview: str, input_hash: str, workflow_hash: str,
              store: tuple[str, int] | None = None, value_store: str | None = None, *, new: bool = False,
              overlap: int | None = None, replaced: bytes | None = None) -> None:
    """``new``: the journal had no row for the execution before this run (and no control action
    copies steps into it), so it has no steps to replay: none are read. ``overlap``: the run's mark
    from ``runtime.run_opened`` (its printed lines name it once another run was open beside it).
    ``replaced``: the input journaled before this run, when ``input_blob`` was written anew (its file,
    if any, is freed once the run is journaled with the new one)."""
    journal = journal_of(execution)
    execution_id = execution.execution_id
    on_change, workers, executor = options.on_change, options.workers, options.executor
    # A cluster is reached before the run is journaled, so a wrong address costs no run record.
    remote = runtime.get_executor(workers, executor) if choice.target(executor) is not None else None
    definition = None
    if not journal.has_definition(workflow_hash):
        try:
            blob = ser.dumps_by_value(workflow.journaled)  # a @zart.workflow keeps its on_failure, ...
        except Exception as exc:
            raise SerializationError(f"workflow {workflow.name!r} cannot be pickled into the journal: "
                                     f"{exc}") from exc
        definition = (workflow_hash, "workflow", workflow.name, ser.source_of(workflow.definition), blob)
    run_number, deadline, deaths = journal.begin_run(
        execution_id, workflow.name, workflow_hash, input_blob, input_hash, input_preview, on_change, definition,
        deadline_at(workflow.deadline, time.time()), workflow.max_recoveries is not None,
        **({} if plan is None else {"trigger": plan.trigger, "trigger_detail": plan.detail,
                                    "new_deadline": plan.new_deadline, "extend": plan.extend,
                                    "lease": suspension.owner() if plan.lease else None}))
    if replaced is not None and input_blob[0] == _REF_FIRST:
        stores.free_replaced(journal, value_store, replaced, input_blob)
    # The run is journaled: the monitor may serve it now, in every process (a finished re-run returned before
    # and never loads it). Served earlier, a client that came as the endpoint appeared read no such execution.
    from ._actions import start_monitor

    runtime.serve(journal, lambda held: start_monitor(held, execute))
    # A new execution has no steps (a deletion removes them with the execution's row): reading them would
    # fold the side log first, ~10 ms before the first step of a fresh process's first run.
    stored = {} if new else journal.pickled_steps(execution_id)
    if plan is not None and (plan.redo or plan.redo_all):
        _mark_redo(stored, plan)
    if plan is not None and plan.retry is not None:
        _mark_fail_again(stored, plan.retry)
    run = RunState(journal, execution_id, run_number, stored, on_change, workers, executor, store, value_store)
    run._executor = remote
    run.output_sinks = execution.output_sinks
    run.overlap_mark = overlap
    execution.attach(run)
    asked = handover.desk.asked(journal)  # begun while zart serve hands the journal over: stops at once
    if asked is not None:  # (after attach: a request from now on finds the run itself)
        run.hand_over(asked)
    if execution.cancel_requested:  # before its run existed
        run.cancelled = True
        run.interrupted = execution.interrupt_requested
        run.cancel_origin = execution.cancelled_by
    if events.active:
        events.publish(ExecutionEvent(execution_id, ExecutionStatus.RUNNING, workflow.name, run_number,
                                      str(journal.path)))
    if workflow.max_recoveries is not None and deaths >= workflow.max_recoveries:
        _give_up(execution, run, RecoveriesExhausted(execution_id, deaths), RunEnd.FAILED,
                 f"its process died in {deaths} runs (max_recoveries={workflow.max_recoveries})")
    timer = None if deadline is None else _watch_deadline(run, deadline)
    outer = _context.current_run()
    run.parent = outer if isinstance(outer, RunState) else None
    if run.parent is not None:
        journal.set_parent(execution_id, run.parent.execution_id)
        run.parent.adopt(run)
    token = _context.enter_run(run)
    try:
        if run.deadline_passed:
            raise Cancelled(f"execution {execution_id!r} passed its deadline")
        if input_blob[0] == _REF_FIRST and tableinput.is_table(input_blob):
            data = run.table_input(data, input_blob, input_hash)  # as stored, on every run (``_tableinput``)
        output = workflow.body(data)
        if inspect.isawaitable(output):
            output = _run_coroutine(output)
        if run.cancelled:
            raise Cancelled(f"execution {execution_id!r} was cancelled")
    except Suspend as suspended:
        _suspend_run(execution, run, suspended)
        return
    except (Cancelled, KeyboardInterrupt) as exc:
        if run.deadline_passed and deadline is not None and not isinstance(exc, KeyboardInterrupt):
            _past_deadline(execution, workflow, run, data, deadline)
            return
        run.cancel(interrupted=isinstance(exc, KeyboardInterrupt))
        status = ExecutionStatus.INTERRUPTED if run.interrupted else ExecutionStatus.CANCELLED
        execution.finish(status, error=exc)
        if run.interrupted:
            end, detail = RunEnd.INTERRUPTED, "by its user (Ctrl-C or the stop button)"
        else:
            end, detail = RunEnd.CANCELLED, f"cancelled from {run.cancel_origin or 'this process'}"
        journal.finish_run(execution_id, run_number, status, error=f"{type(exc).__name__}: {_text(exc)}",
                           executed=run.ran, reused=run.reused, ended_by=end, end_detail=detail)
        raise
    except BaseException as exc:
        if run.deadline_passed and deadline is not None:  # a step stopped by it, or the body noticed it
            _past_deadline(execution, workflow, run, data, deadline)
            return
        run.cancel_pending()
        error = exc if isinstance(exc, ZartError) else None
        if error is None:
            error = TaskError(execution_id, f"{type(exc).__name__}: {_text(exc)}")
            error.__cause__ = exc
        if _recover(execution, workflow, run, data, error):
            return
        execution.finish(ExecutionStatus.FAILED, error=error)
        try:
            traceback = tb_module.format_exc()
        except BaseException:  # noqa: BLE001 - an exception whose __str__ fails breaks the formatter
            traceback = "".join(tb_module.format_tb(exc.__traceback__))
        journal.finish_run(execution_id, run_number, ExecutionStatus.FAILED, error=_text(exc),
                           traceback=ser.cap_text(traceback), executed=run.ran, reused=run.reused)
        if error is exc:
            raise
        raise error from exc
    finally:
        _context.leave_run(token)
        if timer is not None:
            timer.cancel()
    run.cancel_pending()  # steps scheduled but never waited for do not outlive their execution
    try:
        output_blob, output_preview = values.dumps(output, run.store, (execution_id, values.OUTPUT_KEY))
    except Exception as exc:
        stored_error = exc if isinstance(exc, ValueStoreError) else SerializationError(
            f"the output of execution {execution_id!r} cannot be pickled: {exc}")  # not a store's refusal
        execution.finish(ExecutionStatus.FAILED, error=stored_error)
        journal.finish_run(execution_id, run_number, ExecutionStatus.FAILED, error=str(stored_error),
                           executed=run.ran, reused=run.reused)
        raise stored_error from exc
    journal.finish_run(execution_id, run_number, ExecutionStatus.COMPLETED, output_blob,
                       output_preview, executed=run.ran, reused=run.reused)
    execution.finish(ExecutionStatus.COMPLETED, output)


_RUN_AGAIN = frozenset({RunTrigger.RESTART, RunTrigger.RERUN, RunTrigger.RETRY})


def _suspend_run(execution: Execution, run: RunState, suspended: Suspend) -> None:
    """The body unwound at a long sleep or wait: the steps in flight finish (journaled), then the run
    ends ``sleeping``/``waiting`` with what it waits for and the lease (``_suspend``)."""
    run.finish_pending()
    run.cancel_pending()  # anything a cancel left queued
    now = time.time()
    # A ``zart wake`` meanwhile went into the file (the sleep's row): the journaled wake time is the
    # earlier of the two, read in the transaction that suspends.
    wake_at = cast("float | None", run.journal.transact(
        suspension.suspend, run.execution_id, run.run_number, suspended.status, suspended.waits_for,
        suspended.wake_at, suspension.owner(),
        suspended.wake_at if suspended.handed_over else lease_until(now), run.ran,
        run.reused, now, suspended.describe(), suspended.sleep_key))
    execution.suspend(suspended.status, suspended.waits_for, wake_at)


def _mark_redo(stored: dict[str, StoredStep], plan: RunPlan) -> None:
    """Make the completed records a plan runs again look unusable to replay (``decide``: requested)."""
    for key, record in stored.items():
        if record.status is StepStatus.COMPLETED and (plan.redo_all or key in plan.redo):
            stored[key] = record._replace(status=REDO)


def _mark_fail_again(stored: dict[str, StoredStep], retried: str) -> None:
    """A retry runs ``retried`` again and no other failed step: those fail again as journaled when reached."""
    for key, record in stored.items():
        if record.status is StepStatus.FAILED and key != retried:
            stored[key] = record._replace(status=FAIL_AGAIN)


def _watch_deadline(run: RunState, deadline: float) -> threading.Timer | None:
    """A timer that stops ``run`` at ``deadline``; none when it passed already (the run is marked)."""
    remaining = deadline - time.time()
    if remaining <= 0:
        run.deadline_passed = True
        return None
    timer = threading.Timer(remaining, run.pass_deadline)
    timer.daemon = True
    timer.name = f"zart-deadline-{run.execution_id}"
    timer.start()
    return timer


def _past_deadline(execution: Execution, workflow: WorkflowDef, run: RunState, data: Any, deadline: float) -> None:
    """The run is past its deadline: its steps stop, and it fails with DeadlineExceeded (raised), unless
    its on_failure handler recovers it (then it returns)."""
    run.cancel_pending()
    error = DeadlineExceeded(execution.execution_id, deadline)
    if _recover(execution, workflow, run, data, error):
        return
    moment = datetime.fromtimestamp(deadline, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    _give_up(execution, run, error, RunEnd.DEADLINE_EXCEEDED, f"its deadline ({moment}) passed")


def _recover(execution: Execution, workflow: WorkflowDef, run: RunState, data: Any, error: BaseException) -> bool:
    """Run the workflow's on_failure handler (a journaled call of its own kind: a resumed run reuses
    it) on ``error``; when it returns, its value is the output and the execution is completed (True).
    A handler that fails leaves the execution failed, its error noted on ``error`` (False)."""
    handler = workflow.on_failure
    if handler is None:
        return False
    run.cancelled = False  # after a deadline the handler still runs; its steps were stopped
    cause = error.__cause__  # pickling drops it: it travels beside the error, if it can
    try:
        ser.dumps(cause)
    except Exception:
        cause = None
    try:
        # Reused by the input and what failed (a step's error text, e.g. its traceback, may vary)
        identity = (data, type(error).__qualname__, getattr(error, "step_key", None))
        output = run.schedule(handler, (data, error, cause), {}, kind=Kind.ON_FAILURE, identity=identity).result()
        output_blob, output_preview = values.dumps(output, run.store,
                                                   (execution.execution_id, values.OUTPUT_KEY))
    except BaseException as exc:  # noqa: BLE001 - reported on the execution's own error
        error.add_note(f"zart: its on_failure handler failed too: {type(exc).__name__}: {_text(exc)}")
        return False
    run.cancel_pending()
    journal = journal_of(execution)
    journal.finish_run(execution.execution_id, run.run_number, ExecutionStatus.COMPLETED, output_blob,
                       output_preview, executed=run.ran, reused=run.reused, ended_by=RunEnd.RECOVERED,
                       end_detail=f"recovered by on_failure from {type(error).__name__}: {_text(error)}")
    execution.finish(ExecutionStatus.COMPLETED, output)
    return True


def _give_up(execution: Execution, run: RunState, error: ZartError, end: RunEnd, detail: str) -> None:
    """Fail ``run`` with ``error`` (its deadline passed, its process died too often) and raise it."""
    execution.finish(ExecutionStatus.FAILED, error=error)
    run.journal.finish_run(run.execution_id, run.run_number, ExecutionStatus.FAILED, error=str(error),
                           executed=run.ran, reused=run.reused, ended_by=end, end_detail=detail)
    raise error from None


def _text(exc: BaseException) -> str:
    """``str(exc)`` cut to a journal-sized length; user code may make ``__str__`` fail."""
    try:
        text = str(exc)
    except BaseException as error:  # noqa: BLE001 - reported, not raised
        text = f"<str() of the {type(exc).__name__} raised {type(error).__name__}>"
    return ser.cap_text(text)


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _run_coroutine(awaitable: Any) -> Any:
    """Run an async workflow body to completion from this (blocking) thread.

    In Jupyter the cell's thread already runs an event loop, where ``asyncio.run`` is refused: the
    body then runs on a thread of its own, in a copy of this context (so it sees its run)."""
    import asyncio  # only async workflows pay for it

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_await(awaitable))
    context = contextvars.copy_context()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = context.run(asyncio.run, _await(awaitable))
        except BaseException as exc:  # carried back to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="zart-async-workflow", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def fingerprint(workflow: WorkflowDef, data: Any) -> tuple[str, str]:
    """``(code hash of the workflow, hash of its input)``: what makes two runs of one id the same."""
    journaled = tableinput.journaled_hash(data)  # a table input a resume loaded: its journaled hash
    try:
        return ser.code_hash(workflow.definition), journaled or ser.args_hash((data,), {})
    except SerializationError as exc:
        raise SerializationError(f"the input of workflow {workflow.name!r} cannot be pickled: {exc}") from exc


def check_execution_id(execution_id: object) -> None:
    """An execution id is a non-empty string that UTF-8 can store."""
    if not isinstance(execution_id, str) or not execution_id:
        raise ConfigurationError(f"execution_id must be a non-empty string, got {execution_id!r}")
    try:
        execution_id.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigurationError(f"execution_id {execution_id!r} is not valid text (a lone surrogate?)") \
            from None


def claim(journal: Journal, execution_id: str, workflow: WorkflowDef, data: Any,
          on_change: str) -> tuple[Execution, bool]:
    """Register a new execution of this id in this process, or find the one already running.

    Returns ``(execution, is_new)``. Joining is refused when the running one has another workflow
    code or input (a ``DefinitionError``, or ``NonDeterminism`` with ``on_change="error"``)."""
    check_execution_id(execution_id)
    mark = fingerprint(workflow, data)
    current, is_new = runtime.claim(journal, execution_id, Execution, mark)
    if is_new:
        return current, True
    outer = _context.current_run()
    while outer is not None:
        if isinstance(outer, RunState) and outer.journal is journal and outer.execution_id == execution_id:
            raise DefinitionError(f"execution {execution_id!r} would wait for itself: a workflow cannot "
                                  "run its own execution (give the inner run another execution_id)")
        outer = getattr(outer, "parent", None)
    if current.fingerprint is not None and current.fingerprint != mark:
        what = "input" if current.fingerprint[1] != mark[1] else "workflow code"
        error = NonDeterminism if on_change == "error" else DefinitionError
        raise error(f"execution {execution_id!r} is running in this process with a different {what}; "
                    "wait for it, cancel it, or use another execution_id")
    return current, False


def release(execution: Execution) -> None:
    """Forget a claimed execution that will not run."""
    runtime.release(execution)
    execution.set_done()
