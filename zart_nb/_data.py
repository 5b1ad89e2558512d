"""The value store's public door: ``zart.load`` (a stored value outside a workflow) and ``zart.gc``
(the store's files no journal row points to)."""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import _tables as tables
from . import _values as values
from ._errors import ConfigurationError, ExecutionNotFound, JournalError, JournalLocked, ValueLost
from ._runtime import runtime
from ._status import StepStatus

log = logging.getLogger("zart_nb")


@dataclass(frozen=True, slots=True)
class GcReport:
    """What ``zart.gc`` found in a value store (``removed`` are the files it deleted, or would delete
    with ``dry_run``)."""

    store: str
    removed: tuple[str, ...]
    freed: int  # bytes
    kept_young: tuple[str, ...]  # unreferenced but younger than min_age: possibly being written
    referenced: int
    dry_run: bool

    def __str__(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        text = (f"{self.store}: {verb} {len(self.removed)} unreferenced value file(s), "
                f"{values.size_text(self.freed)}; {self.referenced} referenced file(s) kept")
        if self.kept_young:
            text += f"; {len(self.kept_young)} unreferenced file(s) younger than the minimum age kept"
        return text


def _store_files(folder: Path) -> Iterator[tuple[Path, list[tuple[str, os.DirEntry[str]]]]]:
    """``(folder, [(name relative to the store, entry)])``: the value files at the top and the
    tables (and unfinished temporary files) under ``tables/<execution>/``, each folder checked first."""
    def files(directory: Path, prefix: str, suffixes: tuple[str, ...]) -> list[tuple[str, os.DirEntry[str]]]:
        return [(prefix + entry.name, entry) for entry in sorted(os.scandir(directory), key=lambda e: e.name)
                if entry.name.endswith(suffixes) and entry.is_file(follow_symlinks=False)]

    yield folder, files(folder, "", (values.SUFFIX,))
    tables_dir = folder / values.TABLES
    if not tables_dir.is_dir():
        return
    values.check_folder(tables_dir)
    for entry in sorted(os.scandir(tables_dir), key=lambda e: e.name):
        if entry.is_dir(follow_symlinks=False):
            directory = tables_dir / entry.name
            values.check_folder(directory)
            yield directory, files(directory, f"{values.TABLES}/{entry.name}/", (tables.SUFFIX, ".tmp"))


def collect(journal_path: str | os.PathLike[str], referenced: set[str], *, min_age: float = values.MIN_AGE,
            dry_run: bool = False) -> GcReport:
    """Remove the store's files no journal row points to, except those younger than ``min_age``."""
    folder = values.folder_for(journal_path)
    removed: list[str] = []
    young: list[str] = []
    freed = 0
    kept = 0
    if folder.exists():
        values.check_folder(folder)
        now = time.time()
        for directory, names in _store_files(folder):
            before = len(removed)
            for name, entry in names:
                if name in referenced:
                    kept += 1
                    continue
                info = entry.stat(follow_symlinks=False)
                if now - info.st_mtime < min_age:
                    young.append(name)
                    continue
                if not dry_run:
                    try:
                        os.unlink(entry.path)
                    except FileNotFoundError:
                        continue
                removed.append(name)
                freed += info.st_size
            if len(removed) > before and not dry_run:
                values.sync_folder(directory)
    return GcReport(str(folder), tuple(removed), freed, tuple(young), kept, dry_run)


def load(execution_id: str, step_key: str, journal: str | os.PathLike[str] | None = None) -> Any:
    """The journaled output of step ``step_key`` of execution ``execution_id`` (in ``journal``,
    default ``$ZART_JOURNAL`` or ``./.zart/journal.duckdb``), loaded outside a workflow: from its row,
    or from the value store (arrays mapped copy-on-write).

    An explicit unpickle: load only from a journal you trust (its store's files are refused when
    another user owns them or others can write them). Raises ``ExecutionNotFound``, ``LookupError``
    for a step the execution does not have or that did not complete, ``ValueLost`` when its stored
    file is missing or damaged."""
    journal_ = runtime.journal(journal)
    with journal_.hold():
        found = journal_.pickled_step_output(execution_id, step_key)
        if found is None:
            if journal_.execution_status(execution_id) is None:
                raise ExecutionNotFound(execution_id, journal_.path)
            raise LookupError(f"execution {execution_id!r} has no step {step_key!r} (in {journal_.path})")
    status, blob = found
    if status != StepStatus.COMPLETED.value:
        raise LookupError(f"step {step_key!r} of execution {execution_id!r} is {status}: it has no output to load")
    return None if blob is None else values.load(blob, journal_.path)


def gc(journal: str | os.PathLike[str] | None = None, *, dry_run: bool = False,
       min_age: float = values.MIN_AGE) -> GcReport:
    """Remove the files of ``journal``'s value store (``<journal>.values/``) that no journal row points
    to: orphans left by a process killed between writing a value and journaling it, and the values of
    deleted executions. Unreferenced files younger than ``min_age`` seconds (default an hour) are kept:
    they may be being written. ``dry_run`` only reports.

    Refused (``JournalLocked``) while another process's engine holds the journal: its workers may be
    writing values. Returns a :class:`GcReport`."""
    if min_age < 0:
        raise ConfigurationError(f"min_age must be 0 or more seconds, got {min_age!r}")
    journal_ = runtime.journal(journal)
    if not journal_.path.exists():
        raise JournalError(journal_.path, "no journal file here")
    try:
        with journal_.hold():
            referenced = values.referenced_names(journal_.value_references())
            return collect(journal_.path, referenced, min_age=min_age, dry_run=dry_run)
    except JournalLocked as exc:
        raise JournalLocked(exc.path, f"{exc.owner} (its engine may be writing values: zart gc runs when no "
                                      "other process holds the journal)", exc.waited) from None


def sql(query: str, journal: str | os.PathLike[str] | None = None) -> Any:
    """Run the DuckDB SQL ``query`` over the tables the steps of ``journal`` returned (each completed
    step's pandas or polars DataFrame or pyarrow Table, stored as Parquet), and return the result as a
    pandas DataFrame.

    Each table is a view named ``<execution id>/<step key>``, which SQL writes in double quotes:
    ``select cat, avg(x) from "exec-1/load#0" group by cat`` (a ``"`` in a name is doubled). The view
    ``zart_tables`` lists them (``view, execution_id, step_key, kind, path``). The query runs on a new
    in-memory DuckDB connection, never on the journal's: only the list of tables is read from the
    journal. Nothing is unpickled, and each file passes the store's checks (owner, mode, size, its
    check) before DuckDB reads it; a missing or damaged one is left out with a warning. Raises
    ``QueryError`` for a query DuckDB refuses."""
    if not isinstance(query, str) or not query.strip():
        raise ConfigurationError(f"zart.sql wants a query (a non-empty string), got {query!r}")
    journal_ = runtime.journal(journal)
    if not journal_.path.exists():
        raise JournalError(journal_.path, "no journal file here")
    with journal_.hold(write=False):
        rows = journal_.current_references()
    folder = values.folder_for(journal_.path.resolve())
    views: list[tuple[str, str, str, str, str]] = []
    for execution_id, step_key, blob in rows:
        if not values.is_ref(blob):
            continue
        ref = values.decode_ref(blob)
        if not ref.name.endswith(tables.SUFFIX):
            continue
        try:
            fd, path = values.open_table(folder, ref)  # the store's trust checks, before DuckDB reads it
        except ValueLost as exc:
            log.warning("zart.sql leaves out the table of step %r of execution %r: %s", step_key, execution_id, exc)
            continue
        os.close(fd)
        views.append((f"{execution_id}/{step_key}", execution_id, step_key, ref.kind, str(path)))
    from ._journal import tables as sql_tables

    return sql_tables.query(query, views)
