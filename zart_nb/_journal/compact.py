"""Rewriting a journal file with only its live data (``zart gc --compact``).

DuckDB's VACUUM and CHECKPOINT do not give a file's free blocks back to the filesystem: a journal whose
executions were deleted keeps its size. Compacting copies the database (``COPY FROM DATABASE``: every
table, view and sequence, and the meta row with the journal id, so the side log still matches) into a new
file in a fresh owner-only folder beside it, checks every table's row count, fsyncs it and renames it
over the journal, while the old file is attached read-write (so no other process can open and write it
in between: DuckDB's lock is exclusive). The old file's blocks go when the rename unlinks it.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from .._errors import JournalError, JournalLocked
from . import db, file
from .file import _owner_from

if TYPE_CHECKING:
    from .journal import Journal


def _literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _size(path: Path) -> int:
    """The journal's bytes on disk: the file and its WAL."""
    total = 0
    for part in (path, path.with_name(path.name + ".wal")):
        with contextlib.suppress(FileNotFoundError):
            total += part.stat().st_size
    return total


def _fsync(path: Path, *, folder: bool = False) -> None:
    fd = os.open(path, (os.O_RDONLY | os.O_DIRECTORY) if folder else os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def compact(journal: Journal) -> tuple[int, int]:
    """Rewrite ``journal``'s file with only its live data; ``(bytes before, bytes after)``.

    Raises ``JournalLocked`` while this process runs on it or another process holds it."""
    path = journal.path
    with journal.borrow() as cursor:
        if cursor is not None:
            raise JournalLocked(path, f"this process (pid {os.getpid()}), which is running on it", 0.0)
    with journal.hold():  # opened read-write: checked, recovered, its side log folded
        journal.fold_pending()
    journal.close()  # the side log is empty now: everything is in the file
    before = _size(path)
    identity = file.identity(path)
    duckdb = db.load()
    folder = Path(tempfile.mkdtemp(prefix=".zart-compact-", dir=path.parent))  # 0700, same filesystem
    target = folder / path.name
    conn = duckdb.connect(":memory:")
    try:
        try:
            conn.execute(f"ATTACH {_literal(path)} AS src")  # read-write: DuckDB's exclusive lock
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise JournalLocked(path, _owner_from(str(exc)), 0.0) from None
            raise JournalError(path, f"cannot open it to compact it: {exc}") from exc
        if file.identity(path) != identity:
            raise JournalError(path, "the journal file was replaced while it was being compacted; try again")
        conn.execute(f"ATTACH {_literal(target)} AS dst")
        os.chmod(target, 0o600)
        conn.execute("COPY FROM DATABASE src TO dst")
        tables = [row[0] for row in conn.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = 'src' ORDER BY table_name").fetchall()]
        for table in tables:
            name = '"' + table.replace('"', '""') + '"'
            old = conn.execute(f"SELECT count(*) FROM src.{name}").fetchone()
            new = conn.execute(f"SELECT count(*) FROM dst.{name}").fetchone()
            if old != new:
                raise JournalError(path, f"compacting it copied {new} rows of table {table}, not {old}; "
                                         "the journal is left as it was")
        conn.execute("DETACH dst")
        if target.with_name(target.name + ".wal").exists():
            raise JournalError(path, "the compacted copy kept a WAL; the journal is left as it was")
        _fsync(target)
        os.replace(target, path)  # still attached (locked) above: nobody opened the old file meanwhile
        _fsync(path.parent, folder=True)
    finally:
        conn.close()
        shutil.rmtree(folder, ignore_errors=True)
    return before, _size(path)
