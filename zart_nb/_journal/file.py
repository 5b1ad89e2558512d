"""The journal file on disk: opening it (magic bytes, waiting for another process's lock), keeping it
owner-only, and marking the executions a dead process left running.
"""
from __future__ import annotations

import logging
import math
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .._errors import ConfigurationError, JournalCorrupt, JournalLocked

if TYPE_CHECKING:
    import duckdb  # imported when a journal opens: worker processes never load DuckDB

logger = logging.getLogger("zart_nb")


DEFAULT_LOCK_TIMEOUT = 10.0


def lock_timeout(value: float | str | None = None) -> float:
    """Seconds to wait for another process to release the file: ``value``, else
    ``$ZART_LOCK_TIMEOUT``, else 10. Refuses what is not a finite number >= 0 (naming where it came from)."""
    source = "lock_timeout"
    if value is None:
        env = os.environ.get("ZART_LOCK_TIMEOUT")
        if env is None or not env.strip():
            return DEFAULT_LOCK_TIMEOUT
        value, source = env, "ZART_LOCK_TIMEOUT"
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigurationError(f"{source} must be a finite number of seconds >= 0, got {value!r}")
    return seconds


def identity(path: Path) -> tuple[int, int] | None:
    """``(device, inode)`` of the file, or ``None`` when it does not exist (yet)."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return (stat.st_dev, stat.st_ino)


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner_from(message: str) -> str:
    match = re.search(r"PID (\d+)", message)
    return f"process {match.group(1)}" if match else "another process"


def check_magic(path: Path) -> None:
    """Refuse a file that is not a DuckDB database, before DuckDB sees it (it is left untouched)."""
    with open(path, "rb") as handle:
        head = handle.read(12)
    if len(head) == 0:
        raise JournalCorrupt(path, "the file is empty, not a DuckDB database; it was left untouched")
    if head[8:12] != b"DUCK":
        raise JournalCorrupt(path, "the file is not a DuckDB database (no DUCK magic bytes); "
                                   "it was left untouched")


def connect(path: Path, lock_timeout: float) -> tuple[duckdb.DuckDBPyConnection, bool]:
    """Open (or create) the database read-write, waiting up to ``lock_timeout`` seconds for another
    process to release it. Returns ``(connection, created)``.

    The file is opened once: its contents are checked by the caller before anything is written."""
    import duckdb

    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    existed = path.exists()
    if existed:
        check_magic(path)
    deadline = time.monotonic() + lock_timeout
    announced = False
    while True:
        try:
            old_umask = os.umask(0o077)
            try:
                conn = duckdb.connect(str(path))
            finally:
                os.umask(old_umask)
            break
        except duckdb.IOException as exc:
            message = str(exc)
            if "lock" not in message.lower():
                raise JournalCorrupt(path, f"DuckDB cannot open the file: {message}") from exc
            owner = _owner_from(message)
            if time.monotonic() >= deadline:
                raise JournalLocked(path, owner, lock_timeout) from None
            if not announced:
                logger.warning("zart: journal %s is in use by %s; waiting up to %.0fs for it to be "
                               "released...", path, owner, lock_timeout)
                announced = True
            time.sleep(0.05)
        except duckdb.Error as exc:
            raise JournalCorrupt(path, f"DuckDB cannot open the file: {exc}") from exc
    if not existed:
        os.chmod(path, 0o600)
    return conn, not existed


def protect_wal(path: Path) -> None:
    """DuckDB creates the WAL with the process umask; keep it owner-only like the journal."""
    wal = path.with_name(path.name + ".wal")
    try:
        if wal.stat().st_mode & 0o077:
            os.chmod(wal, 0o600)
    except FileNotFoundError:
        pass


def mark_orphans_interrupted(conn: duckdb.DuckDBPyConnection) -> None:
    """Executions left ``running`` by a process that is gone (killed) become ``interrupted``, with
    their open run, in one transaction."""
    from .schema import rollback

    rows = conn.execute("SELECT execution_id, owner_pid, run_number, owner_host FROM executions "
                        "WHERE status = 'running'").fetchall()
    here, me = os.uname().nodename, os.getpid()
    orphans = [(execution_id, run_number) for execution_id, pid, run_number, host in rows
               if pid != me and (host != here or not alive(pid))]
    if not orphans:
        return
    conn.execute("BEGIN")
    try:
        for execution_id, run_number in orphans:
            conn.execute("UPDATE executions SET status = 'interrupted' WHERE execution_id = ? "
                         "AND status = 'running'", [execution_id])
            conn.execute("UPDATE runs SET status = 'interrupted' WHERE execution_id = ? "
                         "AND run_number = ? AND status = 'running'", [execution_id, run_number])
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise
