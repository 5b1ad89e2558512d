"""The one read API every surface uses (the CLI, the widget, the monitor and the TUI).

Implementations return typed records and never unpickle: the journal file (``_journal.reader``), and
the monitor client of a live engine. Pages are ``offset``/``limit``; lists come in a stable order.
Executions sort by any of ``EXECUTION_SORT_KEYS`` in the query (across all rows, not a page). Steps
also page by key (``after=``/``before=`` a step key, ``from_end=``): a page deep in a 1,000,000-row journal
costs what the first one does, where ``offset`` reads every row before it.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from ._errors import ConfigurationError
from ._status import ExecutionStatus, StepStatus

if TYPE_CHECKING:
    from ._progress import RunProgress
    from ._records import AttemptRecord, DefinitionRecord, ExecutionRecord, PendingEvent, RunRecord, StepRecord
    from ._stored import StoredValue


#: What :meth:`JournalReader.list_executions` sorts by: the id, the workflow name, the status, the steps
#: done, the steps' total, the run number, when it was created (the default, newest first), when its
#: latest run started, and how long that run took (until now while it runs).
EXECUTION_SORT_KEYS = ("created", "id", "workflow", "status", "done", "total", "run", "started", "duration")


def check_sort(sort: str) -> str:
    """``sort`` if it is one of ``EXECUTION_SORT_KEYS``, else a ``ConfigurationError`` naming them."""
    if sort not in EXECUTION_SORT_KEYS:
        raise ConfigurationError(f"cannot sort executions by {sort!r}; sort by one of "
                                 f"{', '.join(EXECUTION_SORT_KEYS)}")
    return sort


def check_step_status(status: StepStatus | str) -> str:
    """A step status's value, or a ``ConfigurationError`` naming the statuses."""
    try:
        return StepStatus(str(getattr(status, "value", status))).value
    except ValueError:
        raise ConfigurationError(f"no step status {status!r}; one of "
                                 f"{', '.join(s.value for s in StepStatus)}") from None


class JournalReader(ABC):
    """Typed, paged reads of one journal. ``zart.journal()`` returns one."""

    @property
    @abstractmethod
    def location(self) -> str:
        """What is read: the journal file's path (or the endpoint's address)."""

    @abstractmethod
    def list_executions(self, status: ExecutionStatus | str | None = None, *, search: str | None = None,
                        limit: int = 200, offset: int = 0, sort: str = "created",
                        descending: bool = True, parent: str | None = None) -> list[ExecutionRecord]:
        """Executions with their step counts, newest first unless ``sort`` (created, id, workflow, status,
        done, total, run, started or duration; ``descending=False`` for ascending) says otherwise: the query sorts
        every row, then pages. ``search`` matches a part of the id or the workflow name (case-insensitive);
        ``parent`` keeps the children of that execution (those its workflow body started)."""

    @abstractmethod
    def execution_record(self, execution_id: str) -> ExecutionRecord | None:
        """One execution, or ``None`` when the journal has no such id."""

    @abstractmethod
    def list_steps(self, execution_id: str, *, current_only: bool = True, offset: int = 0,
                   limit: int | None = None, status: StepStatus | str | None = None, after: str | None = None,
                   before: str | None = None, from_end: bool = False) -> list[StepRecord]:
        """An execution's step records in call order (``current_only=False`` adds superseded ones).

        ``status`` keeps only steps in that status (e.g. ``"failed"``). Keyset pages: ``after=key`` starts
        just after that step, ``before=key`` gives the last ``limit`` steps before it, ``from_end=True``
        the last ``limit`` steps; each still in call order, and ``offset`` skips further. A key that is not
        a step of the execution is a ``ConfigurationError``."""

    def count_steps(self, execution_id: str, *, current_only: bool = True,
                    status: StepStatus | str | None = None) -> int:
        """How many steps :meth:`list_steps` lists with these filters."""
        return len(self.list_steps(execution_id, current_only=current_only, status=status))

    def step_index(self, execution_id: str, step_key: str, *, current_only: bool = True,
                   status: StepStatus | str | None = None) -> int | None:
        """The 0-based place of ``step_key`` among what :meth:`list_steps` lists with these filters (the
        page to show it on), or None when it is not among them."""
        keys = [s.step_key for s in self.list_steps(execution_id, current_only=current_only, status=status)]
        return keys.index(step_key) if step_key in keys else None

    @abstractmethod
    def list_attempts(self, execution_id: str, step_key: str | None = None) -> list[AttemptRecord]:
        """Failed attempts (every attempt but a step's last), by run, step key and attempt."""

    @abstractmethod
    def list_runs(self, execution_id: str) -> list[RunRecord]:
        """An execution's runs: run 1, run 2 after a resume, ..."""

    @abstractmethod
    def stats(self) -> dict[ExecutionStatus, int]:
        """How many executions are in each status (statuses with none are left out)."""

    @abstractmethod
    def list_definitions(self) -> list[DefinitionRecord]:
        """Every journaled workflow and step definition, with its source text."""

    def stored_values(self, execution_id: str | None = None, step_key: str | None = None, *,
                      tables_only: bool = False) -> list[StoredValue]:
        """The completed current steps whose output is in the value store (of one execution, of one
        step; ``tables_only``: the Parquet tables), as :class:`StoredValue` references in execution
        and key order. Nothing is loaded or unpickled: see ``zart.stored`` for a table's first rows."""
        raise NotImplementedError(f"{type(self).__name__} does not list stored values")

    def value_stores(self) -> list[str]:
        """The value store folders of the journal besides its own ``<journal>.values``: each folder an
        execution was run with (``value_store=``, ``$ZART_VALUE_STORE``) that no other journal claimed
        since, as journaled (absolute paths, sorted), a deleted execution's included until ``zart gc``
        finds nothing of it left there. Nothing in them is opened: ``zart stats`` counts their files."""
        raise NotImplementedError(f"{type(self).__name__} does not list value stores")

    def progress(self, execution_id: str) -> RunProgress | None:
        """The live progress of an execution running in the engine read through (its running steps with
        attempt, worker and elapsed time); ``None`` when it is not running there (the file reader:
        always ``None``, a file knows only finished steps)."""
        return None

    def pending_events(self, execution_id: str) -> list[PendingEvent]:
        """Events sent to the execution that no ``zart.wait_for_event`` consumed yet, oldest first
        (their payloads as JSON text)."""
        return []

    def live_output(self, execution_id: str, step_key: str) -> tuple[int, str] | None:
        """``(attempt, text)`` a running attempt of the step printed so far (its first 16 KiB and last
        64 KiB, ``capture``), read from the engine running it; ``None`` when none runs there (the
        journaled ``StepRecord.log`` then has what it printed)."""
        return None

    def close(self) -> None:  # noqa: B027 - a reader with nothing to release keeps this
        """Release what the reader holds (the file, a connection)."""

    def __enter__(self) -> JournalReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
