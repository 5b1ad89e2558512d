"""The reads behind :class:`~zart_nb._journal.reader.FileJournalReader`: typed records, paged, and never
a pickle column (the widget, the CLI, the TUI and the monitor read through these)."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from .._errors import ConfigurationError
from .._reader import check_sort, check_step_status
from .._records import (
    AttemptRecord,
    DefinitionRecord,
    ExecutionRecord,
    ExecutionStatus,
    RunEnd,
    RunRecord,
    RunTrigger,
    StepRecord,
    StepStatus,
)

if TYPE_CHECKING:
    import duckdb


def _ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value)


# The executions' sort keys (``JournalReader.EXECUTION_SORT_KEYS``) as SQL: a key reaches the query only
# through this table, never as text of its own. Ties go by id, nulls last either way.
_EXECUTION_ORDER = {
    "created": "e.created_at", "id": "e.execution_id", "workflow": "e.workflow", "status": "e.status",
    "done": "coalesce(c.completed, 0)", "total": "coalesce(c.total, 0)", "run": "e.run_number",
    "started": "e.started_at", "duration": "coalesce(e.finished_at, epoch(current_timestamp)) - e.started_at",
}


def list_executions(conn: duckdb.DuckDBPyConnection, status: str | None = None, limit: int = 200,
                    offset: int = 0, search: str | None = None,
                    execution_id: str | None = None, sort: str = "created",
                    descending: bool = True, parent: str | None = None) -> list[ExecutionRecord]:
    """Executions with their current step counts, by ``sort`` (newest first by default) across all rows."""
    order = _EXECUTION_ORDER[check_sort(sort)]
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
    if parent is not None:
        filters.append("e.parent_execution_id = ?")
        params.append(parent)
    where = f"WHERE {' AND '.join(filters)}" if filters else ""
    # step_counts is kept by the fold: a page never counts the steps table (bench/bench_p4.py)
    rows = conn.execute(
        f"""SELECT e.execution_id, e.workflow, e.status, e.run_number, e.input_preview,
                   e.output_preview, e.error, e.traceback, e.created_at, e.started_at,
                   e.finished_at, e.owner_pid,
                   coalesce(c.total, 0), coalesce(c.completed, 0), coalesce(c.failed, 0),
                   r.ended_by, r.end_detail, e.parent_execution_id, e.waits_for, e.wake_at
            FROM executions e LEFT JOIN step_counts c USING (execution_id)
            LEFT JOIN runs r ON r.execution_id = e.execution_id AND r.run_number = e.run_number
            {where} ORDER BY {order} {"DESC" if descending else "ASC"} NULLS LAST, e.execution_id
            LIMIT {int(limit)} OFFSET {int(offset)}""",
        params).fetchall()
    return [ExecutionRecord(r[0], r[1], ExecutionStatus(r[2]), r[3], r[4], r[5], r[6], r[7],
                            _ts(r[8]), _ts(r[9]), _ts(r[10]), r[11], r[12], r[13], r[14], 0,
                            None if r[15] is None else RunEnd(r[15]), r[16], r[17], r[18], _ts(r[19]))
            for r in rows]


def execution_record(conn: duckdb.DuckDBPyConnection, execution_id: str) -> ExecutionRecord | None:
    records = list_executions(conn, limit=1, execution_id=execution_id)
    return records[0] if records else None


def stats(conn: duckdb.DuckDBPyConnection) -> dict[ExecutionStatus, int]:
    """How many executions are in each status."""
    rows = conn.execute("SELECT status, count(*) FROM executions GROUP BY status").fetchall()
    return {ExecutionStatus(status): count for status, count in rows}


_STEP_COLUMNS = """execution_id, step_key, name, seq, status, run_number, reason, attempts, args_preview,
                   output_preview, error, traceback, scheduled_at, started_at, finished_at, worker, log"""


def _anchor(conn: duckdb.DuckDBPyConnection, execution_id: str, step_key: str) -> tuple[int, int]:
    """``(run_number, seq)`` of a step's current row: where a keyset page starts or ends."""
    row = conn.execute("SELECT run_number, seq FROM steps WHERE execution_id = ? AND step_key = ? AND current",
                       [execution_id, step_key]).fetchone()
    if row is None:
        raise ConfigurationError(f"no step {step_key!r} in execution {execution_id!r} to page from")
    return int(row[0]), int(row[1])


