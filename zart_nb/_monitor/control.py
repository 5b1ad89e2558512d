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

    def progress(self, execution_id: str) -> RunProgress | None:
        """The progress of an execution running in this process (``None``: it does not run here)."""
        return None

    def live_output(self, execution_id: str, step_key: str) -> tuple[int, str] | None:
        """``(attempt, text)`` a running attempt of the step printed so far, if one runs here."""
        return None

    def send_event(self, execution_id: str, name: str, payload: str, idempotency_key: str | None,
                   sender: str | None) -> bool:
        """Keep an event (``payload``: JSON text) for the execution and wake its body if it runs here;
        False when that idempotency key was delivered already."""
        raise NotImplementedError("this engine does not take events")

    def wake(self, execution_id: str) -> bool:
        """End the durable sleep the execution is in; False when it was not sleeping."""
        raise NotImplementedError("this engine does not wake sleeps")

    def published(self, execution_id: str, key: str, after: int) -> list[tuple[int, str]]:
        """``(seq, JSON text)`` of the values the execution published under ``key`` after ``after``."""
        return []

    def pending_events(self, execution_id: str) -> list[tuple[int, str, str, float, str | None]]:
        """``(seq, name, JSON payload, sent at, sender)`` of the events not consumed yet."""
        return []
