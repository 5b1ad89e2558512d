"""Events sent to executions and values they published: the SQL, as functions of a connection.

Writes run in one transaction on the run-control connection (``Journal.transact``); reads through
``Journal.query`` (every row of this process folded first). Payloads and published values are JSON
text: nothing here is a pickle, so a reader in any process may return them as they are.

A published value is a row of ``steps`` (kind ``publish``: its key ``publish:<key>#<n>``, ``def_id``
``publish``, its JSON in ``output``), journaled through the side log like a step: a replay finds it
and does not publish again.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import duckdb

PUBLISH_DEF = "publish"  # the def_id of a published value's row (a step's is a hex digest)


class PendingEvent(NamedTuple):
    """An event sent to an execution and not consumed yet."""

    seq: int
    name: str
    payload: str  # JSON text
    sent_at: float
    sender: str | None


def execution_status(conn: duckdb.DuckDBPyConnection, execution_id: str) -> str | None:
    row = conn.execute("SELECT status FROM executions WHERE execution_id = ?", [execution_id]).fetchone()
    return None if row is None else str(row[0])


def add_event(conn: duckdb.DuckDBPyConnection, execution_id: str, name: str, payload: str,
              idempotency_key: str | None, sent_at: float, sender: str | None) -> tuple[str | None, bool]:
    """``(the execution's status, whether the event was added)``: not added when the execution already got
    that idempotency key (status ``"delivered"``: a sender's retry is answered the same whatever the execution
    did since), is not journaled (status None), or is completed or cancelled (the caller refuses those)."""
    status = execution_status(conn, execution_id)
    if status is not None and idempotency_key is not None and conn.execute(
            "SELECT 1 FROM events WHERE execution_id = ? AND idempotency_key = ?",
            [execution_id, idempotency_key]).fetchone() is not None:
        return "delivered", False
    if status is None or status in ("completed", "cancelled"):
        return status, False
    seq = conn.execute("SELECT coalesce(max(seq), 0) + 1 FROM events").fetchone()
    conn.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
                 [execution_id, seq[0] if seq else 1, name, payload, idempotency_key, sent_at, sender])
    return status, True


def take_event(conn: duckdb.DuckDBPyConnection, execution_id: str, name: str, consumer: str, now: float,
               give_up: bool = False) -> tuple[bool, str | None]:
    """The event the wait ``consumer`` (its key) consumed: ``(True, payload)``; the one it consumed in an
    earlier run comes first, else the oldest unconsumed event of ``name`` is consumed now. ``(False,
    None)`` when none is there; with ``give_up`` the wait times out instead: a row without a payload
    is consumed, so a replay times out too (``(True, None)``)."""
    row = conn.execute("SELECT payload FROM events WHERE execution_id = ? AND consumed_by = ?",
                       [execution_id, consumer]).fetchone()
    if row is not None:
        return True, row[0]
    row = conn.execute(
        """SELECT seq, payload FROM events WHERE execution_id = ? AND name = ? AND consumed_by IS NULL
           AND payload IS NOT NULL ORDER BY seq LIMIT 1""", [execution_id, name]).fetchone()
    if row is not None:
        conn.execute("UPDATE events SET consumed_by = ?, consumed_at = ? WHERE seq = ?", [consumer, now, row[0]])
        return True, row[1]
    if give_up:
        seq = conn.execute("SELECT coalesce(max(seq), 0) + 1 FROM events").fetchone()
        conn.execute("INSERT INTO events VALUES (?, ?, ?, NULL, NULL, ?, 'timeout', ?, ?)",
                     [execution_id, seq[0] if seq else 1, name, now, consumer, now])
        return True, None
    return False, None


def pending_events(conn: duckdb.DuckDBPyConnection, execution_id: str) -> list[PendingEvent]:
    """Events sent to an execution that no wait consumed yet, oldest first."""
    rows = conn.execute(
        """SELECT seq, name, payload, sent_at, sender FROM events
           WHERE execution_id = ? AND consumed_by IS NULL AND payload IS NOT NULL ORDER BY seq""",
        [execution_id]).fetchall()
    return [PendingEvent(int(seq), str(name), str(payload), float(sent_at), sender)
            for seq, name, payload, sent_at, sender in rows]


def published_values(conn: duckdb.DuckDBPyConnection, execution_id: str, key: str,
                     after: int = -1) -> list[tuple[int, str]]:
    """``(seq, JSON text)`` of every value an execution published under ``key`` after ``after``, in order."""
    rows = conn.execute(
        """SELECT seq, output FROM steps WHERE execution_id = ? AND def_id = ? AND name = ? AND current
           AND seq > ? ORDER BY seq""", [execution_id, PUBLISH_DEF, key, after]).fetchall()
    return [(int(seq), bytes(output).decode("utf-8")) for seq, output in rows]


def wake_sleeps(conn: duckdb.DuckDBPyConnection, execution_id: str, now: float, blob: bytes,
                preview: str) -> tuple[str | None, int]:
    """``(the execution's status, sleeps woken)``: every current sleep of the execution whose wake time
    (its row's ``finished_at``) is still ahead gets ``now`` (``blob``: its pickle), so whoever runs the
    execution next does not sleep it (``zart wake`` while nobody holds the journal)."""
    status = execution_status(conn, execution_id)
    if status is None or status in ("completed", "cancelled"):
        return status, 0
    woken = conn.execute(
        """UPDATE steps SET output = ?, output_preview = ?, finished_at = ?
           WHERE execution_id = ? AND def_id = 'sleep' AND current AND finished_at > ? RETURNING step_key""",
        [blob, preview, now, execution_id, now]).fetchall()
    return status, len(woken)
