"""The control actions on journaled executions (resume, recover, restart, rerun, retry, fork) as plans,
the engine-side monitor control that runs them for another process, and the handle that follows a run
through the monitor endpoint of the process that runs it.

A plan (:class:`Prepared`) is read from the journal while it is held: the journaled workflow and input,
and a :class:`RunPlan` saying what starts the run and which journaled steps it runs again. The engine
(``_engine.execute``) applies it; this module never imports the engine (it is handed its ``execute``),
so ``_control_api`` (the public functions) and the monitor server can both use it.
"""
from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import _serialization as ser
from . import _stores as stores
from . import _tableinput as tableinput
from ._control import EngineControl, follow
from ._control import start_monitor as start_control_monitor
from ._definitions import WorkflowDef, as_workflow
from ._errors import (
    Cancelled,
    ConfigurationError,
    ExecutionNotFound,
    ExecutionTimeout,
    MonitorError,
    StateConflict,
    TaskError,
    ZartError,
)
from ._handles import Execution
from ._journal import Journal
from ._options import RunOptions, RunPlan
from ._runtime import runtime
from ._status import ExecutionStatus, RunEnd, RunTrigger, StepStatus

if TYPE_CHECKING:
    from ._monitor.client import MonitorClient
    from ._records import ExecutionRecord

logger = logging.getLogger("zart_nb")

Execute = Callable[..., None]
SAME = object()  # ``data`` not given: the journaled input
RUN_START_WAIT = 30.0
_POLL = 0.01
MAX_DETAIL = 500


@dataclass(frozen=True, slots=True)
class Prepared:
    """A control action read from the journal: what to run and how (see :class:`RunPlan`).
    ``stale``: reused steps after a rerun's first one in call order, which may depend on it."""

    execution_id: str
    workflow: WorkflowDef
    data: Any
    plan: RunPlan
    stale: tuple[str, ...] = ()


def _journaled(journal: Journal, execution_id: str) -> tuple[WorkflowDef, Any, ExecutionStatus]:
    """``(workflow, input, status)`` of a journaled execution, from its journaled definition (it
    unpickles: only for running it)."""
    stored = journal.pickled_execution(execution_id)
    if stored is None:
        raise ExecutionNotFound(execution_id, journal.path)
    _, _, blob = journal.pickled_definition(stored.def_id)
    workflow = as_workflow(ser.loads(blob), stored.workflow)
    data = tableinput.load(journal, execution_id, stored.input, stored.input_hash)
    return workflow, data, ExecutionStatus(stored.status)


def _not_running(journal: Journal, execution_id: str, status: ExecutionStatus, action: str) -> None:
    live = runtime.live_execution(journal, execution_id)
    if (live is not None and not live.done) or status in (ExecutionStatus.RUNNING, ExecutionStatus.PENDING):
        raise StateConflict(execution_id, ExecutionStatus.RUNNING.value,
                            f"cancel it (or wait for it) before you {action} it")


def _detail(text: str) -> str:
    return text if len(text) <= MAX_DETAIL else text[:MAX_DETAIL - 3] + "..."


def prepare_resume(journal: Journal, execution_id: str, *, extend: float | None = None,
                   trigger: RunTrigger = RunTrigger.RESUME) -> Prepared:
    """The next run of an unfinished execution; ``extend`` moves its deadline that many seconds later."""
    if extend is not None and (isinstance(extend, bool) or not isinstance(extend, (int, float))
                               or not math.isfinite(extend) or extend <= 0):
        raise ConfigurationError(f"extend must be a positive number of seconds, got {extend!r}")
    workflow, data, status = _journaled(journal, execution_id)
    if status is ExecutionStatus.COMPLETED:
        raise StateConflict(execution_id, ExecutionStatus.COMPLETED.value,
                            "nothing to resume (zart.restart runs it again from scratch)")
    _not_running(journal, execution_id, status, "resume")
    detail = None if extend is None else f"deadline extended by {extend:g}s"
    return Prepared(execution_id, workflow, data, RunPlan(trigger, detail, extend=extend))


