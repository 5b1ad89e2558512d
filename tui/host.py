"""What the screens need of the app, as a protocol: screens import this, never ``app`` (which imports the
screens), so ``zart_tui`` has no import cycle, type-only imports included (``tests/test_imports.py``)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import zart_nb as zart

if TYPE_CHECKING:
    from .fmt import Clock
    from .source import Source


class Host(Protocol):
    """The app as its screens see it (``ZartApp`` is the one implementation)."""

    clock: Clock
    sources: list[Source]
    live_steps: dict[tuple[Path, str], dict[str, zart.StepEvent]]
    execution_events: int  # moves with every execution event (or resync) of a live engine

    def refresh_sources(self) -> list[Source]:
        """The journals to show now (new ones of a watched folder included)."""

    def confirm_action(self, question: str, act: Callable[[], str]) -> None:
        """Ask ``question``; on yes run ``act`` on a worker thread and show what it returns."""
