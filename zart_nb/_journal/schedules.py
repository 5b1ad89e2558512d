"""The SQL of ``zart serve``: recurring executions' schedules (schema 6), the latest journaled definition
of a workflow by name, and the executions serve continues when it starts.

Each function takes a connection: writes run through ``Journal.transact`` (one transaction), reads
through ``Journal.query``. Only :func:`pickled_schedule_data` and :func:`pickled_workflow` return pickles,
and only ``zart serve`` reads them (to run what the journal defines, as ``zart resume`` does).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from .._status import RunEnd

if TYPE_CHECKING:
    import duckdb

# A run ``zart serve`` interrupted as it stopped says so in its end detail: serve resumes it when it
# starts again, as it does a run whose process died (not one its user interrupted).
STOPPED_BY_SERVE = "stopped by zart serve"


class ScheduleRow(NamedTuple):
    """A schedule as journaled, without its data's pickle (a row of ``schedules``)."""

    workflow: str
    def_id: str
    cron: str | None
    every: float | None
    tz: str
    overlap: str
    data_preview: str
    paused: bool
    created_at: float
    updated_at: float
    anchor: float
    last_tick: float
    last_execution: str | None


_COLUMNS = ", ".join(ScheduleRow._fields)


def put_schedule(conn: duckdb.DuckDBPyConnection, row: ScheduleRow, data: bytes) -> bool:
    """Register ``row`` (with its data's pickle), or change the schedule of its workflow: its definition,
    timing, overlap and data are replaced, while whether it is paused and its last tick are kept (a
    notebook cell run again neither resumes a paused schedule nor replays its ticks). True when new."""
    found = conn.execute("SELECT 1 FROM schedules WHERE workflow = ?", [row.workflow]).fetchone()
    if found is None:
        conn.execute(f"INSERT INTO schedules ({_COLUMNS}, data) VALUES ({', '.join('?' * (len(row) + 1))})",
                     [*row, data])
        return True
    conn.execute(
        """UPDATE schedules SET def_id = ?, cron = ?, every = ?, tz = ?, overlap = ?, data = ?, data_preview = ?,
               updated_at = ?, anchor = CASE WHEN every IS NOT DISTINCT FROM ? THEN anchor ELSE ? END
           WHERE workflow = ?""",
        [row.def_id, row.cron, row.every, row.tz, row.overlap, data, row.data_preview, row.updated_at,
         row.every, row.anchor, row.workflow])
    return False


def schedule_rows(conn: duckdb.DuckDBPyConnection, workflow: str | None = None) -> list[ScheduleRow]:
    """Every schedule (or ``workflow``'s), by workflow name; no pickle is read."""
    where, params = ("WHERE workflow = ?", [workflow]) if workflow is not None else ("", [])
    rows = conn.execute(f"SELECT {_COLUMNS} FROM schedules {where} ORDER BY workflow", params).fetchall()
    return [ScheduleRow(*row) for row in rows]


def set_paused(conn: duckdb.DuckDBPyConnection, workflow: str, paused: bool, now: float) -> bool:
    """Pause or resume a schedule; False when there is none of that workflow. A resumed schedule
    starts from now: the ticks it missed while paused are not run."""
    found = conn.execute("SELECT paused FROM schedules WHERE workflow = ?", [workflow]).fetchone()
    if found is None:
        return False
    if found[0] and not paused:
        conn.execute("UPDATE schedules SET paused = false, last_tick = greatest(last_tick, ?), updated_at = ? "
                     "WHERE workflow = ?", [now, now, workflow])
    else:
        conn.execute("UPDATE schedules SET paused = ?, updated_at = ? WHERE workflow = ?", [paused, now, workflow])
    return True


def remove_schedule(conn: duckdb.DuckDBPyConnection, workflow: str) -> bool:
    """Remove a schedule (its executions stay); False when there is none of that workflow."""
    found = conn.execute("SELECT 1 FROM schedules WHERE workflow = ?", [workflow]).fetchone()
    conn.execute("DELETE FROM schedules WHERE workflow = ?", [workflow])
    return found is not None


def advance(conn: duckdb.DuckDBPyConnection, workflow: str, tick: float, execution_id: str | None) -> None:
    """The schedule has dealt with every tick up to ``tick`` (started ``execution_id``, or skipped it)."""
    conn.execute("UPDATE schedules SET last_tick = greatest(last_tick, ?), "
                 "last_execution = coalesce(?, last_execution) WHERE workflow = ?", [tick, execution_id, workflow])


def pickled_schedule_data(conn: duckdb.DuckDBPyConnection, workflow: str) -> bytes | None:
    """The pickle of a schedule's data (``zart serve`` only, to start a tick's execution)."""
    row = conn.execute("SELECT data FROM schedules WHERE workflow = ?", [workflow]).fetchone()
    return None if row is None else bytes(row[0])


def pickled_workflow(conn: duckdb.DuckDBPyConnection, name: str,
                     def_id: str | None = None) -> tuple[str, bytes] | None:
    """``(def_id, pickle)`` of the workflow definition ``def_id``, else the latest journaled one named
    ``name``; None when there is none."""
    if def_id is not None:
        row = conn.execute("SELECT def_id, pickle FROM definitions WHERE def_id = ? AND kind = 'workflow'",
                           [def_id]).fetchone()
    else:
        row = conn.execute("SELECT def_id, pickle FROM definitions WHERE kind = 'workflow' AND name = ? "
                           "ORDER BY created_at DESC LIMIT 1", [name]).fetchone()
    return None if row is None else (row[0], bytes(row[1]))


def workflow_names(conn: duckdb.DuckDBPyConnection) -> list[str]:
    """The names of every journaled workflow definition."""
    return [row[0] for row in conn.execute(
        "SELECT DISTINCT name FROM definitions WHERE kind = 'workflow' ORDER BY name").fetchall()]


def resumable_at_start(conn: duckdb.DuckDBPyConnection) -> list[str]:
    """Executions ``zart serve`` continues when it starts: interrupted ones whose last run ended because
    its process died, or because a ``zart serve`` stopping interrupted it; not those their user
    interrupted. Oldest first."""
    rows = conn.execute(
        """SELECT e.execution_id FROM executions e JOIN runs r
               ON r.execution_id = e.execution_id AND r.run_number = e.run_number
           WHERE e.status = 'interrupted'
             AND (r.ended_by = ? OR (r.ended_by = ? AND starts_with(coalesce(r.end_detail, ''), ?)))
           ORDER BY e.created_at, e.execution_id""",
        [RunEnd.PROCESS_DIED.value, RunEnd.INTERRUPTED.value, STOPPED_BY_SERVE]).fetchall()
    return [row[0] for row in rows]


def mark_stopped_by_serve(conn: duckdb.DuckDBPyConnection, execution_id: str, run_number: int,
                          detail: str) -> None:
    """Say on an interrupted run that ``zart serve`` stopped it (see :data:`STOPPED_BY_SERVE`)."""
    conn.execute("UPDATE runs SET end_detail = ? WHERE execution_id = ? AND run_number = ? AND ended_by = ?",
                 [detail, execution_id, run_number, RunEnd.INTERRUPTED.value])
