"""One moment of a run's progress, as every surface shows it (the widget, the monitor, the CLI, the TUI).

The engine's run builds a :class:`RunProgress` under its lock when a view asks (at most a few times a
second): it publishes nothing per step for it, so the hot path pays nothing. What is running comes
from the executor, asked at that moment. ``total`` counts the steps known to the run so far (reused,
waiting, running and finished), so a run partway through never reads as full.
"""
from __future__ import annotations

from dataclasses import dataclass

from ._status import RunEnd  # here too: what a view shows of a run's end

__all__ = ["FailedStep", "QueueBacklog", "RunEnd", "RunProgress", "RunningStep"]


@dataclass(frozen=True, slots=True)
class RunningStep:
    """A step whose attempt is running now."""

    key: str
    name: str
    attempt: int
    worker: str
    started_at: float  # POSIX seconds
    elapsed: float  # seconds, when the snapshot was taken


@dataclass(frozen=True, slots=True)
class FailedStep:
    """A step of this run that failed for good."""

    key: str
    attempts: int
    error: str


@dataclass(frozen=True, slots=True)
class QueueBacklog:
    """A run's attempts waiting for a slot of one ``zart.Queue`` (its limit is counted per process)."""

    name: str
    waiting: int  # attempts of this run held back by the queue's limit
    active: int  # attempts of the queue (any execution of the process) sent or running now
    concurrency: int | None  # at most this many at once
    rate: str | None  # at most "calls/seconds" starts, e.g. "2/1s"


@dataclass(frozen=True, slots=True)
class RunProgress:
    """A run's progress at ``at`` (POSIX seconds). Counts are exact; the lists may be cut at ``listed``."""

    execution_id: str
    run_number: int
    total: int = 0  # steps known to the run: reused + waiting + running + finished
    finished: int = 0  # completed, failed or cancelled, reused included
    reused: int = 0  # completed steps taken from the journal
    executed: int = 0  # steps whose attempt started in this run and that have finished
    completed: int = 0  # completed by an attempt of this run
    failed: int = 0
    cancelled: int = 0
    retrying: int = 0  # an attempt failed, the next is due
    running: int = 0
    scheduled: int = 0  # waiting for a worker
    retries: int = 0  # failed attempts that were tried again
    running_steps: tuple[RunningStep, ...] = ()
    failed_steps: tuple[FailedStep, ...] = ()
    at: float = 0.0
    queued: int = 0  # waiting for a slot of their zart.Queue (not counted in ``scheduled``)
    queues: tuple[QueueBacklog, ...] = ()  # the queues those wait on, by name

    @property
    def done_steps(self) -> int:
        """Completed steps, reused ones included (what ``done/total`` counts)."""
        return self.completed + self.reused

    @property
    def in_flight(self) -> int:
        """Steps known to the run that have not finished (running, waiting, retrying)."""
        return self.total - self.finished
