"""The journal's tables: migrations by version, and the row types that are their column lists.

``StepRow`` and ``AttemptRow`` are what the engine builds and the side log carries; their field
order is the column order the appender writes, so a row can never be built in another order.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from .._errors import JournalCorrupt, JournalSchemaTooNew
from . import db

if TYPE_CHECKING:
    import duckdb

T = TypeVar("T")

SCHEMA_VERSION = 11


class StepRow(NamedTuple):
    """One finished step as journaled (a row of ``steps``)."""

    execution_id: str
    step_key: str
    run_number: int
    seq: int
    name: str
    def_id: str
    args: bytes
    args_hash: str
    args_preview: str
    status: str
    output: bytes | None
    output_preview: str | None
    error: str | None
    error_type: str | None
    traceback: str | None
    attempts: int
    reason: str
    current: bool
    scheduled_at: float | None
    started_at: float | None
    finished_at: float | None
    worker: str | None
    log: str | None = None  # what the attempt printed (its first 16 KiB and last 64 KiB, ``capture``)


class AttemptRow(NamedTuple):
    """A failed attempt of a step that was tried again (a row of ``attempts``)."""

    execution_id: str
    step_key: str
    run_number: int
    attempt: int
    status: str
    error: str | None
    traceback: str | None
    started_at: float | None
    finished_at: float | None
    worker: str | None
    log: str | None = None


class DefinitionRow(NamedTuple):
    """A workflow or step definition, once per code hash (a row of ``definitions``)."""

    def_id: str
    kind: str
    name: str
    source: str
    pickle: bytes
    created_at: float


class InFlightRow(NamedTuple):
    """An attempt running when its run's heartbeat was written (a row of ``in_flight``): what is listed
    as ``interrupted`` if the process running it dies."""

    execution_id: str
    run_number: int
    step_key: str
    name: str
    seq: int
    def_id: str
    args_hash: str
    args_preview: str
    attempt: int
    started_at: float | None
    worker: str | None
    log: str | None  # what it printed so far (its first 16 KiB and last 64 KiB, ``capture``)


STEP_COLUMNS: tuple[str, ...] = StepRow._fields
ATTEMPT_COLUMNS: tuple[str, ...] = AttemptRow._fields
IN_FLIGHT_COLUMNS: tuple[str, ...] = InFlightRow._fields

# (Re)builds step_counts from the steps table: the migration that adds it, and bulk loads.
RECOUNT_STEPS = """
    INSERT OR REPLACE INTO step_counts
    SELECT execution_id, count(*), count(*) FILTER (WHERE status = 'completed'),
           count(*) FILTER (WHERE status = 'failed')
    FROM steps WHERE current GROUP BY execution_id"""

# Recurring executions (``zart.recurring``): one schedule per workflow name; ``zart serve`` starts an
# execution ``<workflow>@<tick>`` per tick after ``last_tick`` (POSIX seconds; the registration time at
# first, so no tick before it runs). ``data`` is a pickle read only by serve; ``data_preview`` is text.
SCHEDULES_TABLE = """CREATE TABLE schedules (
    workflow VARCHAR PRIMARY KEY, def_id VARCHAR, cron VARCHAR, every DOUBLE, tz VARCHAR, overlap VARCHAR,
    data BLOB, data_preview VARCHAR, paused BOOLEAN, created_at DOUBLE, updated_at DOUBLE, anchor DOUBLE,
    last_tick DOUBLE, last_execution VARCHAR)"""

# Events sent to executions (zart.send_event): kept until a wait consumes one (``consumed_by`` its key,
# set in the same transaction as it is handed over); a wait that timed out consumes a row without a payload.
EVENTS_TABLE = """CREATE TABLE events (
    execution_id VARCHAR, seq BIGINT, name VARCHAR, payload VARCHAR, idempotency_key VARCHAR,
    sent_at DOUBLE, sender VARCHAR, consumed_by VARCHAR, consumed_at DOUBLE)"""

# The value store an execution's stored values are in when it is not ``<journal>.values`` (its run option
# ``value_store=``, or ``$ZART_VALUE_STORE`` at its first run): written before the first value goes there,
# and removed with the execution, whose folder stays on the list ``zart gc`` visits (a ``zart_meta`` row
# ``value_store_left:<folder>``) until nothing of it is left there (``_journal/stores.py``).
VALUE_STORES_TABLE = """CREATE TABLE value_stores (execution_id VARCHAR PRIMARY KEY, path VARCHAR NOT NULL)"""

IN_FLIGHT_TABLE = """CREATE TABLE in_flight (
    execution_id VARCHAR, run_number INTEGER, step_key VARCHAR, name VARCHAR, seq INTEGER, def_id VARCHAR,
    args_hash VARCHAR, args_preview VARCHAR, attempt INTEGER, started_at DOUBLE, worker VARCHAR,
    log VARCHAR)"""

MIGRATIONS: dict[int, list[str]] = {
    1: [
        "CREATE TABLE zart_meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
        """CREATE TABLE definitions (
            def_id VARCHAR PRIMARY KEY, kind VARCHAR, name VARCHAR, source VARCHAR, pickle BLOB,
            created_at DOUBLE)""",
        """CREATE TABLE executions (
            execution_id VARCHAR PRIMARY KEY, workflow VARCHAR, def_id VARCHAR, input BLOB,
            input_hash VARCHAR, input_preview VARCHAR, status VARCHAR, output BLOB, output_preview VARCHAR,
            error VARCHAR, traceback VARCHAR, run_number INTEGER, on_change VARCHAR, created_at DOUBLE,
            started_at DOUBLE, finished_at DOUBLE, owner_pid INTEGER, owner_host VARCHAR)""",
        """CREATE TABLE runs (
            execution_id VARCHAR, run_number INTEGER, status VARCHAR, started_at DOUBLE,
            finished_at DOUBLE, pid INTEGER, executed INTEGER, reused INTEGER)""",
        """CREATE TABLE steps (
            execution_id VARCHAR, step_key VARCHAR, run_number INTEGER, seq INTEGER, name VARCHAR,
            def_id VARCHAR, args BLOB, args_hash VARCHAR, args_preview VARCHAR, status VARCHAR,
            output BLOB, output_preview VARCHAR, error VARCHAR, error_type VARCHAR, traceback VARCHAR,
            attempts INTEGER, reason VARCHAR, current BOOLEAN, scheduled_at DOUBLE, started_at DOUBLE,
            finished_at DOUBLE, worker VARCHAR)""",
        """CREATE TABLE attempts (
            execution_id VARCHAR, step_key VARCHAR, run_number INTEGER, attempt INTEGER, status VARCHAR,
            error VARCHAR, traceback VARCHAR, started_at DOUBLE, finished_at DOUBLE, worker VARCHAR)""",
        "CREATE INDEX executions_status ON executions(status)",
    ],
    2: [  # what each attempt printed
        "ALTER TABLE steps ADD COLUMN log VARCHAR",
        "ALTER TABLE attempts ADD COLUMN log VARCHAR",
    ],
    3: [  # current step counts per execution, kept by the fold: listing never counts the steps table
        """CREATE TABLE step_counts (
            execution_id VARCHAR PRIMARY KEY, total INTEGER, completed INTEGER, failed INTEGER)""",
        RECOUNT_STEPS,
    ],
    4: [  # why a run ended, when its process was last known alive, and what it was running then
        "ALTER TABLE runs ADD COLUMN ended_by VARCHAR",
        "ALTER TABLE runs ADD COLUMN end_detail VARCHAR",
        "ALTER TABLE runs ADD COLUMN alive_at DOUBLE",
        IN_FLIGHT_TABLE,
    ],
    5: [  # an execution's deadline (POSIX seconds), set at its first run and kept on resume
        "ALTER TABLE executions ADD COLUMN deadline DOUBLE",
    ],
    6: [  # what started each run (a RunTrigger: initial, resume, restart, rerun, retry, fork, recover)
        "ALTER TABLE runs ADD COLUMN trigger VARCHAR",
        "ALTER TABLE runs ADD COLUMN trigger_detail VARCHAR",
    ],
    7: [  # recurring executions' schedules (zart.recurring, zart serve)
        SCHEDULES_TABLE,
    ],
    8: [  # the execution whose workflow body started this one (zart.run/zart.start inside a body)
        "ALTER TABLE executions ADD COLUMN parent_execution_id VARCHAR",
    ],
    9: [  # events sent to executions, and what a wait consumed
        EVENTS_TABLE,
    ],
    10: [  # suspended executions (sleeping, waiting): what for, until when, and who continues them (a lease)
        "ALTER TABLE executions ADD COLUMN waits_for VARCHAR",
        "ALTER TABLE executions ADD COLUMN wake_at DOUBLE",
        "ALTER TABLE executions ADD COLUMN lease_owner VARCHAR",
        "ALTER TABLE executions ADD COLUMN lease_until DOUBLE",
    ],
    11: [  # the value store of an execution run with value_store= (a folder a Dask cluster's workers share)
        VALUE_STORES_TABLE,
    ],
}


# A new journal gets the latest schema at once: replaying every migration on an empty file costs
# ~2 ms more (ALTERs, a recount of no steps). ``test_a_new_journal_has_the_schema_every_upgrade_ends_at``
# keeps the two in step.
CURRENT_SCHEMA: list[str] = [
    "CREATE TABLE zart_meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
    """CREATE TABLE definitions (
        def_id VARCHAR PRIMARY KEY, kind VARCHAR, name VARCHAR, source VARCHAR, pickle BLOB,
        created_at DOUBLE)""",
    """CREATE TABLE executions (
        execution_id VARCHAR PRIMARY KEY, workflow VARCHAR, def_id VARCHAR, input BLOB,
        input_hash VARCHAR, input_preview VARCHAR, status VARCHAR, output BLOB, output_preview VARCHAR,
        error VARCHAR, traceback VARCHAR, run_number INTEGER, on_change VARCHAR, created_at DOUBLE,
        started_at DOUBLE, finished_at DOUBLE, owner_pid INTEGER, owner_host VARCHAR, deadline DOUBLE,
        parent_execution_id VARCHAR, waits_for VARCHAR, wake_at DOUBLE, lease_owner VARCHAR, lease_until DOUBLE)""",
    """CREATE TABLE runs (
        execution_id VARCHAR, run_number INTEGER, status VARCHAR, started_at DOUBLE,
        finished_at DOUBLE, pid INTEGER, executed INTEGER, reused INTEGER, ended_by VARCHAR,
        end_detail VARCHAR, alive_at DOUBLE, trigger VARCHAR, trigger_detail VARCHAR)""",
    """CREATE TABLE steps (
        execution_id VARCHAR, step_key VARCHAR, run_number INTEGER, seq INTEGER, name VARCHAR,
        def_id VARCHAR, args BLOB, args_hash VARCHAR, args_preview VARCHAR, status VARCHAR,
        output BLOB, output_preview VARCHAR, error VARCHAR, error_type VARCHAR, traceback VARCHAR,
        attempts INTEGER, reason VARCHAR, current BOOLEAN, scheduled_at DOUBLE, started_at DOUBLE,
        finished_at DOUBLE, worker VARCHAR, log VARCHAR)""",
    """CREATE TABLE attempts (
        execution_id VARCHAR, step_key VARCHAR, run_number INTEGER, attempt INTEGER, status VARCHAR,
        error VARCHAR, traceback VARCHAR, started_at DOUBLE, finished_at DOUBLE, worker VARCHAR,
        log VARCHAR)""",
    "CREATE INDEX executions_status ON executions(status)",
    """CREATE TABLE step_counts (
        execution_id VARCHAR PRIMARY KEY, total INTEGER, completed INTEGER, failed INTEGER)""",
    IN_FLIGHT_TABLE,
    SCHEDULES_TABLE,
    EVENTS_TABLE,
    VALUE_STORES_TABLE,
]


def read_schema(conn: duckdb.DuckDBPyConnection, path: Path) -> dict[str, str]:
    """The ``zart_meta`` of a database (empty for a new, empty one); refuses a foreign, damaged or
    newer one (names the file). Reads only: a refused file is never written."""
    duckdb = db.load()
    try:
        # zart_meta first: listing the catalog costs a cold start ~10-30 ms more
        meta = {str(key): str(value) for key, value in
                conn.execute("SELECT key, value FROM zart_meta").fetchall()}
    except duckdb.CatalogException:
        tables = sorted(row[0] for row in conn.execute("SELECT table_name FROM duckdb_tables()").fetchall())
        if not tables:
            return {}
        raise JournalCorrupt(path, "a DuckDB database, but not a zart journal (no zart_meta table; it has "
                                   f"{', '.join(tables[:5])}); left untouched") from None
    except duckdb.Error as exc:
        raise JournalCorrupt(path, f"the journal's zart_meta table cannot be read ({exc}); left "
                                   "untouched") from exc
    try:
        version = int(meta.get("schema_version", "0"))
    except ValueError:
        version = -1
    if version < 1 or not meta.get("journal_id") or not meta.get("folded_seq", "").isdigit():
        raise JournalCorrupt(path, "the journal's zart_meta table is damaged (schema_version "
                                   f"{meta.get('schema_version')!r}, journal_id {meta.get('journal_id')!r}, "
                                   f"folded_seq {meta.get('folded_seq')!r}); left untouched")
    if version > SCHEMA_VERSION:
        raise JournalSchemaTooNew(path, f"journal schema version {version} is newer than this zart_nb "
                                        f"understands ({SCHEMA_VERSION}); upgrade zart_nb")
    return meta


def migrate(conn: duckdb.DuckDBPyConnection, meta: dict[str, str]) -> dict[str, str]:
    """Create or upgrade the schema from ``meta``'s version: every missing version in one transaction.
    Returns the meta after it (``journal_id``, ``folded_seq``, ``schema_version``)."""
    meta = dict(meta)
    version = int(meta.get("schema_version", "0"))
    if version >= SCHEMA_VERSION:
        return meta
    if version == 0:
        statements = CURRENT_SCHEMA
    else:
        statements = [statement for target in range(version + 1, SCHEMA_VERSION + 1)
                      for statement in MIGRATIONS[target]]
    meta.setdefault("journal_id", os.urandom(16).hex())
    meta.setdefault("folded_seq", "0")
    meta["schema_version"] = str(SCHEMA_VERSION)
    conn.execute("BEGIN")
    try:
        for statement in statements:
            conn.execute(statement)
        conn.execute("DELETE FROM zart_meta WHERE key IN ('schema_version', 'journal_id', 'folded_seq')")
        conn.execute("INSERT INTO zart_meta VALUES ('schema_version', ?), ('journal_id', ?), "
                     "('folded_seq', ?)", [meta["schema_version"], meta["journal_id"], meta["folded_seq"]])
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise
    return meta


def empty() -> duckdb.DuckDBPyConnection:
    """An in-memory journal of the current schema with nothing in it: what a journal whose creation was
    killed reads as (see ``file.unfinished``)."""
    conn: duckdb.DuckDBPyConnection = db.load().connect(":memory:")
    migrate(conn, {})
    return conn


def in_transaction(conn: duckdb.DuckDBPyConnection, write: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``write(conn, *args, **kwargs)`` in one transaction: committed, or rolled back whole if it raises."""
    conn.execute("BEGIN")
    try:
        result = write(conn, *args, **kwargs)
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise
    return result


def rollback(conn: duckdb.DuckDBPyConnection) -> None:
    """Roll back if DuckDB has not already (a failed COMMIT ends the transaction itself): the
    error that got us here must surface, not "no transaction is active"."""
    try:
        conn.execute("ROLLBACK")
    except Exception:
        pass
