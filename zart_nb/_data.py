"""The value store's public door: ``zart.load`` (a stored value outside a workflow), ``zart.gc`` (the
store's files no journal row points to), ``zart.stored`` (what is stored, a table's schema and first rows)
and ``zart.sql`` (SQL over the stored tables). The last two read the journal's list through the engine
holding it when another process's does, never waiting for its lock; nothing here but ``load`` unpickles."""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _stores as stores
from . import _tables as tables
from . import _values as values
from ._errors import (
    ConfigurationError,
    ExecutionNotFound,
    JournalError,
    JournalLocked,
    ValueLost,
    ValueStoreError,
)
from ._reader import JournalReader
from ._runtime import runtime
from ._status import ExecutionStatus, StepStatus
from ._stored import HEAD_ROWS, StoredValue, folder_of, peek, ref_of

if TYPE_CHECKING:
    from ._journal import Journal

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
            dry_run: bool = False, folder: Path | None = None) -> GcReport:
    """Remove the store's files no journal row points to, except those younger than ``min_age``
    (``folder``: a store of the journal other than its own, ``<journal>.values``)."""
    folder = values.folder_for(journal_path) if folder is None else folder
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


def collect_all(journal: Journal, referenced: stores.Referenced, *, min_age: float = values.MIN_AGE,
                dry_run: bool = False) -> GcReport:
    """:func:`collect` over every value store of ``journal`` (held by the caller), as one report (its
    ``store`` the journal's own, followed by the others); ``referenced``: the names kept, by folder (a
    name referenced in one folder keeps no file of that name in another)."""
    folders = stores.folders(journal)
    reports = [collect(journal.path, stores.names_in(referenced, folder), min_age=min_age, dry_run=dry_run,
                       folder=folder) for folder in folders]
    if not dry_run:  # a deleted execution's folder is visited until nothing unreferenced is left there
        stores.settle(journal, {folder: not report.kept_young for folder, report in zip(folders, reports, strict=True)})
    return GcReport(", ".join(report.store for report in reports),
                    tuple(name for report in reports for name in report.removed),
                    sum(report.freed for report in reports),
                    tuple(name for report in reports for name in report.kept_young),
                    sum(report.referenced for report in reports), dry_run)


def load(execution_id: str, step_key: str, journal: str | os.PathLike[str] | None = None) -> Any:
    """The journaled output of step ``step_key`` of execution ``execution_id`` (in ``journal``,
    default ``$ZART_JOURNAL`` or ``./.zart/journal.duckdb``), loaded outside a workflow: from its row,
    or from the value store (arrays mapped copy-on-write).

    ``step_key`` ``"workflow:input"`` loads the execution's input (what a resume runs it with: a table
    input read from its Parquet file), ``"workflow:output"`` the output of a completed execution.

    An explicit unpickle: load only from a journal you trust (its store's files are refused when
    another user owns them or others can write them). Raises ``ExecutionNotFound``, ``LookupError``
    for a step the execution does not have or that did not complete, ``ValueLost`` when its stored
    file is missing or damaged."""
    journal_ = runtime.journal(journal)
    if step_key in (values.INPUT_KEY, values.OUTPUT_KEY):
        return _load_own(journal_, execution_id, step_key == values.INPUT_KEY)
    with journal_.hold():
        found = journal_.pickled_step_output(execution_id, step_key)
        if found is None:
            if journal_.execution_status(execution_id) is None:
                raise ExecutionNotFound(execution_id, journal_.path)
            raise LookupError(f"execution {execution_id!r} has no step {step_key!r} (in {journal_.path})")
    status, blob = found
    if status != StepStatus.COMPLETED.value:
        raise LookupError(f"step {step_key!r} of execution {execution_id!r} is {status}: it has no output to load")
    if blob is None:
        return None
    with journal_.hold():
        return stores.load(journal_, execution_id, blob)


def _load_own(journal: Journal, execution_id: str, wants_input: bool) -> Any:
    """An execution's own input (``wants_input``) or output, loaded as :func:`load` loads a step's."""
    with journal.hold():
        found = journal.pickled_execution(execution_id)
        if found is None:
            raise ExecutionNotFound(execution_id, journal.path)
        if not wants_input and found.status != ExecutionStatus.COMPLETED:
            raise LookupError(f"execution {execution_id!r} is {found.status.value}: it has no output to load")
        blob = found.input if wants_input else found.output
        return None if blob is None else stores.load(journal, execution_id, blob)


