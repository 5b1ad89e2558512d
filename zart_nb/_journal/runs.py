"""The SQL of run control: a run's beginning and end, its heartbeat, an execution's status, parent and
deletion, and what the control actions (restart, rerun, retry, fork) read and copy.

Plain functions over a connection, inside a transaction the caller opens (``Journal``'s thin methods of
the same names: they hold the file, choose the connection, fold when the rows must be there, and commit
or roll back). Nothing here unpickles.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from .._status import COPIED_FROM, ExecutionStatus, RunEnd, RunTrigger
from . import stores, suspension
from .schema import IN_FLIGHT_COLUMNS, STEP_COLUMNS, InFlightRow

if TYPE_CHECKING:
    from pathlib import Path

    import duckdb


class RunBeat(NamedTuple):
    """One run in a heartbeat: its counts so far and the attempts it is running."""

    execution_id: str
    run_number: int
    executed: int
    reused: int
    running: Sequence[InFlightRow]


_IN_FLIGHT_INSERT = f"INSERT INTO in_flight VALUES ({', '.join('?' * len(IN_FLIGHT_COLUMNS))})"


def begin(conn: duckdb.DuckDBPyConnection, path: Path, now: float, execution_id: str, workflow: str,
          def_id: str, input: bytes, input_hash: str, input_preview: str, on_change: str,
          deadline: float | None, count_deaths: bool, trigger: RunTrigger | None, trigger_detail: str | None,
          new_deadline: bool, extend: float | None, lease: str | None) -> tuple[int, float | None, int]:
    """Mark the execution running under this process and open its next run (see ``Journal.begin_run``):
    ``(run number, deadline, deaths)``."""
    if lease is not None:
        suspension.take(conn, path, execution_id, lease, now, suspension.alive)
    row = conn.execute("SELECT run_number, deadline FROM executions WHERE execution_id = ?",
                       [execution_id]).fetchone()
    run_number = (row[0] if row else 0) + 1
    if row is not None and row[1] is not None and not new_deadline:
        deadline = row[1]
    if extend is not None:
        deadline = max(deadline or now, now) + extend
    if trigger is None:
        trigger = RunTrigger.INITIAL if row is None else RunTrigger.RESUME
    deaths = 0
    if count_deaths and row is not None:
        counted = conn.execute("SELECT count(*) FROM runs WHERE execution_id = ? AND ended_by = ?",
                               [execution_id, RunEnd.PROCESS_DIED.value]).fetchone()
        deaths = counted[0] if counted else 0
    # A plain INSERT or UPDATE: DuckDB's upsert (ON CONFLICT) costs ~5x more here.
    if row is None:
        conn.execute(
            """INSERT INTO executions (execution_id, workflow, def_id, input, input_hash,
                   input_preview, status, run_number, on_change, created_at, started_at,
                   owner_pid, owner_host, deadline)
               VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)""",
            [execution_id, workflow, def_id, input, input_hash, input_preview, run_number,
             on_change, now, now, os.getpid(), os.uname().nodename, deadline])
    else:
        conn.execute(
            """UPDATE executions SET workflow = ?, def_id = ?, input = ?, input_hash = ?,
                   input_preview = ?, status = 'running', output = NULL,
                   output_preview = NULL, error = NULL, traceback = NULL, run_number = ?,
                   on_change = ?, started_at = ?, finished_at = NULL, owner_pid = ?,
                   owner_host = ?, deadline = ?, waits_for = NULL, wake_at = NULL,
                   lease_owner = ?, lease_until = NULL
               WHERE execution_id = ?""",
            [workflow, def_id, input, input_hash, input_preview, run_number, on_change,
             now, os.getpid(), os.uname().nodename, deadline, suspension.owner(), execution_id])
    conn.execute("INSERT INTO runs (execution_id, run_number, status, started_at, pid, executed, "
                 "reused, alive_at, trigger, trigger_detail) VALUES (?, ?, 'running', ?, ?, 0, 0, ?, ?, ?)",
                 [execution_id, run_number, now, os.getpid(), now, trigger.value, trigger_detail])
    return run_number, deadline, deaths


def finish(conn: duckdb.DuckDBPyConnection, now: float, execution_id: str, run_number: int,
           status: ExecutionStatus, output: bytes | None, output_preview: str | None, error: str | None,
           traceback: str | None, executed: int, reused: int, ended_by: RunEnd | None,
           end_detail: str | None) -> None:
    """Record how a run ended (see ``Journal.finish_run``)."""
    conn.execute(
        """UPDATE executions SET status = ?, output = ?, output_preview = ?, error = ?,
               traceback = ?, finished_at = ? WHERE execution_id = ?""",
        [status.value, output, output_preview, error, traceback, now, execution_id])
    conn.execute(
        """UPDATE runs SET status = ?, finished_at = ?, executed = ?, reused = ?, ended_by = ?,
               end_detail = ?, alive_at = ? WHERE execution_id = ? AND run_number = ?""",
        [status.value, now, executed, reused, (ended_by or RunEnd(status.value)).value, end_detail,
         now, execution_id, run_number])
    conn.execute("DELETE FROM in_flight WHERE execution_id = ? AND run_number = ?",
                 [execution_id, run_number])


def beat(conn: duckdb.DuckDBPyConnection, now: float, beats: Sequence[RunBeat]) -> None:
    """Each run's ``alive_at`` and counts so far, and the attempts it runs (replacing the last beat's)."""
    for run in beats:
        conn.execute("UPDATE runs SET alive_at = ?, executed = ?, reused = ? WHERE execution_id = ? "
                     "AND run_number = ? AND status = 'running'",
                     [now, run.executed, run.reused, run.execution_id, run.run_number])
        conn.execute("DELETE FROM in_flight WHERE execution_id = ? AND run_number = ?",
                     [run.execution_id, run.run_number])
        if run.running:
            conn.executemany(_IN_FLIGHT_INSERT, [list(row) for row in run.running])


def delete(conn: duckdb.DuckDBPyConnection, execution_id: str) -> None:
    """Remove an execution with its runs, steps, attempts and events (its value store row: ``stores.forget``)."""
    for table in ("attempts", "steps", "step_counts", "in_flight", "events", "runs", "executions"):
        conn.execute(f"DELETE FROM {table} WHERE execution_id = ?", [execution_id])
    stores.forget(conn, [execution_id])


def set_parent(conn: duckdb.DuckDBPyConnection, execution_id: str, parent_execution_id: str) -> None:
    conn.execute("UPDATE executions SET parent_execution_id = ? WHERE execution_id = ?",
                 [parent_execution_id, execution_id])


def set_status(conn: duckdb.DuckDBPyConnection, now: float, execution_id: str, status: ExecutionStatus) -> None:
    conn.execute("UPDATE executions SET status = ?, finished_at = coalesce(finished_at, ?) WHERE execution_id = ?",
                 [status.value, now, execution_id])


def step_order(conn: duckdb.DuckDBPyConnection, execution_id: str) -> list[tuple[str, int, str]]:
    """``(step key, seq, status)`` of an execution's current step records in call order (seq)."""
    rows = conn.execute("SELECT step_key, seq, status FROM steps WHERE execution_id = ? AND current "
                        "ORDER BY seq, step_key", [execution_id]).fetchall()
    return [(row[0], row[1], row[2]) for row in rows]


def copy_steps(conn: duckdb.DuckDBPyConnection, source: str, target: str, keys: Sequence[str]) -> int:
    """Copy the current completed records of ``keys`` of ``source`` to ``target`` as its run 1's, their
    reason ``copied from <source>``, and count ``target``'s steps (see ``Journal.copy_steps``)."""
    columns = ", ".join("?" if column == "reason" else column for column in STEP_COLUMNS[3:])
    copied = conn.execute(
        f"""INSERT INTO steps SELECT ?, step_key, 1, {columns} FROM steps
            WHERE execution_id = ? AND current AND status = 'completed'
            AND list_contains(?, step_key)""",
        [target, COPIED_FROM + source, source, list(keys)]).fetchone()
    conn.execute("DELETE FROM step_counts WHERE execution_id = ?", [target])
    conn.execute("""INSERT INTO step_counts SELECT execution_id, count(*),
                        count(*) FILTER (WHERE status = 'completed'),
                        count(*) FILTER (WHERE status = 'failed')
                    FROM steps WHERE execution_id = ? AND current GROUP BY execution_id""", [target])
    return int(copied[0]) if copied else 0
