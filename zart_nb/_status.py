"""The status enums: what the engine, the journal and every surface name states with.

Kept apart from the typed records (``_records``) so that running a workflow never builds the
records' dataclasses (~6 ms of a cold start)."""
from __future__ import annotations

import enum


class ExecutionStatus(enum.StrEnum):
    """Where an execution stands. ``interrupted``: its process died or the kernel was interrupted.
    ``sleeping``/``waiting``: suspended in a long durable sleep / event wait (nothing runs; see ``_suspend``)."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    SLEEPING = "sleeping"
    WAITING = "waiting"

    @property
    def suspended(self) -> bool:
        """Sleeping or waiting: no thread, worker or journal hold is kept; it continues when due."""
        return self in (ExecutionStatus.SLEEPING, ExecutionStatus.WAITING)

    @property
    def finished(self) -> bool:
        """Completed, failed or cancelled: a run will not change it (``interrupted`` resumes)."""
        return self in (ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED)


class StepStatus(enum.StrEnum):
    """Where a step stands in the current run (``retrying``: an attempt failed, another is due)."""

    SCHEDULED = "scheduled"
    RUNNING = "running"
    RETRYING = "retrying"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # running when the process running its execution died


class RunReason(enum.StrEnum):
    """Why a step was executed in a run rather than reused from the journal."""

    NEW = "new"
    CODE_CHANGED = "code changed"
    ARGS_CHANGED = "arguments changed"
    FAILED_BEFORE = "failed before"
    CANCELLED_BEFORE = "cancelled before"
    INTERRUPTED_BEFORE = "interrupted before"
    VALUE_LOST = "stored value lost"  # its output's file in the value store is missing or damaged
    REQUESTED = "asked to run again"  # a restart, ``zart rerun`` or a fork ran it though it had completed


COPIED_FROM = "copied from "  # a fork's copied step: its reason is this and the source's execution id


class RunEnd(enum.StrEnum):
    """Why a run ended (``RunReason`` says why a *step* ran). Journaled on the run's record."""

    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"  # asked to stop: ``zart.cancel``, ``zart cancel``, the TUI (detail: from where)
    INTERRUPTED = "interrupted"  # by its user: Ctrl-C, the notebook's stop button
    PROCESS_DIED = "process died"  # the process running it died (killed, a kernel death): found later
    DEADLINE_EXCEEDED = "deadline exceeded"  # still running at its deadline: stopped, and failed
    RECOVERED = "recovered"  # it failed, and its on_failure handler's value became its output (detail: from what)
    SUSPENDED = "suspended"  # its body reached a long sleep or event wait and unwound (detail: what it waits for)


class RunTrigger(enum.StrEnum):
    """What started a run (``RunEnd`` says how it ended). Journaled on the run's record (``zart runs``)."""

    INITIAL = "initial"  # the execution's first run
    RESUME = "resume"  # a later run: ``zart.run``/``start`` again, ``zart.resume``, ``zart resume``
    RESTART = "restart"  # ``zart.restart``: every step again, from scratch
    RERUN = "rerun"  # ``zart.rerun_steps``: the named steps again (detail: which)
    RETRY = "retry"  # ``zart.retry_step``: a failed step again (detail: which)
    FORK = "fork"  # ``zart.fork``: a new execution reusing another's steps (detail: from what)
    RECOVER = "recover"  # ``zart.recover``: its last run ended because its process died
