"""zart_nb: durable workflows for Jupyter notebooks.

A workflow is ordinary code calling *steps*; each step's result is journaled in a DuckDB file, so a
re-run (even after the kernel died) continues where it stopped. Scheduled steps run in parallel on
a warm pool of worker processes.

    import zart_nb as zart

    @zart.step("check-service")
    def check_service(service: str) -> dict: ...

    @zart.workflow("health-check")
    def health_check(services: list[str]) -> list[dict]:
        handles = [zart.schedule(check_service, s) for s in services]
        return zart.wait(handles)

    zart.run(health_check, ["auth-api", "payments"])
"""
# Names resolve lazily (PEP 562): a worker process imports ``zart_nb._executors.worker``, which runs this
# file first, and must not pay for the engine, the journal or the notebook layer it never uses.
import importlib
import os
import typing as _typing

if _typing.TYPE_CHECKING:
    from ._actions import RemoteExecution
    from ._api import DurableScheduler, TaskRegistry, run, schedule, start, wait
    from ._context import Context, context
    from ._control import ControlOutcome, cancel, delete
    from ._control_api import fork, recover, rerun_steps, restart, resume, retry_step
    from ._data import GcReport, gc, load, sql, stored
    from ._definitions import DurableExecution, NamedCall, Queue, RetryPolicy, Step, Workflow, step, workflow
    from ._durable import capture, now, sleep, sleep_until
    from ._errors import (
        Cancelled,
        ConfigurationError,
        DeadlineExceeded,
        DefinitionError,
        DefinitionNotFound,
        EventTimeout,
        ExecutionNotFound,
        ExecutionTimeout,
        ExecutorClosed,
        JournalCorrupt,
        JournalError,
        JournalLocked,
        JournalSchemaTooNew,
        MonitorError,
        NonDeterminism,
        NotInWorkflow,
        QueryError,
        RecoveriesExhausted,
        ScheduleNotFound,
        SerializationError,
        StateConflict,
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
    from ._events import Event, EventBus, ExecutionEvent, StepEvent, events
    from ._handles import Execution, StepHandle
    from ._maintenance import CompactReport, ScrubReport, compact, scrub
    from ._messages import MAX_JSON_BYTES, publish, published, send_event, stream, wait_for_event
    from ._monitor.client import MonitorClient, Subscription
    from ._options import OnChange, RunOptions
    from ._progress import FailedStep, QueueBacklog, RunEnd, RunningStep, RunProgress
    from ._reader import JournalReader
    from ._records import (
        AttemptRecord,
        DefinitionRecord,
        ExecutionRecord,
        PendingEvent,
        RunRecord,
        StepRecord,
        format_duration,
    )
    from ._retention import RetentionReport, garbage_collect
    from ._runtime import shutdown_pool
    from ._serve.recurring import (
        Schedule,
        pause_schedule,
        recurring,
        remove_schedule,
        resume_schedule,
        schedules,
    )
    from ._status import ExecutionStatus, RunReason, RunTrigger, StepStatus
    from ._stored import StoredValue
    from ._waiting import as_completed, call, wait_first

__version__ = "0.1.0"

# module -> the public names it defines
_EXPORTS: dict[str, tuple[str, ...]] = {
    "_actions": ("RemoteExecution",),
    "_api": ("DurableScheduler", "TaskRegistry", "run", "schedule", "start", "wait"),
    "_context": ("Context", "context"),
    "_control": ("ControlOutcome", "cancel", "delete"),
    "_control_api": ("fork", "recover", "restart", "rerun_steps", "resume", "retry_step"),
    "_data": ("GcReport", "gc", "load", "sql", "stored"),
    "_durable": ("capture", "now", "sleep", "sleep_until"),
    "_definitions": ("DurableExecution", "NamedCall", "Queue", "RetryPolicy", "Step", "Workflow", "step",
                     "workflow"),
    "_errors": ("Cancelled", "ConfigurationError", "DeadlineExceeded", "DefinitionError", "DefinitionNotFound",
                "EventTimeout",
                "ExecutionNotFound", "ExecutionTimeout", "ExecutorClosed", "JournalCorrupt", "JournalError",
                "JournalLocked", "JournalSchemaTooNew", "MonitorError", "NonDeterminism", "NotInWorkflow",
                "QueryError", "RecoveriesExhausted", "ScheduleNotFound", "SerializationError", "StateConflict",
                "StepCancelled", "StepError", "StepFailed", "StepTimeout", "TaskError", "ValueLost", "ValueStoreError",
                "WaitTimeout", "WorkerCrashed", "ZartError"),
    "_events": ("Event", "EventBus", "ExecutionEvent", "StepEvent", "events"),
    "_messages": ("MAX_JSON_BYTES", "publish", "published", "send_event", "stream", "wait_for_event", "wake"),
    "_handles": ("Execution", "StepHandle"),
    "_maintenance": ("CompactReport", "ScrubReport", "compact", "scrub"),
    "_monitor.client": ("MonitorClient", "Subscription"),
    "_progress": ("FailedStep", "QueueBacklog", "RunEnd", "RunningStep", "RunProgress"),
    "_reader": ("JournalReader",),
    "_retention": ("RetentionReport", "garbage_collect"),
    "_records": ("AttemptRecord", "DefinitionRecord", "ExecutionRecord", "PendingEvent", "RunRecord", "StepRecord",
                 "format_duration"),
    "_options": ("OnChange", "RunOptions"),
    "_runtime": ("shutdown_pool",),
    "_serve.recurring": ("Schedule", "pause_schedule", "recurring", "remove_schedule", "resume_schedule",
                         "schedules"),
    "_status": ("ExecutionStatus", "RunReason", "RunTrigger", "StepStatus"),
    "_stored": ("StoredValue",),
    "_waiting": ("as_completed", "call", "wait_first"),
}
# What code running inside a step may touch without loading the engine (zart.context(), errors, a
# module of steps imported by reference). Any other name loads every module but those on demand.
_LIGHT = ("_context", "_definitions", "_errors", "_status")
# Loaded only when one of their names is asked for: sockets for a live reader, the records'
# dataclasses (a reader builds them; running a workflow never does), recurring schedules (~1.2 ms), and
# what neither runs a workflow nor is needed by a finished re-run: the control actions (the monitor's
# protocol, JSON), maintenance (``pickletools``), retention, the data surfaces, events and messages,
# the body's durable calls and waits. A body's first ``zart.sleep`` or ``zart.call`` loads its module.
_ON_DEMAND = ("_monitor.client", "_records", "_serve.recurring", "_actions", "_control_api", "_data",
              "_durable", "_maintenance", "_messages", "_reader", "_retention", "_stored", "_waiting")
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}


