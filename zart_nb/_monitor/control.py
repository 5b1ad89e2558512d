"""What the monitor's control requests do: an interface the runtime implements (no sockets here, so the
engine side can import it cheaply)."""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from .._errors import MonitorError

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
        """Run a failed step again (a new run of its execution: completed steps are reused)."""

    @abstractmethod
    def resume(self, execution_id: str, extend: float | None = None, trigger: str | None = None) -> dict[str, Any]:
        """Start the next run of an unfinished execution in the background; answered once the run has
        begun, with its number (``{"started": True, "run": 2, "execution_id": ...}``). ``extend``: seconds
        its deadline moves; ``trigger``: ``"recover"`` when ``zart.recover`` asks."""

    def restart(self, execution_id: str) -> dict[str, Any]:
        """A new run from scratch (every step again), answered as ``resume``."""
        raise MonitorError("this engine cannot restart executions")

    def rerun(self, execution_id: str, steps: list[str], after: bool = False) -> dict[str, Any]:
        """A new run that runs ``steps`` again (``after``: and every later one), answered as ``resume``
        with ``"stale"``: reused steps after them that may depend on them."""
        raise MonitorError("this engine cannot rerun steps")

    def fork(self, execution_id: str, from_step: str, new_id: str | None = None, data: Any = ...) -> dict[str, Any]:
        """A new execution reusing the steps before ``from_step``; ``data`` (JSON; ``...``: the original
        input). Answered as ``resume``, with the new execution's id."""
        raise MonitorError("this engine cannot fork executions")

    def recover(self) -> dict[str, Any]:
        """Resume every execution whose last run ended because its process died:
        ``{"started": [reply per execution, as resume's]}``."""
        raise MonitorError("this engine cannot recover executions")

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

    def handover(self, pid: int) -> dict[str, Any]:
        """Process ``pid`` (the request's sender, checked) needs the journal for a run: ``zart serve``
        stops its runs at their next durable call and lets the file go (``{"pid", "asker", "stopping"}``);
        any other engine refuses."""
        raise MonitorError(f"process {os.getpid()} is not zart serve: it does not hand its journal over")

    def pending_events(self, execution_id: str) -> list[tuple[int, str, str, float, str | None]]:
        """``(seq, name, JSON payload, sent at, sender)`` of the events not consumed yet."""
        return []
