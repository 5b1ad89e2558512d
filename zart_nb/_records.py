"""Typed records of the journal's read API, shared by the CLI, the widget, the monitor and the TUI."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ._status import COPIED_FROM, ExecutionStatus, RunEnd, RunReason, RunTrigger, StepStatus

__all__ = ["AttemptRecord", "DefinitionRecord", "ExecutionRecord", "ExecutionStatus", "PendingEvent", "RunEnd",
           "RunReason", "RunRecord", "RunTrigger", "StepRecord", "StepStatus"]


@dataclass(frozen=True, slots=True)
class ExecutionRecord:
    execution_id: str
    workflow: str
    status: ExecutionStatus
    run_number: int
    input_preview: str
    output_preview: str | None
    error: str | None
    traceback: str | None
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    owner_pid: int | None
    # While it runs (read through its engine's monitor): the steps known to the run so far (reused,
    # waiting, running, finished). Once it ended: its journaled step records, those that were running
    # when it ended included (as cancelled or interrupted).
    steps_total: int = 0
    steps_completed: int = 0  # reused ones included
    steps_failed: int = 0
    steps_running: int = 0  # only while it runs
    ended_by: RunEnd | None = None  # why its last run ended (None while it runs, or from an older journal)
    end_detail: str | None = None  # "the process running it (pid 12) died", "cancelled from zart cancel"
    parent_execution_id: str | None = None  # the execution whose workflow body started it, if one did
    waits_for: str | None = None  # sleeping/waiting: the sleep's or the event's name
    wake_at: datetime | None = None  # sleeping: its wake time; waiting: its timeout (None: none)

    @property
    def duration(self) -> float | None:
        """Seconds from its last run's start to its end (to now while it runs)."""
        if self.started_at is None:
            return None
        end = self.finished_at or datetime.now()
        return (end - self.started_at).total_seconds()


def format_duration(seconds: float | None) -> str:
    """A duration as ``zart show`` and ``zart-tui`` print it: ``"-"`` for ``None``, then milliseconds
    below a second, seconds below two minutes, minutes below two hours, else hours (``"350ms"``,
    ``"12.5s"``, ``"3.0m"``, ``"2.5h"``). Takes a record's ``duration`` or a ``RunningStep.elapsed``."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def _skipped_in(log: str | None) -> int:
    if not log:
        return 0
    from ._executors.capture import skipped_in  # the owner of the skip note's words

    return skipped_in(log)


@dataclass(frozen=True, slots=True)
class StepRecord:
    execution_id: str
    step_key: str
    name: str
    seq: int
    status: StepStatus
    run_number: int
    reason: str
    attempts: int
    args_preview: str
    output_preview: str | None
    error: str | None
    traceback: str | None
    scheduled_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    worker: str | None
    log: str | None = None  # what its last attempt printed (its first 16 KiB and last 64 KiB, ``capture``)

    def this_run(self, current_run: int) -> str:
        """What the execution's run ``current_run`` did with this step: executed it (and why), reused
        it, copied it from a fork's source, or never started it (the CLI's and the TUI's "this run" column)."""
        if self.reason.startswith(COPIED_FROM):
            return self.reason  # "copied from <source>": the fork's run 1 did not run it
        if self.run_number != current_run:
            if self.status is StepStatus.FAILED:  # a retry of another step reached it: it failed again
                return f"failed in run {self.run_number}, not run again"
            return f"reused from run {self.run_number}"
        if self.status is StepStatus.INTERRUPTED:
            return "interrupted (its process died)"
        if self.status is StepStatus.CANCELLED and self.started_at is None:
            return "cancelled before it started"
        return f"executed ({self.reason})"

    @property
    def duration(self) -> float | None:
        """Seconds from its start to its end (``None`` until it has both)."""
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def log_skipped(self) -> int:
        """Characters of what it printed that ``log`` leaves out (0: ``log`` is whole): past its first
        16 KiB and last 64 KiB, one line between them says how many (``[zart: ... characters of output
        skipped; ...]``)."""
        return _skipped_in(self.log)


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    execution_id: str
    step_key: str
    run_number: int
    attempt: int
    status: StepStatus
    error: str | None
    traceback: str | None
    started_at: datetime | None
    finished_at: datetime | None
    worker: str | None
    log: str | None = None  # what the attempt printed (its first 16 KiB and last 64 KiB, ``capture``)

    @property
    def log_skipped(self) -> int:
        """Characters of what the attempt printed that ``log`` leaves out (0: ``log`` is whole)."""
        return _skipped_in(self.log)


@dataclass(frozen=True, slots=True)
class RunRecord:
    execution_id: str
    run_number: int
    status: ExecutionStatus
    started_at: datetime | None
    finished_at: datetime | None
    pid: int
    executed: int  # steps whose attempt ran in this run (counted as they finish while it runs)
    reused: int
    ended_by: RunEnd | None = None
    end_detail: str | None = None
    alive_at: datetime | None = None  # its process's last heartbeat (or its end)
    trigger: RunTrigger | None = None  # what started it (None: journaled before schema 6)
    trigger_detail: str | None = None  # which steps a rerun or retry named, what a fork came from


@dataclass(frozen=True, slots=True)
class DefinitionRecord:
    """A journaled workflow or step definition (its source text; the pickle is never read here)."""

    def_id: str
    kind: str
    name: str
    source: str


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """An event sent to an execution (``zart.send_event``, ``zart event``, the HTTP API) that no
    ``zart.wait_for_event`` consumed yet."""

    execution_id: str
    seq: int  # its order among the events sent to the execution
    name: str
    payload: str  # JSON text, as sent (never a pickle)
    sent_at: datetime
    sender: str | None  # who sent it ("zart event (pid 12)"), when known
