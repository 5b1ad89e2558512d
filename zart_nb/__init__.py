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
import os

from ._api import (
    DurableScheduler,
    TaskRegistry,
    context,
    run,
    schedule,
    start,
    wait,
)
from ._context import Context
from ._definitions import (
    DurableExecution,
    NamedCall,
    RetryPolicy,
    Step,
    Workflow,
    step,
    workflow,
)
from ._errors import (
    Cancelled,
    ConfigurationError,
    DefinitionError,
    DefinitionNotFound,
    ExecutionNotFound,
    ExecutionTimeout,
    ExecutorClosed,
    JournalCorrupt,
    JournalError,
    JournalLocked,
    JournalSchemaTooNew,
    NonDeterminism,
    NotInWorkflow,
    SerializationError,
    StepCancelled,
    StepError,
    StepFailed,
    StepTimeout,
    TaskError,
    WaitTimeout,
    WorkerCrashed,
    ZartError,
)
from ._events import Event, EventBus, ExecutionEvent, StepEvent, events
from ._handles import Execution, StepHandle
from ._reader import JournalReader
from ._records import (
    AttemptRecord,
    DefinitionRecord,
    ExecutionRecord,
    ExecutionStatus,
    RunReason,
    RunRecord,
    StepRecord,
    StepStatus,
)
from ._runtime import shutdown_pool

__version__ = "0.1.0"


def journal(path: str | os.PathLike[str] | None = None) -> JournalReader:
    """A typed reader of a journal file (default ``$ZART_JOURNAL`` or ``./.zart/journal.duckdb``).

    It never unpickles: ``list_executions``, ``execution_record``, ``list_steps``, ``list_attempts``,
    ``list_runs``, ``stats``, ``list_definitions``. ``close()`` releases the file for other processes."""
    from ._journal.reader import FileJournalReader
    from ._runtime import runtime

    return FileJournalReader(runtime.journal(path))

__all__ = [
    "__version__",
    "AttemptRecord",
    "Cancelled",
    "ConfigurationError",
    "context",
    "Context",
    "DefinitionError",
    "DefinitionNotFound",
    "DefinitionRecord",
    "DurableExecution",
    "DurableScheduler",
    "Event",
    "EventBus",
    "events",
    "Execution",
    "ExecutionEvent",
    "ExecutionNotFound",
    "ExecutionRecord",
    "ExecutionStatus",
    "ExecutionTimeout",
    "ExecutorClosed",
    "journal",
    "JournalCorrupt",
    "JournalError",
    "JournalLocked",
    "JournalReader",
    "JournalSchemaTooNew",
    "NamedCall",
    "NonDeterminism",
    "NotInWorkflow",
    "RetryPolicy",
    "run",
    "RunReason",
    "RunRecord",
    "schedule",
    "SerializationError",
    "shutdown_pool",
    "start",
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
    "TaskError",
    "TaskRegistry",
    "wait",
    "WaitTimeout",
    "WorkerCrashed",
    "workflow",
    "Workflow",
    "ZartError",
]

# Public names read as public in tracebacks and reprs: zart_nb.StepFailed, not zart_nb._errors.StepFailed.
for _name in __all__:
    _value = globals()[_name]
    if isinstance(_value, type) or callable(_value) and getattr(_value, "__module__", "").startswith("zart_nb."):
        try:
            _value.__module__ = "zart_nb"
        except (AttributeError, TypeError):
            pass
del _name, _value
