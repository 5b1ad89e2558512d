"""The executor interface the engine dispatches steps through, and the records that cross it.

The local worker pool (``_pool.LocalPool``) is one implementation; a Dask ``distributed.Client``
will be another (steps are cloudpickled, so any worker of a cluster can run them while the journal
stays with the driver).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(slots=True, eq=False)
class Task:
    """One attempt of one step, ready to run anywhere."""

    task_id: int
    fn_id: str
    fn_blob: bytes
    args_blob: bytes
    execution_id: str
    step_key: str
    attempt: int
    timeout: float | None = None
    not_before: float = 0.0
    started_at: float = 0.0
    worker: str = ""
    sent_bytes: int = 0
    token: object = field(default=None, repr=False)  # what cancel() matches: the run it belongs to
    owner: object = field(default=None, repr=False)  # the engine's bookkeeping for this step


@dataclass(slots=True)
class Outcome:
    """How an attempt ended. ``kind`` is ``ok``, ``error``, ``crashed``, ``timeout`` or ``cancelled``."""

    task: Task
    kind: str
    blob: bytes | None = None
    preview: str | None = None
    error_type: str | None = None
    error: str | None = None
    traceback: str | None = None
    finished_at: float = 0.0


OutcomeSink = Callable[[list[Outcome]], None]

FUNCTION_MISSING = "zart:function-missing"  # a worker's answer to a task whose function it lacks


class Executor(Protocol):
    def submit(self, tasks: list[Task]) -> None:
        """Queue attempts; outcomes are delivered to the sink given at construction, in batches."""

    def cancel(self, token: object) -> None:
        """Drop queued attempts carrying ``token`` and kill the workers running such attempts.

        Every dropped or killed attempt is delivered as a ``cancelled`` outcome."""

    def shutdown(self) -> None:
        """Stop all workers."""
