"""Which value store holds an execution's stored values: the SQL, as functions of a connection.

An execution run with ``value_store=`` (or ``$ZART_VALUE_STORE`` at its first run) keeps its stored
values in that folder, not in ``<journal>.values``; a row of ``value_stores`` says so (no row: the
journal's own store). The row is written before the first value goes there (``set_store``, through
``Journal.transact``). Reads go through ``Journal.query``.

The row goes with its execution (``forget``, in the deletion's transaction: its id may then be reused with
another store), but its folder is not forgotten: it stays in the list ``zart gc`` visits (``stores``) as a
``zart_meta`` row ``value_store_left:<folder>`` (no schema change) until gc finds nothing unreferenced left
in it (``settle``), so files a crash or a young age kept there are still freed by a later gc. A row an
older zart_nb kept for a deleted execution stays visited, and moves to that list when a reuse of its id
replaces it (``set_store``).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .._valueref import REF_END, REF_MAGIC

if TYPE_CHECKING:
    import duckdb

LEFT = "value_store_left:"  # a zart_meta key: a deleted execution's folder gc still visits
# The blobs that begin with REF_MAGIC, as a range of BLOB values [low, high): a reader of references
# compares in DuckDB instead of fetching every short pickle to test it in Python (outputs_of on 100,000
# steps of 1 KB pickled outputs: 0.23 s and +231 MB of peak RSS before, 0.12 s and +107 MB with it).
SPAN = (REF_MAGIC, REF_END)


def span(column: str) -> str:
    """SQL true when the BLOB ``column`` is a value store reference (two parameters: ``*SPAN``)."""
    return f"{column} >= ? AND {column} < ?"


def store_of(conn: duckdb.DuckDBPyConnection, execution_id: str) -> str | None:
    """The value store folder journaled for ``execution_id`` (None: the journal's own)."""
    row = conn.execute("SELECT path FROM value_stores WHERE execution_id = ?", [execution_id]).fetchone()
    return None if row is None else str(row[0])


def set_store(conn: duckdb.DuckDBPyConnection, execution_id: str, path: str | None) -> None:
    """Journal ``path`` as the value store of ``execution_id`` (None: the journal's own). A row it replaces
    naming another folder (an older zart_nb's row of a deleted execution whose id is reused) leaves that
    folder in the list gc visits."""
    old = store_of(conn, execution_id)
    if old == path:
        return
    if old is not None:
        _leave(conn, old)
        conn.execute("DELETE FROM value_stores WHERE execution_id = ?", [execution_id])
    if path is not None:
        conn.execute("INSERT INTO value_stores VALUES (?, ?)", [execution_id, path])


def forget(conn: duckdb.DuckDBPyConnection, execution_ids: Sequence[str]) -> None:
    """Remove the value store rows of executions being deleted (in the caller's transaction); each folder
    stays in the list gc visits until it holds nothing unreferenced (``settle``)."""
    ids = list(execution_ids)
    for (path,) in conn.execute("SELECT DISTINCT path FROM value_stores WHERE list_contains(?, execution_id)",
                                [ids]).fetchall():
        _leave(conn, str(path))
    conn.execute("DELETE FROM value_stores WHERE list_contains(?, execution_id)", [ids])


def _leave(conn: duckdb.DuckDBPyConnection, path: str) -> None:
    conn.execute("INSERT INTO zart_meta VALUES (?, ?) ON CONFLICT DO NOTHING", [LEFT + path, path])


def left(conn: duckdb.DuckDBPyConnection) -> list[str]:
    """The folders gc still visits for deleted executions (left by ``forget`` or ``set_store``)."""
    return [str(row[0]) for row in conn.execute(
        "SELECT value FROM zart_meta WHERE starts_with(key, ?) ORDER BY value", [LEFT]).fetchall()]


def settle(conn: duckdb.DuckDBPyConnection, path: str) -> None:
    """gc left nothing unreferenced in the folder ``path`` (or it is gone, or another journal's now): it is
    no longer visited for deleted executions (a live execution's row still names it if it has one). A row
    an older zart_nb kept for a deleted execution stays (a new execution's row, written before its
    execution's, looks the same to a gc running beside its engine)."""
    conn.execute("DELETE FROM zart_meta WHERE key = ?", [LEFT + path])


def stores(conn: duckdb.DuckDBPyConnection) -> list[str]:
    """Every value store folder other than the journal's own that an execution was ever run with, and that
    gc has not yet found empty of a deleted execution's files (``left``)."""
    return [str(row[0]) for row in conn.execute(
        "SELECT path FROM value_stores UNION SELECT value FROM zart_meta WHERE starts_with(key, ?) ORDER BY 1",
        [LEFT]).fetchall()]


def outputs_of(conn: duckdb.DuckDBPyConnection, execution_id: str) -> tuple[str | None, list[bytes]]:
    """``(value store or None, references)``: the store of ``execution_id`` and every value store reference
    it journaled (its step records' outputs, superseded ones too, its input and output). Only references
    are fetched (a range on ``REF_MAGIC``), not its short pickles."""
    blobs = [row[0] for row in conn.execute(
        f"""SELECT output FROM steps WHERE execution_id = ? AND {span("output")}
            UNION ALL SELECT output FROM executions WHERE execution_id = ? AND {span("output")}
            UNION ALL SELECT input FROM executions WHERE execution_id = ? AND {span("input")}""",
        [execution_id, *SPAN, execution_id, *SPAN, execution_id, *SPAN]).fetchall()]
    return store_of(conn, execution_id), blobs


def stores_of_journal(conn: duckdb.DuckDBPyConnection) -> tuple[str, list[str]]:
    """``(the journal's id, every value store folder other than its own)``: what the read API's
    ``value_stores`` checks each folder's claim against (``_storefolders``)."""
    row = conn.execute("SELECT value FROM zart_meta WHERE key = 'journal_id'").fetchone()
    return ("" if row is None else str(row[0])), stores(conn)


def reference_blobs(conn: duckdb.DuckDBPyConnection) -> list[tuple[str | None, bytes]]:
    """``(value store or None, reference)`` of every journaled value store reference (of any step record,
    superseded ones too, and of every execution's input and output), with the store of its execution (None:
    the journal's own): what ``zart gc``, a deletion, retention and ``zart gc --verify`` read, folder by
    folder. Only references are fetched (a range on ``REF_MAGIC``), not every short pickle."""
    return [(row[0], row[1]) for row in conn.execute(
        f"""SELECT v.path, b.blob FROM (
               SELECT execution_id, output AS blob FROM steps WHERE {span("output")}
               UNION ALL SELECT execution_id, output FROM executions WHERE {span("output")}
               UNION ALL SELECT execution_id, input FROM executions WHERE {span("input")}) b
           LEFT JOIN value_stores v USING (execution_id)""", [*SPAN, *SPAN, *SPAN]).fetchall()]
