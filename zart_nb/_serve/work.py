"""Due work and its sources: what ``zart serve``'s loop asks each journal for (``loop``), and what each
source (``loop.Recoveries``, ``loop.Ticks``, ``wakeups.Wakeups``) offers."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .._handles import Execution


@dataclass(frozen=True, slots=True)
class DueWork:
    """One piece of due work: ``what`` it is (for the status line) and ``start``, which starts it in the
    background (the journal held by the caller) and returns the execution it runs, if any."""

    what: str
    start: Callable[[], Execution | None]


class Source(Protocol):
    """A source of due work in one journal; both methods are called with the journal held."""

    def next_due(self, now: float) -> tuple[float, str] | None:
        """``(when, what)`` of its next due work (``when`` may be past), or None when it has none."""

    def take_due(self, now: float) -> list[DueWork]:
        """The work due at ``now``, taken: it is not offered again."""