def gc(journal: str | os.PathLike[str] | None = None, *, dry_run: bool = False,
       min_age: float = values.MIN_AGE) -> GcReport:
    """Remove the files of ``journal``'s value stores (``<journal>.values/``, and each ``value_store=``
    folder an execution was run with) that no journal row points to: orphans left by a process killed
    between writing a value and journaling it, and the values of deleted executions. Unreferenced files
    younger than ``min_age`` seconds (default an hour) are kept: they may be being written. ``dry_run`` only reports.

    Refused (``JournalLocked``) while another process's engine holds the journal: its workers may be
    writing values. Returns a :class:`GcReport`."""
    if min_age < 0:
        raise ConfigurationError(f"min_age must be 0 or more seconds, got {min_age!r}")
    journal_ = runtime.journal(journal)
    if not journal_.path.exists():
        raise JournalError(journal_.path, "no journal file here")
    try:
        with journal_.hold():
            referenced = stores.referenced(journal_)
            return collect_all(journal_, referenced, min_age=min_age, dry_run=dry_run)
    except JournalLocked as exc:
        raise JournalLocked(exc.path, f"{exc.owner} (its engine may be writing values: zart gc runs when no "
                                      "other process holds the journal)", exc.waited) from None


def _listed(journal: Path, tables_only: bool, execution_id: str | None = None, step_key: str | None = None, *,
            files_ok: bool = False) -> tuple[list[StoredValue], str]:
    """The stored values journaled in ``journal`` and how they were read: through the live engine's
    monitor when another process's engine holds the file, else from the file (never waiting for its
    lock). A file held by a process that serves no monitor is not read: ``([], "files")`` with
    ``files_ok``, else ``JournalLocked`` naming its holder."""
    from . import _discovery as discovery

    def live(reader: JournalReader) -> list[StoredValue]:
        return reader.stored_values(execution_id, step_key, tables_only=tables_only)

    try:
        found = discovery.read(journal, live)
    except JournalLocked as exc:
        if not files_ok:
            raise
        log.info("zart: %s is held by %s: the value store's files are listed instead", journal, exc.owner)
        return [], FILES
    return found.value, found.via


FILES = "files"  # how a list was read: the store's files, not the journal


def _table_files(folder: Path, store: str | None = None) -> list[StoredValue]:
    """The store's Parquet files as unjournaled references (the journal could not be read): their
    execution and key from their names (``%XX`` decoded), their size as found (``store``: a
    ``value_store=`` folder, ``folder`` itself)."""
    from urllib.parse import unquote

    found: list[StoredValue] = []
    if not (folder / values.TABLES).is_dir():
        return found
    for directory, names in _store_files(folder):
        if directory == folder:
            continue
        for name, entry in names:
            if not name.endswith(tables.SUFFIX):
                continue
            parts = name.split("/")
            size = entry.stat(follow_symlinks=False).st_size
            found.append(StoredValue(unquote(parts[1]), unquote(parts[2].removesuffix(tables.SUFFIX)), name, size,
                                     "parquet", store=store))
    return found


def _all_table_files(journal: Path) -> list[StoredValue]:
    """:func:`_table_files` of the journal's own store and of each ``value_store=`` folder listed beside
    it (``_storefolders.remembered``: the journal itself cannot be read), each folder checked first; a
    refused one is left out with a warning."""
    from ._storefolders import remembered

    own = values.folder_for(journal.resolve())
    found: list[StoredValue] = []
    try:
        others = remembered(journal)
    except (ValueStoreError, ValueLost) as exc:
        log.warning("zart.sql: the list of value stores beside %s is not read: %s", journal, exc)
        others = []
    for folder, store in [(own, None), *((Path(other), other) for other in others)]:
        if not folder.exists():
            continue
        try:
            values.check_folder(folder)
            found += _table_files(folder, store)
        except (ValueStoreError, ValueLost) as exc:
            log.warning("zart.sql leaves out the tables of the value store %s: %s", folder, exc)
    return found


def stored(execution_id: str | None = None, step_key: str | None = None,
           journal: str | os.PathLike[str] | None = None, *, rows: int = HEAD_ROWS,
           tables_only: bool = False) -> list[StoredValue]:
    """The completed steps of ``journal`` whose output is in the value store (of execution
    ``execution_id``, of step ``step_key``), and the executions' table inputs and outputs (the keys
    ``workflow:input`` and ``workflow:output``), each a :class:`StoredValue`: its kind, file and size; for a
    table also its schema, row count and first ``rows`` rows, read from its Parquet file. An array's
    dtype and shape are in its step's ``output_preview``.

    Nothing is unpickled, and the journal's lock is never waited for: beside a running engine of another
    process the list comes through its monitor (``JournalLocked`` names a holder that serves none); a
    table whose file is missing or fails its check has a ``note`` saying so."""
    if rows < 0:
        raise ConfigurationError(f"rows must be 0 or more, got {rows!r}")
    path = _journal_path(journal)
    listed, _ = _listed(path, tables_only, execution_id, step_key)
    return [peek(s, path, rows) for s in listed]


