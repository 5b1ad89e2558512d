"""SQL over stored tables: an in-memory DuckDB connection with one view per Parquet file.

Never the journal's connection nor its file: a query over tables never holds (or waits for) the journal.
"""
from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from .._errors import QueryError
from .._stored import StoredValue, from_blob
from .._stored import quote_name as quote
from .._valueref import prefix_span
from .._values import INPUT_KEY, OUTPUT_KEY, REF_MAGIC, TABLES
from . import db, stores

LISTING = "zart_tables"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


_FILE = "zart_file"  # the column read_parquet names each row's file in (dropped from a step's view)


def _step_views(views: Sequence[tuple[str, str, str, str, str, str | None]]) -> dict[str, list[str]]:
    """``<execution id>/<step name>`` -> the files of every key of that step (a fan-out's outputs: the view
    ``"exec-1/load-{region}"`` or ``"exec-1/fetch"``), for each step name that names no key's view."""
    taken = {view[0] for view in views}
    found: dict[str, list[str]] = {}
    for _, execution_id, _, _, path, step in views:
        name = f"{execution_id}/{step}"
        if step is not None and name not in taken:
            found.setdefault(name, []).append(path)
    return found


class NotAmongViews(QueryError):
    """A query run with some views only (``only``) read a table it has no view of."""


def query(sql: str, views: Sequence[tuple[str, str, str, str, str, str | None]], *,
          only: Collection[str] | None = None) -> Any:
    """Run ``sql`` on a new in-memory connection where each of ``views`` (view name, execution id, step
    key, kind, Parquet path, step name or None) is a view of its file, each step name of an execution a
    view of all its keys' tables (:func:`_step_views`), and ``zart_tables`` lists the files; a pandas
    DataFrame. ``only``: the view names the query names (the views made; ``views`` holds the tables they
    read); a catalog error (a table it has no view of) then raises :class:`NotAmongViews`, for the caller to
    run it again with every view."""
    duckdb = db.load()
    conn = duckdb.connect(":memory:")
    try:
        conn.execute("CREATE TEMP TABLE _zart_tables (view VARCHAR, execution_id VARCHAR, step_key VARCHAR, "
                     "kind VARCHAR, path VARCHAR, step VARCHAR)")
        if views:
            conn.executemany("INSERT INTO _zart_tables VALUES (?, ?, ?, ?, ?, ?)", [list(view) for view in views])
        conn.execute(f"CREATE TEMP VIEW {LISTING} AS SELECT * FROM _zart_tables")
        for view, _, _, _, path, _ in views:
            if only is None or view in only:
                conn.execute(f"CREATE TEMP VIEW {quote(view)} AS SELECT * FROM read_parquet({_literal(path)})")
        for view, paths in _step_views(views).items():
            if only is not None and view not in only:
                continue
            listed = ", ".join(_literal(path) for path in paths)
            conn.execute(f"CREATE TEMP VIEW {quote(view)} AS SELECT t.step_key, p.* EXCLUDE ({_FILE}) FROM "
                         f"read_parquet([{listed}], union_by_name = true, filename = {_literal(_FILE)}) p "
                         f"JOIN _zart_tables t ON t.path = p.{_FILE}")
        try:
            return conn.execute(sql).df()
        except duckdb.CatalogException as exc:
            raise (QueryError if only is None else NotAmongViews)(f"{exc} (in: {sql.strip()[:200]})") from None
        except duckdb.Error as exc:
            raise QueryError(f"{exc} (in: {sql.strip()[:200]})") from None
    finally:
        conn.close()


def stored_values(conn: Any, execution_id: str | None = None, step_key: str | None = None, *,
                  tables_only: bool = False) -> list[StoredValue]:
    """The value store references of the completed current steps (of one execution, one step), of the
    completed executions' outputs stored as tables (under the key ``OUTPUT_KEY``) and of every execution's
    input stored as a table (``INPUT_KEY``), in execution and key order, decoded (never unpickled). Only
    references are fetched (a range on ``REF_MAGIC``; with ``tables_only``, on a table's reference), not
    the short pickles beside them."""
    tables_span = list(prefix_span(_table_ref_start()))
    where = [stores.span("output")]
    params: list[Any] = list(tables_span if tables_only else stores.SPAN)
    if execution_id is not None:
        where.append("execution_id = ?")
        params.append(execution_id)
    steps = ["current", "status = 'completed'", *where]
    values: list[Any] = list(params)
    if step_key is not None:
        steps.append("step_key = ?")
        values.append(step_key)
    parts = [f"SELECT execution_id, step_key, output, name FROM steps WHERE {' AND '.join(steps)}"]
    if step_key in (None, OUTPUT_KEY):  # an execution's output is listed when it is a table
        outputs = ["status = 'completed'", *where]
        parts.append(f"SELECT execution_id, ?, output, NULL FROM executions WHERE {' AND '.join(outputs)}")
        values += [OUTPUT_KEY, *tables_span, *params[2:]]
    if step_key in (None, INPUT_KEY):  # and its input when it is a table, from its first run on
        inputs = [stores.span("input"), *where[1:]]
        parts.append(f"SELECT execution_id, ?, input, NULL FROM executions WHERE {' AND '.join(inputs)}")
        values += [INPUT_KEY, *tables_span, *params[2:]]
    rows = conn.execute(f"SELECT b.*, v.path FROM ({' UNION ALL '.join(parts)}) b LEFT JOIN value_stores v "
                        "USING (execution_id) ORDER BY execution_id, step_key", values).fetchall()
    found = [from_blob(row[0], row[1], row[2], row[4], row[3]) for row in rows]
    return [s for s in found if s is not None and (s.is_table or not tables_only)]


def _table_ref_start() -> bytes:
    """How a journaled reference to a stored table begins (``_values.REF_MAGIC`` then ``tables/``)."""
    return REF_MAGIC + f"{TABLES}/".encode()