def prepare_restart(journal: Journal, execution_id: str) -> Prepared:
    """A new run of the same id and input from scratch (every journaled step runs again; earlier runs
    are kept); its deadline counts from now."""
    workflow, data, status = _journaled(journal, execution_id)
    _not_running(journal, execution_id, status, "restart")
    return Prepared(execution_id, workflow, data,
                    RunPlan(RunTrigger.RESTART, f"was {status.value}", redo_all=True, new_deadline=True))


def _order(journal: Journal, execution_id: str) -> list[tuple[str, int, str]]:
    return journal.step_order(execution_id)


def prepare_rerun(journal: Journal, execution_id: str, steps: Sequence[str], after: bool = False) -> Prepared:
    """A new run that runs the journaled ``steps`` again (with ``after``, every step from the first of
    them on in call order) and reuses the rest."""
    if isinstance(steps, str) or not steps or not all(isinstance(key, str) and key for key in steps):
        raise ConfigurationError(f"steps must be a non-empty list of step keys, got {steps!r}")
    workflow, data, status = _journaled(journal, execution_id)
    _not_running(journal, execution_id, status, "rerun steps of")
    order = _order(journal, execution_id)
    seqs = {key: seq for key, seq, _ in order}
    unknown = [key for key in steps if key not in seqs]
    if unknown:
        known = ", ".join(key for key, _, _ in order[:10]) or "none"
        raise ConfigurationError(f"execution {execution_id!r} has no step {', '.join(map(repr, unknown))} "
                                 f"(its steps: {known}{', ...' if len(order) > 10 else ''})")
    first = min(seqs[key] for key in steps)
    named = set(steps)
    redo = frozenset(key for key, seq, _ in order if key in named or (after and seq >= first))
    stale = tuple(key for key, seq, state in order
                  if seq > first and key not in redo and state == StepStatus.COMPLETED.value)
    what = ", ".join(steps) + (" and every step after" if after else "")
    detail = f"steps {what}" + (f"; reused after them, maybe stale: {', '.join(stale)}" if stale else "")
    return Prepared(execution_id, workflow, data, RunPlan(RunTrigger.RERUN, _detail(detail), redo=redo), stale)


def prepare_retry(journal: Journal, execution_id: str, step_key: str) -> Prepared:
    """A new run of an unfinished execution that runs its failed (or cancelled) step ``step_key`` again
    and continues it; its completed steps are reused."""
    if not isinstance(step_key, str) or not step_key:
        raise ConfigurationError(f"step_key must be a non-empty string, got {step_key!r}")
    workflow, data, status = _journaled(journal, execution_id)
    _not_running(journal, execution_id, status, "retry a step of")
    found = {key: state for key, _, state in _order(journal, execution_id)}
    if step_key not in found:
        raise ConfigurationError(f"execution {execution_id!r} has no step {step_key!r}")
    if found[step_key] not in (StepStatus.FAILED.value, StepStatus.CANCELLED.value, StepStatus.INTERRUPTED.value):
        raise StateConflict(execution_id, "", f"step {step_key!r} of {execution_id!r} is {found[step_key]}; "
                            "only a failed, cancelled or interrupted step can be retried (zart.rerun_steps runs "
                            "a completed one again)")
    return Prepared(execution_id, workflow, data, RunPlan(RunTrigger.RETRY, f"step {step_key}", retry=step_key))


def prepare_fork(journal: Journal, execution_id: str, from_step: str, new_id: str | None = None,
                 data: Any = SAME) -> Prepared:
    """A new execution (``new_id``, default ``<id>-fork-N``) that reuses ``execution_id``'s completed
    steps before ``from_step`` in call order and runs ``from_step`` and what follows; ``data``: a new
    input (default: the original's)."""
    if not isinstance(from_step, str) or not from_step:
        raise ConfigurationError(f"from_step must be a non-empty string, got {from_step!r}")
    workflow, original, _ = _journaled(journal, execution_id)
    order = _order(journal, execution_id)
    seqs = {key: seq for key, seq, _ in order}
    if from_step not in seqs:
        raise ConfigurationError(f"execution {execution_id!r} has no step {from_step!r}")
    if new_id is None:
        number = 1
        while journal.execution_status(f"{execution_id}-fork-{number}") is not None:
            number += 1
        new_id = f"{execution_id}-fork-{number}"
    elif not isinstance(new_id, str) or not new_id:
        raise ConfigurationError(f"new_id must be a non-empty string, got {new_id!r}")
    if journal.execution_status(new_id) is not None:
        raise StateConflict(new_id, "", f"execution {new_id!r} exists already; give the fork another new_id")
    copied = tuple(key for key, seq, state in order
                   if seq < seqs[from_step] and state == StepStatus.COMPLETED.value)
    detail = f"from {execution_id} at step {from_step} ({len(copied)} steps before it copied)"
    if data is not SAME:
        detail += ", with a new input"
    return Prepared(new_id, workflow, original if data is SAME else data,
                    RunPlan(RunTrigger.FORK, _detail(detail), fork_from=(execution_id, copied)))


