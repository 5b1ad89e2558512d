"""Text for the tables: statuses in colour, progress bars, times and durations, user text made inert."""
from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime

from rich.text import Text

import zart_nb as zart

STATUS_STYLES = {
    "pending": "dim", "scheduled": "dim", "running": "bold cyan", "retrying": "bold yellow",
    "completed": "green", "failed": "bold red", "cancelled": "magenta", "interrupted": "yellow",
    "sleeping": "blue", "waiting": "blue",
}

# Journaled text comes from user code: control characters (escape sequences) are shown, never sent.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def clean(value: object, *, lines: bool = True) -> str:
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", "" if value is None else str(value))
    return text if lines else text.replace("\n", " ").replace("\t", " ")


def cell(value: object, limit: int = 60) -> Text:
    """A table cell: one line, inert, cut at ``limit`` characters."""
    text = clean(value, lines=False)
    return Text(text if len(text) <= limit else text[: limit - 1] + "…")


def status(value: object) -> Text:
    name = str(getattr(value, "value", value))
    return Text(name, style=STATUS_STYLES.get(name, ""))


def bar(done: int, total: int, width: int = 10) -> Text:
    filled = 0 if total <= 0 else round(width * min(done, total) / total)
    text = Text("█" * filled, style="green")
    text.append("░" * (width - filled), style="dim")
    text.append(f" {done}/{total}")
    return text


class Clock:
    """What 'now' is for durations of running things (tests fix it)."""

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._now())

    def duration(self, start: datetime | None, end: datetime | None) -> str:
        if start is None:
            return "-"
        seconds = max(0.0, ((end or self.now()) - start).total_seconds())
        return seconds_text(seconds)


seconds_text = zart.format_duration  # the CLI's formatter too: one way to say a duration


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def short_when(value: datetime | None) -> str:
    """A table's time: month, day and time of day (the year and seconds' fraction cost columns at 80)."""
    return value.strftime("%m-%d %H:%M:%S") if value else "-"


def ago(then: datetime | None, now: datetime) -> str:
    """``updated 3s ago``: how old what is shown is (``then``: when the read that drew it ended)."""
    if then is None:
        return "not read yet"
    seconds = max(0, int((now - then).total_seconds()))
    return f"updated {seconds}s ago" if seconds < 120 else f"updated {seconds // 60}m ago"

