"""What a progress view shows of one execution: a snapshot read from its run and the executor.

The engine's run keeps exact counters (scheduled, finished, reused, failures, retries); the running
attempts come from the executor. A view asks for a :class:`Snapshot` at most ~10 times a second and
the engine does no work for it (measured: subscribing to the event stream costs P1 10-15%).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._status import ExecutionStatus

if TYPE_CHECKING:
    from .._handles import Execution

MAX_LISTED = 8  # running or failed steps listed by name; the rest are counted


@dataclass(frozen=True, slots=True)
class RunningStep:
    key: str
    attempt: int
    elapsed: float


@dataclass(frozen=True, slots=True)
class FailedStep:
    key: str
    attempts: int
    error: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One moment of an execution, as every view renders it."""

    execution_id: str
    workflow: str
    status: ExecutionStatus
    run_number: int | None = None
    total: int = 0  # steps called so far in this run (reused included)
    finished: int = 0  # completed, failed or cancelled (reused included)
    reused: int = 0  # completed steps taken from the journal
    completed: int = 0  # completed by an attempt in this run
    failed: int = 0
    cancelled: int = 0
    retrying: int = 0
    running: int = 0
    scheduled: int = 0  # waiting for a worker
    retries: int = 0  # failed attempts that were retried
    running_steps: tuple[RunningStep, ...] = ()
    failed_steps: tuple[FailedStep, ...] = ()
    error: str | None = None
    from_journal: bool = False  # a completed execution returned from the journal: nothing ran
    elapsed: float = 0.0

    @property
    def done(self) -> bool:
        return self.status not in (ExecutionStatus.PENDING, ExecutionStatus.RUNNING)

    def summary(self) -> str:
        """A stable one-line summary: no ids, times or addresses (a saved notebook's ``text/plain``)."""
        name = self.workflow or "workflow"
        if self.from_journal:
            return f"zart: {name} completed in an earlier run (output from the journal)"
        text = f"zart: {name} {self.status.value}, {self.finished - self.failed - self.cancelled}/{self.total} steps"
        extra = []
        if self.reused:
            extra.append(f"{self.reused} reused from earlier runs")
        if self.failed:
            extra.append(f"{self.failed} failed")
        if self.cancelled:
            extra.append(f"{self.cancelled} cancelled")
        return text + (f" ({', '.join(extra)})" if extra else "")


def _items(mapping: dict[str, Any]) -> list[tuple[str, Any]]:
    """A copy of a dict another thread may be adding to."""
    for _ in range(10):
        try:
            return list(mapping.items())
        except RuntimeError:  # changed size during iteration
            continue
    return []


class Tracker:
    """Follows one execution by polling its run (no event subscription: building events for every
    step would cost the engine's hot path). ``snapshot()`` is safe from any thread."""

    def __init__(self, execution: Execution, workflow: str = "") -> None:
        self.execution = execution
        self.workflow = workflow
        self._started = time.monotonic()

    def close(self) -> None:
        pass

    def snapshot(self) -> Snapshot:
        execution = self.execution
        status = execution.status
        run: Any = execution._run
        error = None
        if execution.done and execution._error is not None:
            error = f"{type(execution._error).__name__}: {execution._error}"
        elapsed = time.monotonic() - self._started
        if run is None:
            return Snapshot(execution.execution_id, self.workflow, status, error=error, elapsed=elapsed,
                            from_journal=status is ExecutionStatus.COMPLETED)
        total, finished, reused, executed = run.total, run.finished, run.reused, run.executed
        failed = tuple(FailedStep(key, attempts, message) for key, (attempts, message) in _items(run.failures))
        retrying, cancelled = len(run.retrying), run.cancelled_steps
        running_steps: list[RunningStep] = []
        executor = run._executor
        if executor is not None and not execution.done:
            now = time.time()
            for task, started in executor.running():
                if task.consumer is run:
                    running_steps.append(RunningStep(task.step_key, task.attempt, max(0.0, now - started)))
        failed_count = len(failed)
        in_flight = max(0, executed - (finished - reused))
        running = min(len(running_steps), in_flight)
        running_steps.sort(key=lambda step: -step.elapsed)
        return Snapshot(
            execution.execution_id, self.workflow, status, run.run_number, total, finished, reused,
            completed=max(0, finished - reused - failed_count - cancelled), failed=failed_count,
            cancelled=cancelled, retrying=min(retrying, in_flight), running=running,
            scheduled=max(0, in_flight - running - retrying), retries=run.retries,
            running_steps=tuple(running_steps[:MAX_LISTED]), failed_steps=failed[:MAX_LISTED],
            error=error, elapsed=elapsed)