def recoverable(journal: Journal) -> list[str]:
    """Ids of the executions whose last run ended because its process died (not those interrupted or
    cancelled on purpose), oldest first; read while ``journal`` is held."""
    from ._journal.reader import FileJournalReader

    records = FileJournalReader(journal).list_executions(ExecutionStatus.INTERRUPTED, limit=100_000)
    return [record.execution_id for record in sorted(records, key=lambda r: (r.created_at is None, r.created_at))
            if record.ended_by is RunEnd.PROCESS_DIED]


# --- running a plan in the engine's process (the monitor's control actions) ---------------------------


def start_here(journal: Journal, prepared: Prepared, execute: Execute,
               options: RunOptions | None = None) -> Execution:
    """Run ``prepared`` in this process on a thread of its own; returns once its run has begun (its
    number is on the execution) or has failed to begin (that error is raised)."""
    execution = Execution(prepared.execution_id, journal)
    chosen = options or RunOptions()

    def run() -> None:
        try:
            execute(execution, prepared.workflow, prepared.data, chosen, prepared.plan)
        except BaseException as exc:  # the outcome is journaled and on the execution
            logger.info("zart: %s of execution %r ended: %s", prepared.plan.trigger.value,
                        prepared.execution_id, exc)

    execution.starting()
    threading.Thread(target=run, name=f"zart-{prepared.plan.trigger.value}-{prepared.execution_id}",
                     daemon=True).start()
    deadline = time.monotonic() + RUN_START_WAIT
    while execution.run_number is None and not execution.done and time.monotonic() < deadline:
        time.sleep(_POLL)
    if execution.run_number is None and execution.done:
        try:
            execution.result(0)
        except Cancelled as exc:
            raise StateConflict(prepared.execution_id, ExecutionStatus.CANCELLED.value,
                                f"it was cancelled before its run began: {exc}") from None
    return execution


def _started(execution: Execution, prepared: Prepared) -> dict[str, Any]:
    return {"started": True, "run": execution.run_number, "execution_id": prepared.execution_id,
            "stale": list(prepared.stale)}


class ActionControl(EngineControl):
    """The monitor server's control actions in the engine's process, the control actions included."""

    def __init__(self, journal: Journal, execute: Execute) -> None:
        super().__init__(journal)
        self._journal_ = journal
        self._execute_ = execute

    def _start(self, prepare: Callable[[], Prepared]) -> dict[str, Any]:
        with self._journal_.hold():
            prepared = prepare()
        return _started(start_here(self._journal_, prepared, self._execute_), prepared)

    def retry(self, execution_id: str, step_key: str) -> dict[str, Any]:
        return self._start(lambda: prepare_retry(self._journal_, execution_id, step_key))

    def resume(self, execution_id: str, extend: float | None = None,
               trigger: str | None = None) -> dict[str, Any]:
        chosen = RunTrigger.RECOVER if trigger == RunTrigger.RECOVER.value else RunTrigger.RESUME
        return self._start(lambda: prepare_resume(self._journal_, execution_id, extend=extend, trigger=chosen))

    def restart(self, execution_id: str) -> dict[str, Any]:
        return self._start(lambda: prepare_restart(self._journal_, execution_id))

    def rerun(self, execution_id: str, steps: list[str], after: bool = False) -> dict[str, Any]:
        return self._start(lambda: prepare_rerun(self._journal_, execution_id, steps, after))

    def fork(self, execution_id: str, from_step: str, new_id: str | None = None, data: Any = ...) -> dict[str, Any]:
        given = SAME if data is ... else data  # JSON from the request, never a pickle
        return self._start(lambda: prepare_fork(self._journal_, execution_id, from_step, new_id, given))

    def recover(self) -> dict[str, Any]:
        with self._journal_.hold():
            ids = recoverable(self._journal_)
        started = []
        for execution_id in ids:
            try:
                started.append(self.resume(execution_id, trigger=RunTrigger.RECOVER.value))
            except ZartError as exc:
                logger.warning("zart: cannot recover execution %r: %s", execution_id, exc)
        return {"started": started}