def show(execution: "str | Execution", journal: str | os.PathLike[str] | None = None, *,
         step: str | None = None) -> _typing.Any:
    """An execution as a notebook shows it: runs, steps (status, attempts, duration, executed or
    reused and why, previews), failed attempts and a timeline (one lane per worker, a bar per
    attempt). ``execution`` is an id (in ``journal``, default as for :func:`journal`) or an
    :class:`Execution`. The result renders as HTML in a notebook and as one line of text elsewhere;
    nothing is unpickled.

    With ``step`` (a step key), that journaled step as zart-tui's step screen shows it: its record,
    failed attempts, tracebacks, stored value, what it printed and its source. An output kept as its
    first 16 KiB and last 64 KiB says so in its title (``captured output (cut: 978,115 characters
    skipped in the middle)``). A step not journaled yet (it is when it ends) is a
    :class:`ConfigurationError`."""
    from ._handles import Execution
    from ._notebook.show import show as show_execution

    execution_id = execution if isinstance(execution, str) else execution.execution_id
    if isinstance(execution, Execution):
        journal = execution.journal
    if step is not None:
        from ._notebook.show_step import show_step

        return show_step(execution_id, step, journal)
    return show_execution(execution_id, journal)


def journal(path: str | os.PathLike[str] | None = None, *, live: bool = True,
            lock_timeout: float | None = None) -> "JournalReader":
    """A typed reader of a journal (default ``$ZART_JOURNAL`` or ``./.zart/journal.duckdb``).

    When an engine of another process holds the journal, this is a :class:`MonitorClient` reading
    through that engine (``live=False`` always reads the file). Otherwise it reads the file, taking it
    only for a moment (``lock_timeout``: how long to wait for another process to release it).

    It never unpickles: ``list_executions``, ``execution_record``, ``list_steps``, ``list_attempts``,
    ``list_runs``, ``stats``, ``list_definitions``. ``close()`` releases the file or the connection."""
    from ._journal.reader import FileJournalReader
    from ._runtime import default_journal_path, runtime

    target = path or default_journal_path()
    if live:
        from ._monitor.client import MonitorClient

        client = MonitorClient.connect(target)
        if client is not None:
            return client
    return FileJournalReader(runtime.journal(target, lock_timeout=lock_timeout))


