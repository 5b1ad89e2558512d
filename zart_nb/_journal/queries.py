"""The reads behind :class:`~zart_nb._journal.reader.FileJournalReader`: typed records, paged, and never
a pickle column (the widget, the CLI, the TUI and the monitor read through these)."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from .._records import (
    AttemptRecord,
    DefinitionRecord,
    ExecutionRecord,
    ExecutionStatus,
    RunEnd,
    RunRecord,
    StepRecord,
    StepStatus,
)

if TYPE_CHECKING:
    import duckdb


def _ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value)


def list_executions(conn: duckdb.DuckDBPyConnection, status: str | None = None, limit: int = 200,
                    offset: int = 0, search: str | None = None,
                    execution_id: str | None = None) -> list[ExecutionRecord]:
    """Executions, newest first, with their current step counts."""
    filters: list[str] = []
    params: list[object] = []
    if status:
        filters.append("e.status = ?")
        params.append(str(status))
    if search:
        filters.append("(contains(lower(e.execution_id), ?) OR contains(lower(e.workflow), ?))")
        params += [search.lower(), search.lower()]
    if execution_id is not None:
        filters.append("e.execution_id = ?")
        params.append(execution_id)
    where = f"WHERE {' AND '.join(filters)}" if filters else ""
    # step_counts is kept by the fold: a page never counts the steps table (bench/bench_p4.py)
    rows = conn.execute(
        f"""SELECT e.execution_id, e.workflow, e.status, e.run_number, e.input_preview,
                   e.output_preview, e.error, e.traceback, e.created_at, e.started_at,
                   e.finished_at, e.owner_pid,
                   coalesce(c.total, 0), coalesce(c.completed, 0), coalesce(c.failed, 0),
                   r.ended_by, r.end_detail
            FROM executions e LEFT JOIN step_counts c USING (execution_id)
            LEFT JOIN runs r ON r.execution_id = e.execution_id AND r.run_number = e.run_number
            {where} ORDER BY e.created_at DESC, e.execution_id LIMIT {int(limit)} OFFSET {int(offset)}""",
        params).fetchall()
    return [ExecutionRecord(r[0], r[1], ExecutionStatus(r[2]), r[3], r[4], r[5], r[6], r[7],
                            _ts(r[8]), _ts(r[9]), _ts(r[10]), r[11], r[12], r[13], r[14], 0,
                            None if r[15] is None else RunEnd(r[15]), r[16])
            for r in rows]


def execution_record(conn: duckdb.DuckDBPyConnection, execution_id: str) -> ExecutionRecord | None:
    records = list_executions(conn, limit=1, execution_id=execution_id)
    return records[0] if records else None


def stats(conn: duckdb.DuckDBPyConnection) -> dict[ExecutionStatus, int]:
    """How many executions are in each status."""
    rows = conn.execute("SELECT status, count(*) FROM executions GROUP BY status").fetchall()
    return {ExecutionStatus(status): count for status, count in rows}


def list_steps(conn: duckdb.DuckDBPyConnection, execution_id: str, current_only: bool = True,
               offset: int = 0, limit: int | None = None) -> list[StepRecord]:
    page = f"LIMIT {int(limit)} OFFSET {int(offset)}" if limit is not None else f"OFFSET {int(offset)}"
    rows = conn.execute(
        f"""SELECT execution_id, step_key, name, seq, status, run_number, reason, attempts,
                   args_preview, output_preview, error, traceback, scheduled_at, started_at,
                   finished_at, worker, log
            FROM steps WHERE execution_id = ? {"AND current" if current_only else ""}
            ORDER BY run_number, seq {page}""", [execution_id]).fetchall()
    return [StepRecord(r[0], r[1], r[2], r[3], StepStatus(r[4]), r[5], r[6], r[7], r[8], r[9],
                       r[10], r[11], _ts(r[12]), _ts(r[13]), _ts(r[14]), r[15], r[16]) for r in rows]


def list_attempts(conn: duckdb.DuckDBPyConnection, execution_id: str,
                  step_key: str | None = None) -> list[AttemptRecord]:
    rows = conn.execute(
        f"""SELECT execution_id, step_key, run_number, attempt, status, error, traceback,
                   started_at, finished_at, worker, log FROM attempts WHERE execution_id = ?
            {"AND step_key = ?" if step_key else ""} ORDER BY run_number, step_key, attempt""",
        [execution_id, step_key] if step_key else [execution_id]).fetchall()
    return [AttemptRecord(r[0], r[1], r[2], r[3], StepStatus(r[4]), r[5], r[6], _ts(r[7]),
                          _ts(r[8]), r[9], r[10]) for r in rows]


def list_runs(conn: duckdb.DuckDBPyConnection, execution_id: str) -> list[RunRecord]:
    rows = conn.execute(
        """SELECT execution_id, run_number, status, started_at, finished_at, pid, executed,
                  reused, ended_by, end_detail, alive_at FROM runs WHERE execution_id = ? ORDER BY run_number""",
        [execution_id]).fetchall()
    return [RunRecord(r[0], r[1], ExecutionStatus(r[2]), _ts(r[3]), _ts(r[4]), r[5], r[6], r[7],
                      None if r[8] is None else RunEnd(r[8]), r[9], _ts(r[10]))
            for r in rows]


def list_definitions(conn: duckdb.DuckDBPyConnection) -> list[DefinitionRecord]:
    """Every journaled definition with its source (the pickle column is not read)."""
    rows = conn.execute("SELECT def_id, kind, name, source FROM definitions ORDER BY kind, name").fetchall()
    return [DefinitionRecord(*row) for row in rows]