def start_monitor(journal: Journal, execute: Execute) -> Callable[[], None] | None:
    """The engine's monitor server for ``journal``, whose control runs the control actions too."""
    return start_control_monitor(journal, ActionControl(journal, execute))


# --- a run followed in the process that runs it ---------------------------------------------------------


class RemoteExecution:
    """A run of an execution in another process's engine, followed through its monitor endpoint.

    ``status`` asks that engine (or reads the file once it has released the journal); ``result``
    waits for the run to end and returns the output, read from the journal file (so it waits for the
    engine to release it, as :class:`JournalLocked` says when it does not in time)."""

    def __init__(self, path: str | os.PathLike[str], execution_id: str, run_number: int | None, pid: int,
                 stale: Sequence[str] = ()) -> None:
        self.path = str(path)
        self.execution_id = execution_id
        self.run_number = run_number
        self.pid = pid
        self.stale = tuple(stale)

    def __repr__(self) -> str:
        return f"<RemoteExecution {self.execution_id!r} run {self.run_number} in process {self.pid}>"

    def _record(self, timeout: float | None = 0.0) -> ExecutionRecord | None:
        from ._monitor.client import MonitorClient

        client = MonitorClient.connect(self.path)
        if client is None:
            return _record_in_file(self.execution_id, self.path)
        with client:
            return follow(client, self.execution_id, self.path, run=self.run_number, timeout=timeout)

    def wait(self, timeout: float | None = None) -> ExecutionRecord | None:
        """The execution's record once this run has ended (or when ``timeout`` ran out; None when it
        cannot be read any more). Reads no pickle: the output is its preview."""
        return self._record(timeout)

    @property
    def status(self) -> ExecutionStatus:
        """The execution's status now, as the journal or its holding engine reports it."""
        record = self._record(0.0)
        if record is None:
            raise ExecutionNotFound(self.execution_id, self.path)
        return record.status

    @property
    def done(self) -> bool:
        """True once the execution is no longer running or pending."""
        return self.status not in (ExecutionStatus.RUNNING, ExecutionStatus.PENDING)

    def result(self, timeout: float | None = None) -> Any:
        """The output once the run has ended (``ExecutionTimeout`` after ``timeout`` seconds); a failed,
        cancelled or interrupted one raises a ``TaskError`` with its journaled error."""
        record = self._record(timeout)
        if record is None:
            raise ExecutionNotFound(self.execution_id, self.path)
        if record.status in (ExecutionStatus.RUNNING, ExecutionStatus.PENDING):
            raise ExecutionTimeout(f"execution {self.execution_id!r} is still running in process {self.pid} "
                                   f"after {timeout}s")
        if record.status is not ExecutionStatus.COMPLETED:
            raise TaskError(self.execution_id, f"{record.status.value}: {record.error or 'no error journaled'}")
        journal = runtime.journal(self.path)
        with journal.hold():
            stored = journal.pickled_execution(self.execution_id)
        if stored is None:
            raise ExecutionNotFound(self.execution_id, self.path)
        return stores.load(journal, self.execution_id, stored.output) if stored.output is not None else None


def _record_in_file(execution_id: str, path: str) -> ExecutionRecord | None:
    from ._journal.reader import FileJournalReader

    reader = FileJournalReader(runtime.journal(path))
    try:
        return reader.execution_record(execution_id)
    finally:
        reader.close()


def remote(client: MonitorClient, reply: Any) -> RemoteExecution:
    """The handle of a run a control request started in ``client``'s engine, from the engine's reply."""
    if not isinstance(reply, dict) or not isinstance(reply.get("execution_id"), str):
        raise MonitorError(f"process {client.pid} answered a control request without an execution id")
    run = reply.get("run")
    stale = reply.get("stale") or []
    return RemoteExecution(client.path, reply["execution_id"], run if isinstance(run, int) else None, client.pid,
                           [key for key in stale if isinstance(key, str)])
