"""The durable calls of a workflow body other than steps: captured values and sleeps. Pure code
beside ``_replay`` (which gives each kind its sequence and key namespace: ``capture:now#0``,
``sleep:nap#0``).

A captured value (``zart.capture``, ``zart.now``) is journaled the first time its call is made and
returned from the journal on every replay; a sleep journals its wake time at its first call, so a
resumed execution sleeps only what is left of it. Both are rows of the ``steps`` table (their key
prefixed by their kind, ``def_id`` the kind's name), completed as soon as they are journaled.
"""
from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from ._errors import DefinitionError
from ._status import StepStatus

if TYPE_CHECKING:
    from ._journal import StoredStep

_COMPLETED = StepStatus.COMPLETED


def recalled(stored: StoredStep | None) -> bytes | None:
    """The journaled value (its pickle or stored value's reference) a durable call returns on replay,
    or ``None`` when the call runs (never journaled, or its record is not a completed one)."""
    if stored is None or stored.status is not _COMPLETED or stored.output is None:
        return None
    return stored.output


def check_name(what: str, name: object) -> str:
    """A durable call's name: a non-empty string."""
    if not isinstance(name, str) or not name:
        raise DefinitionError(f"zart.{what}() needs a non-empty name, got {name!r}")
    return name


def duration(seconds: object) -> float:
    """Seconds to sleep: a finite number >= 0 or a ``timedelta``."""
    if isinstance(seconds, timedelta):
        seconds = seconds.total_seconds()
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) \
            or seconds < 0:
        raise DefinitionError(f"a sleep needs a finite number of seconds >= 0 (or a timedelta), got {seconds!r}")
    return float(seconds)


def moment(when: object) -> float:
    """POSIX seconds of ``when``: a ``datetime`` (naive means local time) or POSIX seconds."""
    if isinstance(when, datetime):
        return when.timestamp()  # a naive datetime is local time, as datetime.timestamp() reads it
    if isinstance(when, bool) or not isinstance(when, (int, float)) or not math.isfinite(when):
        raise DefinitionError(f"zart.sleep_until() needs a datetime or POSIX seconds, got {when!r}")
    return float(when)


def wake_time(journaled: float | None, now: float, seconds: float) -> float:
    """When a sleep ends: the journaled wake time on replay (whatever ``seconds`` says now), else
    ``seconds`` from ``now``."""
    return journaled if journaled is not None else now + seconds


def left(wake_at: float, now: float) -> float:
    """Seconds still to sleep (0 when the wake time has passed)."""
    return max(0.0, wake_at - now)


def until(wake_at: float, woken: bool = False) -> str:
    """A sleep's ``output_preview``: its wake time in UTC (what ``zart show`` and the TUI list)."""
    return f"until {datetime.fromtimestamp(wake_at, UTC).isoformat(timespec='seconds')}" + (" (woken)" if woken else "")
