"""Suspended executions (``sleeping``, ``waiting``) and the lease on continuing them: the SQL, as
functions of a connection (run in one transaction by ``Journal.transact`` or inside ``begin_run``).

An execution whose body reached a long sleep or event wait is journaled with what it waits for
(``waits_for``: the sleep's or the event's name), until when (``wake_at``: the wake time or the wait's
timeout; NULL for a wait without one) and a lease: ``lease_owner`` (``host:pid`` of the process that
suspended it, which continues it when due) and ``lease_until`` (its expiry, after which anyone may:
the owner renews it while it lives, :func:`renew`; NULL, written by zart_nb before 0.1.1, means "while
that process lives", which only this host can tell). The run that continues it takes the lease in the
same transaction as it begins (:func:`take`): its status is ``running`` from then on, so a second
process finds it taken.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from .._errors import ExecutionNotFound, StateConflict
from .._status import ExecutionStatus, RunEnd
from . import file

if TYPE_CHECKING:
    from pathlib import Path

    import duckdb

SUSPENDED = (ExecutionStatus.SLEEPING.value, ExecutionStatus.WAITING.value)


def owner() -> str:
    """This process as a lease's owner: ``host:pid``."""
    return f"{os.uname().nodename}:{os.getpid()}"


def alive(owner: str) -> bool:
    """Whether the process that owns a lease lives (one on another host is taken to: its lease's
    expiry decides, :func:`lease_free`)."""
    host, _, pid = owner.rpartition(":")
    if host != os.uname().nodename or not pid.isdigit():
        return True
    return file.alive(int(pid))


class SuspendedRow(NamedTuple):
    """A suspended execution as journaled (what serve's source reads to know when it is due)."""

    execution_id: str
    status: ExecutionStatus
    waits_for: str | None
    wake_at: float | None  # when it is due: its wake time or timeout, or its deadline when that is earlier
    lease_owner: str | None
    lease_until: float | None
    has_event: bool  # an unconsumed event of the name it waits for is there (a waiting one is due now)


def suspend(conn: duckdb.DuckDBPyConnection, execution_id: str, run_number: int, status: ExecutionStatus,
            waits_for: str, wake_at: float | None, owner: str, lease_until: float | None, executed: int,
            reused: int, now: float, detail: str, sleep_key: str | None = None) -> float | None:
    """End run ``run_number`` as suspended and journal what the execution waits for, and the lease.
    Returns the wake time journaled: a sleep's is the earlier of ``wake_at`` and its row's (``sleep_key``),
    which a ``zart wake`` may have moved to now meanwhile."""
    if sleep_key is not None and wake_at is not None:
        row = conn.execute("SELECT finished_at FROM steps WHERE execution_id = ? AND step_key = ? AND current",
                           [execution_id, sleep_key]).fetchone()
        if row is not None and row[0] is not None and row[0] < wake_at:
            wake_at = float(row[0])
            lease_until = min(lease_until, wake_at) if lease_until is not None else None
    conn.execute(
        """UPDATE executions SET status = ?, waits_for = ?, wake_at = ?, lease_owner = ?, lease_until = ?,
               finished_at = NULL WHERE execution_id = ?""",
        [status.value, waits_for, wake_at, owner, lease_until, execution_id])
    conn.execute(
        """UPDATE runs SET status = ?, finished_at = ?, executed = ?, reused = ?, ended_by = ?, end_detail = ?,
               alive_at = ? WHERE execution_id = ? AND run_number = ?""",
        [status.value, now, executed, reused, RunEnd.SUSPENDED.value, detail, now, execution_id, run_number])
    conn.execute("DELETE FROM in_flight WHERE execution_id = ? AND run_number = ?", [execution_id, run_number])
    return wake_at


def lease_free(owner: str | None, until: float | None, me: str, now: float, alive: Callable[[str], bool]) -> bool:
    """Whether ``me`` may continue a suspended execution whose lease is ``(owner, until)``: no owner, its
    own, expired (the owner stopped renewing it: gone, or on a host that went away), or its owner's
    process is gone (known at once on this host only)."""
    if owner is None or owner == me:
        return True
    if until is not None and until <= now:
        return True
    return not alive(owner)