def _publish(module: str) -> None:
    """Import ``module`` and bind its public names here, reading as public in tracebacks and reprs
    (``zart_nb.StepFailed``, not ``zart_nb._errors.StepFailed``)."""
    loaded = importlib.import_module(f"{__name__}.{module}")
    for name in _EXPORTS[module]:
        value = getattr(loaded, name)
        if module != "_monitor.client" and (isinstance(value, type) or callable(value)) and \
                getattr(value, "__module__", "").startswith("zart_nb."):
            try:
                value.__module__ = "zart_nb"
            except (AttributeError, TypeError):
                pass
        globals()[name] = value


def __getattr__(name: str) -> _typing.Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'zart_nb' has no attribute {name!r}")
    if module in _LIGHT or module in _ON_DEMAND:
        _publish(module)
    else:
        for other in _EXPORTS:
            if other not in _ON_DEMAND:
                _publish(other)
    return globals()[name]


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))


__all__ = [
    "__version__",
    "as_completed",
    "AttemptRecord",
    "call",
    "cancel",
    "Cancelled",
    "capture",
    "compact",
    "CompactReport",
    "ConfigurationError",
    "Context",
    "context",
    "ControlOutcome",
    "DeadlineExceeded",
    "DefinitionError",
    "DefinitionNotFound",
    "DefinitionRecord",
    "delete",
    "DurableExecution",
    "DurableScheduler",
    "Event",
    "EventBus",
    "events",
    "EventTimeout",
    "Execution",
    "ExecutionEvent",
    "ExecutionNotFound",
    "ExecutionRecord",
    "ExecutionStatus",
    "ExecutionTimeout",
    "ExecutorClosed",
    "FailedStep",
    "fork",
    "format_duration",
    "garbage_collect",
    "gc",
    "GcReport",
    "journal",
    "JournalCorrupt",
    "JournalError",
    "JournalLocked",
    "JournalReader",
    "JournalSchemaTooNew",
    "load",
    "MAX_JSON_BYTES",
    "MonitorClient",
    "MonitorError",
    "NamedCall",
    "NonDeterminism",
    "NotInWorkflow",
    "now",
    "OnChange",
    "pause_schedule",
    "PendingEvent",
    "publish",
    "published",
    "QueryError",
    "Queue",
    "QueueBacklog",
    "recover",
    "RecoveriesExhausted",
    "recurring",
    "RemoteExecution",
    "remove_schedule",
    "rerun_steps",
    "restart",
    "resume",
    "resume_schedule",
    "RetentionReport",
    "retry_step",
    "RetryPolicy",
    "run",
    "RunEnd",
    "RunningStep",
    "RunOptions",
    "RunProgress",
    "RunReason",
    "RunRecord",
    "RunTrigger",
    "schedule",
    "Schedule",
    "ScheduleNotFound",
    "schedules",
    "scrub",
    "ScrubReport",
    "send_event",
    "SerializationError",
    "show",
    "shutdown_pool",
    "sleep",
    "sleep_until",
    "sql",
    "start",
    "StateConflict",
    "Step",
    "step",
    "StepCancelled",
    "StepError",
    "StepEvent",
    "StepFailed",
    "StepHandle",
    "StepRecord",
    "StepStatus",
    "StepTimeout",
    "stored",
    "StoredValue",
    "stream",
    "Subscription",
    "TaskError",
    "TaskRegistry",
    "ValueLost",
    "ValueStoreError",
    "wait",
    "wait_first",
    "wait_for_event",
    "WaitTimeout",
    "wake",
    "WorkerCrashed",
    "Workflow",
    "workflow",
    "ZartError",
]
