"""Suspended executions as a source of ``zart serve``'s due work (see ``_suspend`` for the ownership
model): a sleeping one at its wake time, a waiting one when its event is in the file or its timeout
passes; never before its lease is free (the process that suspended it continues it while it lives and
renews its lease, ``LEASE_TIME``; a lease from a host that went away expires). The run takes the lease
in the transaction that begins it, so two serve processes, or a kernel and serve, never both continue
one execution."""
from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING

from .._journal import suspension
from .._runtime import runtime
from .._status import RunTrigger
from .._suspend import describe, due_at
from .work import DueWork

if TYPE_CHECKING:
    from .._handles import Execution
    from .._journal import Journal


def continue_suspended(journal: Journal, execution_id: str, detail: str) -> Execution:
    """The next run of a suspended execution from its journaled definition, in the background, if its
    lease lets this process (else ``StateConflict``); returns once its run has begun."""
    from .._actions import prepare_resume, start_here
    from .._engine import execute

    prepared = prepare_resume(journal, execution_id, trigger=RunTrigger.RESUME)
    plan = dataclasses.replace(prepared.plan, lease=True, detail=detail)
    return start_here(journal, dataclasses.replace(prepared, plan=plan), execute)


class Wakeups:
    """Suspended executions that are due and whose lease is free (those suspended in this process are
    continued by its own continuer)."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self._me = suspension.owner()

    def _due(self, now: float) -> list[tuple[float, suspension.SuspendedRow]]:
        due = []
        for row in self._journal.query(suspension.suspended):
            live = runtime.live_execution(self._journal, row.execution_id)
            if live is not None and not live.done:
                continue
            when = due_at(row, self._me, now)
            if when is not None:
                due.append((when, row))
        return due

    def next_due(self, now: float) -> tuple[float, str] | None:
        due = self._due(now)
        if not due:
            return None
        when, row = min(due, key=lambda pair: pair[0])
        return when, f"continue {row.execution_id}"

    def take_due(self, now: float) -> list[DueWork]:

        return [DueWork(f"continue {row.execution_id}",
                        functools.partial(continue_suspended, self._journal, row.execution_id,
                                          "due: " + describe(row.status, row.waits_for, row.wake_at)))
                for when, row in self._due(now) if when <= now]
