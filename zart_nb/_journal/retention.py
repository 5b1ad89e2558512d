"""The SQL of retention (``zart.garbage_collect``): which finished executions a rule leaves out, and
their removal with every row they own. Only finished executions (completed, failed, cancelled) are
ever chosen: running, pending and interrupted ones are never touched, whatever the rule."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from . import stores

if TYPE_CHECKING:
    import duckdb

FINISHED = ("completed", "failed", "cancelled")
# Every table with rows of an execution, children first (executions last).
OWNED_TABLES = ("attempts", "steps", "step_counts", "in_flight", "events", "runs", "executions")


class Candidate(NamedTuple):
    """A finished execution, with when it ended (its creation when it has no end time)."""

    execution_id: str
    workflow: str
    status: str
    ended_at: float


class Removed(NamedTuple):
    """What removing executions took out: rows per table, the value store references their rows held,
    and those every other row holds (what stays referenced), each with the value store of its execution
    (None: the journal's own). Only references are read (``stores.span``), never the short pickles."""

    ids: list[str]
    rows: dict[str, int]
    blobs: list[tuple[str | None, bytes]]
    remaining: list[tuple[str | None, bytes]]


def finished(conn: duckdb.DuckDBPyConnection, workflow: str | None = None) -> list[Candidate]:
    """Every finished execution (of ``workflow`` when given), newest end first (ties by id)."""
    where = "status IN (?, ?, ?)"
    params: list[object] = list(FINISHED)
    if workflow is not None:
        where += " AND workflow = ?"
        params.append(workflow)
    rows = conn.execute(
        f"""SELECT execution_id, workflow, status, coalesce(finished_at, started_at, created_at, 0)
            FROM executions WHERE {where}
            ORDER BY coalesce(finished_at, started_at, created_at, 0) DESC, execution_id""", params).fetchall()
    return [Candidate(*row) for row in rows]


def remove(conn: duckdb.DuckDBPyConnection, ids: Sequence[str]) -> Removed:
    """Delete the executions of ``ids`` that are still finished, with every row they own, in the caller's
    transaction; returns what went. An id that is no longer finished (a resume began meanwhile) stays."""
    if not ids:
        return Removed([], {}, [], stores.reference_blobs(conn))
    conn.execute("CREATE OR REPLACE TEMP TABLE zart_retired (execution_id VARCHAR)")
    try:
        conn.executemany("INSERT INTO zart_retired VALUES (?)", [[i] for i in ids])
        conn.execute("""DELETE FROM zart_retired WHERE execution_id NOT IN
                        (SELECT execution_id FROM executions WHERE status IN (?, ?, ?))""", list(FINISHED))
        retired = [row[0] for row in conn.execute(
            "SELECT execution_id FROM zart_retired ORDER BY execution_id").fetchall()]
        retired_only = "execution_id IN (SELECT execution_id FROM zart_retired)"
        blobs = [(row[0], row[1]) for row in conn.execute(
            f"""SELECT v.path, b.blob FROM (
                   SELECT execution_id, output AS blob FROM steps WHERE {retired_only} AND {stores.span("output")}
                   UNION ALL SELECT execution_id, output FROM executions
                       WHERE {retired_only} AND {stores.span("output")}
                   UNION ALL SELECT execution_id, input FROM executions
                       WHERE {retired_only} AND {stores.span("input")}) b
               LEFT JOIN value_stores v USING (execution_id)""", [*stores.SPAN] * 3).fetchall()]
        stores.forget(conn, retired)  # their folders stay visited by gc until nothing of theirs is left
        rows: dict[str, int] = {}
        for table in OWNED_TABLES:
            counted = conn.execute(f"SELECT count(*) FROM {table} WHERE execution_id IN "
                                   "(SELECT execution_id FROM zart_retired)").fetchone()
            rows[table] = counted[0] if counted else 0
            if rows[table]:
                conn.execute(f"DELETE FROM {table} WHERE execution_id IN (SELECT execution_id FROM zart_retired)")
        return Removed(retired, rows, blobs, stores.reference_blobs(conn))
    finally:
        conn.execute("DROP TABLE IF EXISTS zart_retired")