def _journal_path(journal: str | os.PathLike[str] | None) -> Path:
    path = runtime.journal(journal).path if journal is None else Path(journal)
    if not path.exists():
        raise JournalError(path, "no journal file here")
    return path


def sql(query: str, journal: str | os.PathLike[str] | None = None) -> Any:
    """Run the DuckDB SQL ``query`` over the tables the steps of ``journal`` returned (each completed
    step's pandas or polars DataFrame or pyarrow Table, stored as Parquet), and return the result as a
    pandas DataFrame.

    Each table is a view named ``<execution id>/<step key>``, which SQL writes in double quotes:
    ``select cat, avg(x) from "exec-1/load#0" group by cat`` (a ``"`` in a name is doubled), and each
    step's tables together are a view named ``<execution id>/<step name>`` (a fan-out's outputs:
    ``"exec-1/load-{region}"``, ``"exec-1/fetch"``), its first column ``step_key``. The view
    ``zart_tables`` lists the tables (``view, execution_id, step_key, kind, path, step``). The query runs on a new
    in-memory DuckDB connection, never on the journal's, and never takes the journal's lock (its views are those
    the query names, each table read as its view is made; every table's when it reads the catalog or names a
    table no view has): the list of
    tables is read from the journal file when no other process holds it, through the monitor of the
    engine that does (a notebook running a workflow), or, when that engine serves no monitor
    (``$ZART_MONITOR=0``), from the store's files (with a warning: a table of a step not journaled yet
    may show). Nothing is unpickled, and each file passes the store's checks (owner, mode, size, its
    check) before DuckDB reads it; a missing or damaged one is left out with a warning. Raises
    ``QueryError`` for a query DuckDB refuses."""
    if not isinstance(query, str) or not query.strip():
        raise ConfigurationError(f"zart.sql wants a query (a non-empty string), got {query!r}")
    path = _journal_path(journal)
    listed, via = _listed(path, True, files_ok=True)
    if via == FILES:
        log.warning("zart.sql: %s is held by a process that serves no monitor; the tables are the value "
                    "stores' files (a step's table not journaled yet may show)", path)
        listed = _all_table_files(path)
    from ._journal import tables as sql_tables

    named = _named(query, listed)
    if named is not None:
        tables_named, view_names = named
        try:
            return sql_tables.query(query, _views(tables_named, path), only=view_names)
        except sql_tables.NotAmongViews:
            pass  # a table named in a way not spelled out, or a typo: DuckDB's "did you mean" needs every view
    return sql_tables.query(query, _views(listed, path))


# Words of a query that may read tables it does not spell out (the catalog, a name built as a string): such a
# query gets a view of every table. A word inside a name or a string only costs the views.
_EVERY_VIEW = ("information_schema", "duckdb_", "query_table", "show", "pragma", "sqlite_master")


def _named(query: str, listed: list[StoredValue]) -> tuple[list[StoredValue], set[str]] | None:
    """The views ``query`` names (``<execution id>/<step key>``, ``<execution id>/<step name>``), compared as
    DuckDB compares names (case aside; a ``"`` in one doubled when quoted), and the tables to check and list
    (those views', or every table when it names the listing); None when it may read tables it does not name.
    A key's view binds its Parquet file as it is made (~0.7 ms a table): a query over one table of a journal
    holding 1,000 no longer makes 1,000 views."""
    from ._journal.tables import LISTING

    text = query.casefold()
    if any(word in text for word in _EVERY_VIEW):
        return None

    def spelled(name: str) -> bool:
        folded = name.casefold()
        return folded in text or folded.replace('"', '""') in text

    tables_named: list[StoredValue] = []
    names: set[str] = set()
    for found in listed:
        views = [f"{found.execution_id}/{found.step_key}"]
        if found.step is not None:
            views.append(f"{found.execution_id}/{found.step}")
        hits = [view for view in views if spelled(view)]
        if hits:
            names.update(hits)
            tables_named.append(found)
    return (listed if LISTING in text else tables_named), names


def _views(listed: list[StoredValue], path: Path) -> list[tuple[str, str, str, str, str, str | None]]:
    """A view for each listed table whose file passes the store's checks (a missing or damaged one is
    left out with a warning): (view name, execution id, step key, kind, Parquet path, step name)."""
    views: list[tuple[str, str, str, str, str, str | None]] = []
    for found in listed:
        try:
            fd, table = values.open_table(folder_of(found, path), ref_of(found))  # the store's checks first
        except ValueLost as exc:
            log.warning("zart.sql leaves out the table of step %r of execution %r: %s", found.step_key,
                        found.execution_id, exc)
            continue
        os.close(fd)
        views.append((f"{found.execution_id}/{found.step_key}", found.execution_id, found.step_key, found.kind,
                      str(table), found.step))
    return views
