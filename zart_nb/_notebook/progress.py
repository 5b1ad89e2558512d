"""What a progress view shows of one execution: its run's :class:`~zart_nb.RunProgress` and the view's state.

The engine's run keeps exact counters (scheduled, finished, reused, failures, retries) and builds the
progress under its lock; the running attempts come from the executor. A view asks for a
:class:`Snapshot` at most ~10 times a second and the engine does no work for it (measured:
subscribing to the event stream costs P1 10-15%).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._handles import run_of
from .._progress import FailedStep, QueueBacklog, RunningStep
from .._status import ExecutionStatus
from .._suspend import describe

if TYPE_CHECKING:
    from .._handles import Execution

MAX_LISTED = 8  # running or failed steps listed by name; the rest are counted


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
    queued: int = 0  # waiting for a slot of their zart.Queue
    queues: tuple[QueueBacklog, ...] = ()
    waits: str | None = None  # suspended: what it waits for and until when ("sleep 'nap' until ...")

    @property
    def done(self) -> bool:
        return self.status not in (ExecutionStatus.PENDING, ExecutionStatus.RUNNING) and not self.status.suspended

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
        if self.waits:
            extra.append(f"waits for {self.waits.split(' until ')[0]}")
        return text + (f" ({', '.join(extra)})" if extra else "")


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
        run = run_of(execution)
        error = None
        if execution.done and execution.error is not None:
            message = getattr(execution.error, "zart_message", None)  # one line naming who stopped it
            error = f"{type(execution.error).__name__}: {message or execution.error}"
        elapsed = time.monotonic() - self._started
        held = execution.suspension
        waits = None if held is None else describe(status, held[0], held[1])
        if run is None:
            return Snapshot(execution.execution_id, self.workflow, status, error=error, elapsed=elapsed,
                            from_journal=status is ExecutionStatus.COMPLETED)
        p = run.progress(MAX_LISTED)
        running_steps = () if execution.done else p.running_steps
        return Snapshot(
            execution.execution_id, self.workflow, status, p.run_number, p.total, p.finished, p.reused,
            completed=p.completed, failed=p.failed, cancelled=p.cancelled, retrying=p.retrying,
            running=0 if execution.done else p.running, scheduled=p.scheduled, retries=p.retries,
            running_steps=running_steps,
            failed_steps=p.failed_steps,
            error=error, elapsed=elapsed, queued=0 if execution.done else p.queued,
            queues=() if execution.done else p.queues, waits=waits)
