"""What the monitor's control requests do: an interface the runtime implements (no sockets here, so the
engine side can import it cheaply)."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._progress import RunProgress


class Control(ABC):
    """What the monitor's control requests do in the serving process (injected by the runtime)."""

    @abstractmethod
    def cancel(self, execution_id: str, origin: str | None = None) -> dict[str, Any]:
        """Stop a running execution (its workers killed) or mark an unfinished one cancelled.
        ``origin``: who asked, in the requester's words (``"zart cancel (pid 123)"``)."""

    @abstractmethod
    def retry(self, execution_id: str, step_key: str) -> dict[str, Any]:
        """Run a failed step again (by resuming its execution: completed steps are reused)."""

    @abstractmethod
    def resume(self, execution_id: str) -> dict[str, Any]:
        """Start the next run of an unfinished execution in the background; answered once the run has
        begun, with its number (``{"started": True, "run": 2}``)."""

    @abstractmethod
    def delete(self, execution_id: str) -> dict[str, Any]:
        """Remove a finished execution from the journal."""

    def garbage_collect(self, *, keep: int | None, older_than: float | None, workflow: str | None,
                        dry_run: bool, min_age: float | None) -> dict[str, Any]:
        """Retention in the serving process (``zart.garbage_collect``): its report as a JSON object."""
        from .._errors import MonitorError

        raise MonitorError("this engine does not collect garbage")

    def progress(self, execution_id: str) -> RunProgress | None:
        """The progress of an execution running in this process (``None``: it does not run here)."""
        return None

    def live_output(self, execution_id: str, step_key: str) -> tuple[int, str] | None:
        """``(attempt, text)`` a running attempt of the step printed so far, if one runs here."""
        return None
