"""SQL over stored tables: an in-memory DuckDB connection with one view per Parquet file.

Never the journal's connection nor its file: a query over tables never holds (or waits for) the journal.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._errors import QueryError
from .._stored import StoredValue, from_blob
from . import db

LISTING = "zart_tables"


def quote(name: str) -> str:
    """``name`` as a DuckDB identifier: in double quotes, a double quote doubled."""
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def query(sql: str, views: Sequence[tuple[str, str, str, str, str]]) -> Any:
    """Run ``sql`` on a new in-memory connection where each of ``views`` (view name, execution id, step
    key, kind, Parquet path) is a view of its file, and ``zart_tables`` lists them; a pandas DataFrame."""
    duckdb = db.load()
    conn = duckdb.connect(":memory:")
    try:
        conn.execute("CREATE TEMP TABLE _zart_tables (view VARCHAR, execution_id VARCHAR, step_key VARCHAR, "
                     "kind VARCHAR, path VARCHAR)")
        if views:
            conn.executemany("INSERT INTO _zart_tables VALUES (?, ?, ?, ?, ?)", [list(view) for view in views])
        conn.execute(f"CREATE TEMP VIEW {LISTING} AS SELECT * FROM _zart_tables")
        for view, _, _, _, path in views:
            conn.execute(f"CREATE TEMP VIEW {quote(view)} AS SELECT * FROM read_parquet({_literal(path)})")
        try:
            return conn.execute(sql).df()
        except duckdb.Error as exc:
            raise QueryError(f"{exc} (in: {sql.strip()[:200]})") from None
    finally:
        conn.close()


def stored_values(conn: Any, execution_id: str | None = None, step_key: str | None = None, *,
                  tables_only: bool = False, longest: int = 4096) -> list[StoredValue]:
    """The value store references of the completed current steps (of one execution, one step), in
    execution and key order: the blobs short enough to be one, decoded (never unpickled)."""
    where = ["current", "status = 'completed'", "output IS NOT NULL", "octet_length(output) <= ?"]
    params: list[Any] = [longest]
    if execution_id is not None:
        where.append("execution_id = ?")
        params.append(execution_id)
    if step_key is not None:
        where.append("step_key = ?")
        params.append(step_key)
    rows = conn.execute(f"SELECT s.execution_id, s.step_key, s.output, v.path FROM steps s LEFT JOIN value_stores v "
                        f"USING (execution_id) WHERE {' AND '.join(where)} ORDER BY execution_id, step_key",
                        params).fetchall()
    found = [from_blob(row[0], row[1], row[2], row[3]) for row in rows]
    return [s for s in found if s is not None and (s.is_table or not tables_only)]
