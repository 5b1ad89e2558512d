"""The one read API every surface uses (the CLI, the widget, the monitor and the TUI).

Implementations return typed records and never unpickle: the journal file (``_journal.reader``), and
the monitor client of a live engine. Pages are ``offset``/``limit``; lists come in a stable order.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from ._status import ExecutionStatus

if TYPE_CHECKING:
    from ._progress import RunProgress
    from ._records import AttemptRecord, DefinitionRecord, ExecutionRecord, RunRecord, StepRecord


class JournalReader(ABC):
    """Typed, paged reads of one journal. ``zart.journal()`` returns one."""

    @property
    @abstractmethod
    def location(self) -> str:
        """What is read: the journal file's path (or the endpoint's address)."""

    @abstractmethod
    def list_executions(self, status: ExecutionStatus | str | None = None, *, search: str | None = None,
                        limit: int = 200, offset: int = 0) -> list[ExecutionRecord]:
        """Executions, newest first, with their step counts. ``search`` matches a part of the id or
        the workflow name (case-insensitive)."""

    @abstractmethod
    def execution_record(self, execution_id: str) -> ExecutionRecord | None:
        """One execution, or ``None`` when the journal has no such id."""

    @abstractmethod
    def list_steps(self, execution_id: str, *, current_only: bool = True, offset: int = 0,
                   limit: int | None = None) -> list[StepRecord]:
        """An execution's step records in call order (``current_only=False`` adds superseded ones)."""

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

    def progress(self, execution_id: str) -> RunProgress | None:
        """The live progress of an execution running in the engine read through (its running steps with
        attempt, worker and elapsed time); ``None`` when it is not running there (the file reader:
        always ``None``, a file knows only finished steps)."""
        return None

    def live_output(self, execution_id: str, step_key: str) -> tuple[int, str] | None:
        """``(attempt, text)`` a running attempt of the step printed so far (the last 64 KiB), read from
        the engine running it; ``None`` when none runs there (the journaled ``StepRecord.log`` then
        has what it printed)."""
        return None

    def close(self) -> None:  # noqa: B027 - a reader with nothing to release keeps this
        """Release what the reader holds (the file, a connection)."""

    def __enter__(self) -> JournalReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
