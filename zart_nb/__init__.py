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
from ._api import (
    DurableExecution,
    DurableScheduler,
    NamedCall,
    RetryPolicy,
    Step,
    TaskRegistry,
    Workflow,
    context,
    run,
    schedule,
    start,
    step,
    wait,
    workflow,
)
from ._context import Context
from ._errors import (
    Cancelled,
    DefinitionError,
    ExecutionTimeout,
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
    WorkerCrashed,
    ZartError,
)
from ._events import Event, EventBus, events
from ._handles import Execution, StepHandle
from ._journal import Journal
from ._records import (
    AttemptRecord,
    ExecutionRecord,
    ExecutionStatus,
    RunReason,
    RunRecord,
    StepRecord,
    StepStatus,
)
from ._runtime import get_journal as journal
from ._runtime import shutdown_pool

__version__ = "0.1.0"

__all__ = [
    "AttemptRecord",
    "Cancelled",
    "Context",
    "DefinitionError",
    "DurableExecution",
    "DurableScheduler",
    "Event",
    "EventBus",
    "Execution",
    "ExecutionRecord",
    "ExecutionStatus",
    "ExecutionTimeout",
    "Journal",
    "JournalCorrupt",
    "JournalError",
    "JournalLocked",
    "JournalSchemaTooNew",
    "NamedCall",
    "NonDeterminism",
    "NotInWorkflow",
    "RetryPolicy",
    "RunReason",
    "RunRecord",
    "SerializationError",
    "Step",
    "StepCancelled",
    "StepError",
    "StepFailed",
    "StepHandle",
    "StepRecord",
    "StepStatus",
    "StepTimeout",
    "TaskError",
    "TaskRegistry",
    "WorkerCrashed",
    "Workflow",
    "ZartError",
    "__version__",
    "context",
    "events",
    "journal",
    "run",
    "schedule",
    "shutdown_pool",
    "start",
    "step",
    "wait",
    "workflow",
]
