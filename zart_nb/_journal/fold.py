"""Folding side-log records into DuckDB: one transaction per batch, and what recovery sets aside.

``Journal`` decides when to fold (its writer thread, a reader that must see every step, a release of
the file) and holds the locks; this module only writes. A fold appends the batch's step and attempt
rows, applies its supersessions in order, keeps ``step_counts`` in step and stores the last folded
sequence number in the same transaction, so folding a log again after a crash never duplicates a row.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import db
from .schema import ATTEMPT_COLUMNS, STEP_COLUMNS, rollback
from .sidelog import LogContents, Record, Tag

if TYPE_CHECKING:
    import duckdb

logger = logging.getLogger("zart_nb")

FOLD_TRIES = 3

_STATUS = STEP_COLUMNS.index("status")
# The tags as the side log gives them back (plain str; a ``Tag`` member is equal to its value)
_SUPERSEDE, _STEP, _DEFINITION = Tag.SUPERSEDE.value, Tag.STEP.value, Tag.DEFINITION.value


def fold(conn: duckdb.DuckDBPyConnection, records: Sequence[Record], path: Path) -> None:
    """Fold ``records`` in one transaction. DuckDB now and then interrupts a transaction of this
    connection for no reason of ours (seen ~1 in 500 process exits, under load); that fold is
    rolled back and tried again at once, a few times, before it is reported."""
    if not records:
        return
    duckdb = db.load()
    for attempt in range(FOLD_TRIES):
        try:
            _fold_once(conn, records)
            return
        except (duckdb.InterruptException, duckdb.TransactionException) as exc:
            if attempt == FOLD_TRIES - 1:
                raise
            logger.debug("zart: a fold of %s was interrupted (%s); trying again", path, exc)


def _fold_once(conn: duckdb.DuckDBPyConnection, records: Sequence[Record]) -> None:
    try:
        conn.execute("BEGIN")  # inside: a failed BEGIN (a transaction left aborted) is rolled back too
        steps: list[tuple[Any, ...]] = []
        attempts: list[tuple[Any, ...]] = []
        counts: dict[str, list[int]] = {}  # execution id -> change of [total, completed, failed]
        for _, kind, row in records:
            if kind == _SUPERSEDE:
                _append(conn, steps, attempts)
                steps, attempts = [], []
                gone = conn.execute("UPDATE steps SET current = false WHERE execution_id = ? AND "
                                    "step_key = ? AND current RETURNING status", list(row)).fetchall()
                for (status,) in gone:
                    _count(counts, row[0], status, -1)
            elif kind == _STEP:
                steps.append(_widen(row, len(STEP_COLUMNS)))
                _count(counts, row[0], row[_STATUS], 1)
            elif kind == _DEFINITION:
                conn.execute("INSERT OR IGNORE INTO definitions VALUES (?, ?, ?, ?, ?, ?)", list(row))
            else:  # Tag.ATTEMPT
                attempts.append(_widen(row, len(ATTEMPT_COLUMNS)))
        _append(conn, steps, attempts)
        for execution_id, (total, completed, failed) in counts.items():
            conn.execute(
                """INSERT INTO step_counts VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET
                   total = total + excluded.total, completed = completed + excluded.completed,
                   failed = failed + excluded.failed""", [execution_id, total, completed, failed])
        conn.execute("UPDATE zart_meta SET value = ? WHERE key = 'folded_seq'", [str(records[-1][0])])
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise


def _append(conn: duckdb.DuckDBPyConnection, steps: list[tuple[Any, ...]],
            attempts: list[tuple[Any, ...]]) -> None:
    if steps:
        appender = conn.appender("steps", columns=list(STEP_COLUMNS))
        appender.append_rows(steps)
        appender.flush()
    if attempts:
        appender = conn.appender("attempts", columns=list(ATTEMPT_COLUMNS))
        appender.append_rows(attempts)
        appender.flush()


def _count(counts: dict[str, list[int]], execution_id: str, status: str, sign: int) -> None:
    change = counts.get(execution_id)
    if change is None:
        change = counts[execution_id] = [0, 0, 0]
    change[0] += sign
    if status == "completed":
        change[1] += sign
    elif status == "failed":
        change[2] += sign


def _widen(row: tuple[Any, ...], width: int) -> tuple[Any, ...]:
    """A row from a side log written before columns were added: the new columns are NULL."""
    return row if len(row) == width else tuple(row) + (None,) * (width - len(row))


def set_aside(log: Path, contents: LogContents) -> None:
    """Move a side log that must not be folded as it is out of the way, and say so: one that names
    another journal (``.orphaned``: nothing in it is folded), or one damaged in the middle
    (``.corrupt``, never overwriting an earlier one: its intact records are folded, the file is the
    evidence)."""
    if contents.foreign:
        aside = log.with_name(log.name + ".orphaned")
        os.replace(log, aside)
        logger.warning("zart: %s belongs to another journal file; moved it to %s", log, aside)
    elif contents.damage is not None:
        aside = log.with_name(log.name + ".corrupt")
        for number in range(1, 1000):  # never overwrite the evidence of an earlier damage
            if not aside.exists():
                break
            aside = log.with_name(f"{log.name}.corrupt.{number}")
        os.replace(log, aside)
        logger.warning("zart: the side log %s is damaged (%s); its %d intact records are kept, and "
                       "the damaged log is kept aside as %s", log, contents.damage,
                       len(contents.records), aside)
