"""How the ``zart`` command prints: text made safe for a terminal, aligned tables, durations, and one JSON
document built from the typed records (``--json``); the exit codes that say an execution's status."""
from __future__ import annotations

import dataclasses
import enum
import json
import re
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from ._records import format_duration
from ._status import ExecutionStatus

# What `zart show ID` and `zart runs ID` exit with: the execution's status, for scripts.
ERROR_EXIT, USAGE_EXIT, BROKEN_PIPE_EXIT = 1, 2, 141
STATUS_EXIT: dict[ExecutionStatus, int] = {
    ExecutionStatus.COMPLETED: 0,
    ExecutionStatus.FAILED: 3,
    ExecutionStatus.RUNNING: 4,
    ExecutionStatus.PENDING: 5,
    ExecutionStatus.CANCELLED: 6,
    ExecutionStatus.INTERRUPTED: 7,
    ExecutionStatus.SLEEPING: 8,
    ExecutionStatus.WAITING: 9,
}
EXIT_CODES = "\n".join([
    "exit codes:",
    "  0    ok (show, runs: the execution completed)",
    "  1    a zart error: an unknown id, a journal that cannot be read (the message says why)",
    "  2    usage: bad arguments; delete without --yes when stdin is not a terminal",
    "  " + ", ".join(f"{code} {status.value}" for status, code in STATUS_EXIT.items() if code)
    + " (show, runs: the execution's status)",
    f"  {BROKEN_PIPE_EXIT}  the output's reader went away (| head)",
    "  130  interrupted (Ctrl-C)",
])

# C0/C1 control characters (ESC starts terminal escape sequences) and the bidi overrides that reorder text.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_CONTROL_KEEP_LINES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(char: re.Match[str]) -> str:
    code = ord(char.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(text: object, *, lines: bool = False) -> str:
    """``text`` with control characters shown as ``\\x1b``-style escapes: journaled ids, errors and
    previews come from user code and must not drive the terminal. ``lines`` keeps newlines and tabs."""
    return (_CONTROL_KEEP_LINES if lines else _CONTROL).sub(_escape, str(text))


def fmt_time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


fmt_duration = format_duration  # one formatter for the CLI and zart-tui (public: zart.format_duration)


class Table:
    """Aligned columns. Widths come from the first rows given; later rows (a long listing printed in
    chunks) keep them, so a listing never has to be held whole."""

    def __init__(self, headers: Sequence[str]) -> None:
        self.headers = list(headers)
        self.widths: list[int] | None = None

    def lines(self, rows: Iterable[Sequence[object]]) -> list[str]:
        cells = [[safe(cell) for cell in row] for row in rows]
        out = []
        if self.widths is None:
            self.widths = [len(h) for h in self.headers]
            for row in cells:
                self.widths = [max(w, len(c)) for w, c in zip(self.widths, row, strict=True)]
            out.append(self._line(self.headers))
        out += [self._line(row) for row in cells]
        return out

    def _line(self, cells: Sequence[str]) -> str:
        assert self.widths is not None
        return "  ".join(c.ljust(w) for c, w in zip(cells, self.widths, strict=True)).rstrip()


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    return "\n".join(Table(headers).lines(rows))


# --- JSON -------------------------------------------------------------------------------------------


_PLAIN = frozenset((str, int, float, bool))


def to_json(value: Any) -> Any:
    """A JSON-ready value: a record as an object of its fields (plus ``duration`` where it has one),
    datetimes as ISO 8601 with their UTC offset, enums as their value."""
    if value is None or type(value) in _PLAIN:
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
        duration = getattr(type(value), "duration", None)
        if isinstance(duration, property):
            out["duration"] = duration.__get__(value)
        return out
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(to_json(k)): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def _iso(value: datetime) -> str:
    """A journal's (naive, local) datetime as ISO 8601 with its UTC offset. The offset is looked up once per
    hour of local time (``astimezone`` for each of 750,000 step times took ~7 s of a --json --all)."""
    if value.tzinfo is not None:
        return value.isoformat()
    key = (value.year, value.month, value.day, value.hour, value.fold)
    zone = _ZONES.get(key)
    if zone is None:
        zone = _ZONES[key] = value.astimezone().tzinfo
    return value.replace(tzinfo=zone).isoformat()


_ZONES: dict[tuple[int, int, int, int, int], Any] = {}


def dumps(value: Any) -> str:
    """One JSON document (ASCII: a preview's control characters are escaped, never sent raw)."""
    return json.dumps(to_json(value), indent=2)


def write(text: str) -> None:
    sys.stdout.write(text)
    if not text.endswith("\n"):
        sys.stdout.write("\n")
