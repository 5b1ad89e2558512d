"""The journal file as a :class:`JournalReader`: reads take the file for a moment (or share this
process's hold of it) and never unpickle."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from .._reader import JournalReader
from .._records import (
    AttemptRecord,
    DefinitionRecord,
    ExecutionRecord,
    ExecutionStatus,
    PendingEvent,
    RunRecord,
    StepRecord,
    StepStatus,
)
from . import inbox, queries
from .journal import Journal

if TYPE_CHECKING:
    import duckdb

    from .._stored import StoredValue


class FileJournalReader(JournalReader):
    """Reads one journal file through the process's :class:`Journal` of that file."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    def __repr__(self) -> str:
        return f"<JournalReader {self.location}>"

    @property
    def location(self) -> str:
        return str(self._journal.path)

    @property
    def path(self) -> str:
        return str(self._journal.path)

    def list_executions(self, status: ExecutionStatus | str | None = None, *, search: str | None = None,
                        limit: int = 200, offset: int = 0, sort: str = "created",
                        descending: bool = True, parent: str | None = None) -> list[ExecutionRecord]:
        return self._journal.query(queries.list_executions, status, limit=limit, offset=offset,
                                   search=search, sort=sort, descending=descending, parent=parent)

    def execution_record(self, execution_id: str) -> ExecutionRecord | None:
        return self._journal.query(queries.execution_record, execution_id)

    def list_steps(self, execution_id: str, *, current_only: bool = True, offset: int = 0,
                   limit: int | None = None, status: StepStatus | str | None = None, after: str | None = None,
                   before: str | None = None, from_end: bool = False) -> list[StepRecord]:
        return self._journal.query(queries.list_steps, execution_id, current_only, offset=offset,
                                   limit=limit, status=None if status is None else str(status), after=after,
                                   before=before, from_end=from_end)

    def count_steps(self, execution_id: str, *, current_only: bool = True,
                    status: StepStatus | str | None = None) -> int:
        return self._journal.query(queries.count_steps, execution_id, current_only,
                                   None if status is None else str(status))

    def step_index(self, execution_id: str, step_key: str, *, current_only: bool = True,
                   status: StepStatus | str | None = None) -> int | None:
        return self._journal.query(queries.step_index, execution_id, step_key, current_only,
                                   None if status is None else str(status))

    def list_attempts(self, execution_id: str, step_key: str | None = None) -> list[AttemptRecord]:
        return self._journal.query(queries.list_attempts, execution_id, step_key)

    def list_runs(self, execution_id: str) -> list[RunRecord]:
        return self._journal.query(queries.list_runs, execution_id)

    def stats(self) -> dict[ExecutionStatus, int]:
        return self._journal.query(queries.stats)

    def list_definitions(self) -> list[DefinitionRecord]:
        return self._journal.query(queries.list_definitions)

    def stored_values(self, execution_id: str | None = None, step_key: str | None = None, *,
                      tables_only: bool = False) -> list[StoredValue]:
        from . import tables  # the value store's reads: loaded when first asked for

        return self._journal.query(tables.stored_values, execution_id, step_key, tables_only=tables_only)

    def value_stores(self) -> list[str]:
        from .._storefolders import own  # each folder's claim, read as text
        from . import stores

        journal_id, folders = self._journal.query(stores.stores_of_journal)
        return own(journal_id, folders)

    def pending_events(self, execution_id: str) -> list[PendingEvent]:
        return [PendingEvent(execution_id, e.seq, e.name, e.payload, datetime.fromtimestamp(e.sent_at), e.sender)
                for e in self._journal.query(inbox.pending_events, execution_id)]

    def close(self) -> None:
        """Release the file now (other processes may take it)."""
        self._journal.close()


T = TypeVar("T")


class _Cursor:
    """Runs the same queries on one lent cursor (see ``Journal.borrow``), without folding first."""

    def __init__(self, cursor: duckdb.DuckDBPyConnection, path: object) -> None:
        self._cursor = cursor
        self.path = path

    def query(self, read: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return read(self._cursor, *args, **kwargs)

    def close(self) -> None:
        pass


def cursor_reader(cursor: duckdb.DuckDBPyConnection, path: object) -> JournalReader:
    """A :class:`JournalReader` over a cursor the monitor borrowed from the engine's open journal."""
    return FileJournalReader(_Cursor(cursor, path))  # type: ignore[arg-type]
