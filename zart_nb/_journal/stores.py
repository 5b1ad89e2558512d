"""Which value store holds an execution's stored values: the SQL, as functions of a connection.

An execution run with ``value_store=`` (or ``$ZART_VALUE_STORE`` at its first run) keeps its stored
values in that folder, not in ``<journal>.values``; a row of ``value_stores`` says so (no row: the
journal's own store). The row is written before the first value goes there (``set_store``, through
``Journal.transact``), and outlives the execution's deletion: ``zart gc`` still visits that folder for
the files left there. Reads go through ``Journal.query``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb


def store_of(conn: duckdb.DuckDBPyConnection, execution_id: str) -> str | None:
    """The value store folder journaled for ``execution_id`` (None: the journal's own)."""
    row = conn.execute("SELECT path FROM value_stores WHERE execution_id = ?", [execution_id]).fetchone()
    return None if row is None else str(row[0])


def set_store(conn: duckdb.DuckDBPyConnection, execution_id: str, path: str | None) -> None:
    """Journal ``path`` as the value store of ``execution_id`` (None: the journal's own)."""
    conn.execute("DELETE FROM value_stores WHERE execution_id = ?", [execution_id])
    if path is not None:
        conn.execute("INSERT INTO value_stores VALUES (?, ?)", [execution_id, path])


def stores(conn: duckdb.DuckDBPyConnection) -> list[str]:
    """Every value store folder other than the journal's own that an execution was ever run with."""
    return [str(row[0]) for row in conn.execute("SELECT DISTINCT path FROM value_stores ORDER BY path").fetchall()]


def stores_of_journal(conn: duckdb.DuckDBPyConnection) -> tuple[str, list[str]]:
    """``(the journal's id, every value store folder other than its own)``: what the read API's
    ``value_stores`` checks each folder's claim against (``_storefolders``)."""
    row = conn.execute("SELECT value FROM zart_meta WHERE key = 'journal_id'").fetchone()
    return ("" if row is None else str(row[0])), stores(conn)


def references(conn: duckdb.DuckDBPyConnection, longest: int = 4096) -> list[tuple[str | None, bytes]]:
    """``(value store or None, blob)`` of every journaled blob short enough to be a value store reference
    (every step record's output, superseded ones too, every execution's input and output)."""
    return [(row[0], row[1]) for row in conn.execute(
        """SELECT v.path, b.blob FROM (
               SELECT execution_id, output AS blob FROM steps WHERE output IS NOT NULL AND octet_length(output) <= ?
               UNION ALL SELECT execution_id, output FROM executions
                   WHERE output IS NOT NULL AND octet_length(output) <= ?
               UNION ALL SELECT execution_id, input FROM executions
                   WHERE input IS NOT NULL AND octet_length(input) <= ?) b
           LEFT JOIN value_stores v USING (execution_id)""", [longest, longest, longest]).fetchall()]