def _step_filter(execution_id: str, current_only: bool, status: str | None) -> tuple[str, list[object]]:
    where = "execution_id = ?"
    params: list[object] = [execution_id]
    if current_only:
        where += " AND current"
    if status is not None:
        where += " AND status = ?"
        params.append(check_step_status(status))
    return where, params


# Call order is (run_number, seq, step_key); a keyset bound compares against it, so a page after (or
# before) a step reads only what lies beyond it: no OFFSET over the rows before (bench/bench_steps.py).
_AFTER = "(run_number > ? OR (run_number = ? AND (seq > ? OR (seq = ? AND step_key > ?))))"
_BEFORE = "(run_number < ? OR (run_number = ? AND (seq < ? OR (seq = ? AND step_key < ?))))"


def _bound(conn: duckdb.DuckDBPyConnection, execution_id: str, step_key: str) -> list[object]:
    run, seq = _anchor(conn, execution_id, step_key)
    return [run, run, seq, seq, step_key]


def list_steps(conn: duckdb.DuckDBPyConnection, execution_id: str, current_only: bool = True,
               offset: int = 0, limit: int | None = None, status: str | None = None,
               after: str | None = None, before: str | None = None,
               from_end: bool = False) -> list[StepRecord]:
    where, params = _step_filter(execution_id, current_only, status)
    if after is not None:
        where += f" AND {_AFTER}"
        params += _bound(conn, execution_id, after)
    if before is not None:
        where += f" AND {_BEFORE}"
        params += _bound(conn, execution_id, before)
    backwards = from_end or before is not None
    page = f"LIMIT {int(limit)} OFFSET {int(offset)}" if limit is not None else f"OFFSET {int(offset)}"
    direction = "DESC" if backwards else "ASC"
    rows = conn.execute(
        f"""SELECT {_STEP_COLUMNS} FROM steps WHERE {where}
            ORDER BY run_number {direction}, seq {direction}, step_key {direction} {page}""", params).fetchall()
    if backwards:
        rows.reverse()
    return [StepRecord(r[0], r[1], r[2], r[3], StepStatus(r[4]), r[5], r[6], r[7], r[8], r[9],
                       r[10], r[11], _ts(r[12]), _ts(r[13]), _ts(r[14]), r[15], r[16]) for r in rows]


def count_steps(conn: duckdb.DuckDBPyConnection, execution_id: str, current_only: bool = True,
                status: str | None = None) -> int:
    where, params = _step_filter(execution_id, current_only, status)
    return int(conn.execute(f"SELECT count(*) FROM steps WHERE {where}", params).fetchone()[0])  # type: ignore[index]


def step_index(conn: duckdb.DuckDBPyConnection, execution_id: str, step_key: str, current_only: bool = True,
               status: str | None = None) -> int | None:
    """The 0-based place of ``step_key`` among the steps :func:`list_steps` lists, or None when it is not
    among them (no such step, or filtered out)."""
    where, params = _step_filter(execution_id, current_only, status)
    row = conn.execute(f"SELECT run_number, seq, status FROM steps WHERE {where} AND step_key = ?"
                       + (" AND current" if not current_only else ""),
                       [*params, step_key]).fetchone()
    if row is None:
        return None
    run, seq = int(row[0]), int(row[1])
    found = conn.execute(f"SELECT count(*) FROM steps WHERE {where} AND {_BEFORE}",
                         [*params, run, run, seq, seq, step_key]).fetchone()
    return int(found[0])  # type: ignore[index]


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
                  reused, ended_by, end_detail, alive_at, trigger, trigger_detail FROM runs
           WHERE execution_id = ? ORDER BY run_number""",
        [execution_id]).fetchall()
    return [RunRecord(r[0], r[1], ExecutionStatus(r[2]), _ts(r[3]), _ts(r[4]), r[5], r[6], r[7],
                      None if r[8] is None else RunEnd(r[8]), r[9], _ts(r[10]),
                      None if r[11] is None else RunTrigger(r[11]), r[12])
            for r in rows]


def list_definitions(conn: duckdb.DuckDBPyConnection) -> list[DefinitionRecord]:
    """Every journaled definition with its source (the pickle column is not read)."""
    rows = conn.execute("SELECT def_id, kind, name, source FROM definitions ORDER BY kind, name").fetchall()
    return [DefinitionRecord(*row) for row in rows]