def take(conn: duckdb.DuckDBPyConnection, path: Path, execution_id: str, me: str, now: float,
         alive: Callable[[str], bool]) -> None:
    """Inside the transaction that begins a run continuing a suspended execution: refuse
    (``StateConflict``) when it is no longer suspended (another process continued it) or another live
    process holds its lease. The run's own UPDATE then makes ``me`` the owner."""
    row = conn.execute("SELECT status, lease_owner, lease_until FROM executions WHERE execution_id = ?",
                       [execution_id]).fetchone()
    if row is None:
        raise ExecutionNotFound(execution_id, path)
    status, owner, until = row
    if status not in SUSPENDED:
        raise StateConflict(execution_id, status, f"it is no longer suspended (taken by {owner or 'another run'})")
    if not lease_free(owner, until, me, now, alive):
        raise StateConflict(execution_id, status, f"{owner} holds its lease and continues it")


def suspended(conn: duckdb.DuckDBPyConnection) -> list[SuspendedRow]:
    """Every suspended execution, with whether an event it waits for is there."""
    return _suspended(conn, None)


def _suspended(conn: duckdb.DuckDBPyConnection, execution_id: str | None) -> list[SuspendedRow]:
    rows = conn.execute(
        """SELECT x.execution_id, x.status, x.waits_for,
                  CASE WHEN x.deadline IS NOT NULL AND (x.wake_at IS NULL OR x.deadline < x.wake_at)
                       THEN x.deadline ELSE x.wake_at END,
                  x.lease_owner, x.lease_until,
                  EXISTS (SELECT 1 FROM events e WHERE e.execution_id = x.execution_id AND e.name = x.waits_for
                          AND e.consumed_by IS NULL AND e.payload IS NOT NULL)
           FROM executions x WHERE x.status IN (?, ?) AND (? IS NULL OR x.execution_id = ?)
           ORDER BY x.execution_id""", [*SUSPENDED, execution_id, execution_id]).fetchall()
    return [SuspendedRow(str(eid), ExecutionStatus(status), waits_for, wake_at, owner, until, bool(event))
            for eid, status, waits_for, wake_at, owner, until, event in rows]


def has_event(conn: duckdb.DuckDBPyConnection, execution_id: str, name: str) -> bool:
    """Whether an unconsumed event ``name`` was sent to the execution."""
    return conn.execute(
        """SELECT 1 FROM events WHERE execution_id = ? AND name = ? AND consumed_by IS NULL
           AND payload IS NOT NULL LIMIT 1""", [execution_id, name]).fetchone() is not None


def wake_now(conn: duckdb.DuckDBPyConnection, execution_id: str, now: float) -> None:
    """A sleeping execution's sleep was ended early (``zart wake``): due now, and its lease ends now."""
    conn.execute("UPDATE executions SET wake_at = ?, lease_until = ? WHERE execution_id = ? AND status = ?",
                 [now, now, execution_id, ExecutionStatus.SLEEPING.value])


def state(conn: duckdb.DuckDBPyConnection, execution_id: str) -> tuple[str | None, SuspendedRow | None]:
    """``(status, its suspension)`` of an execution: the suspension when it is sleeping or waiting."""
    row = conn.execute("SELECT status, lease_owner FROM executions WHERE execution_id = ?", [execution_id]).fetchone()
    if row is None:
        return None, None
    if row[0] not in SUSPENDED:
        return str(row[0]), None
    found = [one for one in _suspended(conn, execution_id) if one.execution_id == execution_id]
    return str(row[0]), found[0] if found else None


def lease_of(conn: duckdb.DuckDBPyConnection, execution_id: str) -> tuple[str | None, str | None]:
    """``(status, lease owner)`` of an execution (``None, None``: unknown): whom to ping after an event."""
    row = conn.execute("SELECT status, lease_owner FROM executions WHERE execution_id = ?",
                       [execution_id]).fetchone()
    return (None, None) if row is None else (str(row[0]), row[1])


def renew(conn: duckdb.DuckDBPyConnection, execution_ids: list[str], owner: str, until: float) -> int:
    """Move the lease of those executions that are still suspended under ``owner`` to ``until`` (the
    owner's continuer, as it looks at the file); returns how many it renewed."""
    if not execution_ids:
        return 0
    marks = ", ".join("?" for _ in execution_ids)
    rows = conn.execute(
        f"""UPDATE executions SET lease_until = ? WHERE lease_owner = ? AND status IN (?, ?)
            AND execution_id IN ({marks}) RETURNING execution_id""",
        [until, owner, *SUSPENDED, *execution_ids]).fetchall()
    return len(rows)
