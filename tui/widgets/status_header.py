"""The line above the executions table: counts per status, the filter and search, and how each journal is
read (live from the engine, from the file, busy a moment, locked, or what is wrong with it)."""
from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from ..fmt import STATUS_STYLES, clean

STATE_STYLES = {"live": "bold green", "file": "cyan", "busy": "yellow", "locked": "bold yellow",
                "missing": "bold red", "error": "bold red"}


class StatusHeader(Static):
    def show(self, counts: dict[str, int], states: list[tuple[str, str, str]], status_filter: str | None,
             search: str | None, *, sort: str = "", updated: str = "") -> None:
        """``states``: ``(journal name, state, message)`` per journal; ``updated``: how old the list is."""
        text = Text()
        total = sum(counts.values())
        text.append(f"{total} executions", style="bold")
        for name in ("running", "sleeping", "waiting", "failed", "interrupted", "cancelled", "completed", "pending"):
            if counts.get(name):
                text.append("  ")
                text.append(f"{name} {counts[name]}", style=STATUS_STYLES.get(name, ""))
        text.append(f"\nfilter: {status_filter or 'all'}", style="dim")
        if sort:
            text.append(f"  sort: {sort}", style="dim")
        if search:
            text.append(f"  search: {clean(search, lines=False)}", style="dim")
        if updated:
            text.append(f"  {updated}", style="dim")
        for name, state, message in states:
            text.append("\n")
            text.append(f"{clean(name, lines=False)}: ", style="bold")
            text.append(state, style=STATE_STYLES.get(state, ""))
            if message and state != "live":
                text.append(f"  {clean(message, lines=False)}", style="dim")
        self.update(text)
