"""Recurring executions: ``zart.recurring`` registers a schedule in the journal; ``zart serve`` starts one
execution ``<workflow>@<tick, ISO 8601>`` per tick.

Ticks come from a cron expression (croniter, in the schedule's time zone) or from ``every`` seconds (on
multiples of it since the Unix epoch: ``every=3600`` ticks on the hour). The schedule remembers the last
tick it dealt with; ticks missed while nothing served give ONE catch-up run, for the latest of them
(:func:`due_tick`). The timing here is pure (no journal), so it is tested as a table of cases.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from .. import _serialization as ser
from .._definitions import Workflow, as_workflow
from .._errors import ConfigurationError, ScheduleNotFound, SerializationError
from .._journal import schedules as sql
from .._journal.schedules import ScheduleRow
from .._runtime import runtime

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from .._journal import Journal

Overlap = Literal["skip", "cancel", "allow"]
OVERLAPS: tuple[str, ...] = ("skip", "cancel", "allow")
TICK_SEPARATOR = "@"


@dataclass(frozen=True, slots=True)
class Schedule:
    """A recurring execution's schedule as journaled (``zart.schedules()``, ``zart recurring``).

    ``next_tick`` is when ``zart serve`` next starts an execution (``None`` while paused); ``last_tick``
    the latest tick it dealt with (started or skipped; ``None`` before the first), ``last_execution`` the
    id of the latest execution it started. ``data_preview`` is text: the data itself is a pickle that
    only ``zart serve`` reads."""

    workflow: str
    cron: str | None
    every: float | None
    tz: str
    overlap: str
    paused: bool
    data_preview: str
    created_at: datetime
    last_tick: datetime | None
    last_execution: str | None
    next_tick: datetime | None

    @property
    def timing(self) -> str:
        """``cron '0 9 * * *' (Europe/Paris)`` or ``every 60s``."""
        if self.cron is not None:
            return f"cron {self.cron!r} ({self.tz})"
        return f"every {self.every:g}s"

    def __str__(self) -> str:
        state = "paused" if self.paused else f"next {self.next_tick.isoformat() if self.next_tick else '-'}"
        return f"{self.workflow}: {self.timing}, overlap={self.overlap}, {state}"


# --- timing (pure) -----------------------------------------------------------------------------------


def zone(tz: str) -> ZoneInfo:
    """The time zone named ``tz`` (IANA, e.g. ``"Europe/Paris"``); ConfigurationError otherwise."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not isinstance(tz, str) or not tz:
        raise ConfigurationError(f"tz must be an IANA time zone name such as 'UTC', got {tz!r}")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(f"tz {tz!r} is not a time zone this system knows (e.g. 'UTC', "
                                 "'Europe/Paris')") from None


def _croniter() -> Any:
    try:
        from croniter import croniter
    except ImportError:
        raise ConfigurationError("cron schedules need croniter: `pip install 'zart_nb[serve]'`") from None
    return croniter


def check_timing(cron: object, every: object, tz: object) -> tuple[str | None, float | None, str]:
    """``(cron, every, tz)`` checked: exactly one of a valid cron expression and a finite number of
    seconds > 0, and a known time zone."""
    if (cron is None) == (every is None):
        raise ConfigurationError("give a schedule either cron='0 9 * * *' or every=<seconds>, not "
                                 f"{'both' if cron is not None else 'neither'}")
    zone(tz)  # type: ignore[arg-type]
    if cron is not None:
        if not isinstance(cron, str) or not _croniter().is_valid(cron):
            raise ConfigurationError(f"cron {cron!r} is not a valid cron expression (e.g. '0 9 * * *': "
                                     "minute hour day-of-month month day-of-week)")
        return cron, None, str(tz)
    if isinstance(every, bool) or not isinstance(every, (int, float)) or not math.isfinite(every) or every <= 0:
        raise ConfigurationError(f"every must be a number of seconds > 0, got {every!r}")
    return None, float(every), str(tz)


def next_tick(cron: str | None, every: float | None, tz: str, after: float) -> float:
    """The first tick strictly after ``after`` (POSIX seconds)."""
    if cron is not None:
        start = datetime.fromtimestamp(after, zone(tz))
        return float(_croniter()(cron, start).get_next(float))
    assert every is not None
    return (math.floor(after / every) + 1) * every


def latest_tick(cron: str | None, every: float | None, tz: str, now: float) -> float:
    """The latest tick at or before ``now``."""
    if cron is not None:
        ticks = _croniter()(cron, datetime.fromtimestamp(now + 1, zone(tz)))
        tick = float(ticks.get_prev(float))
        while tick > now:
            tick = float(ticks.get_prev(float))
        return tick
    assert every is not None
    return math.floor(now / every) * every


def due_tick(cron: str | None, every: float | None, tz: str, last_tick: float, now: float) -> float | None:
    """The tick to start now, or None: ticks after ``last_tick`` up to ``now`` give one run, for the
    latest of them (missed ticks are caught up once in total, not one by one)."""
    if next_tick(cron, every, tz, last_tick) > now:
        return None
    return latest_tick(cron, every, tz, now)


def tick_execution_id(workflow: str, tick: float, tz: str) -> str:
    """``<workflow>@<tick in ISO 8601, in the schedule's time zone>``, e.g. ``report@2026-12-06T09:00:00+00:00``."""
    moment = datetime.fromtimestamp(tick, zone(tz))
    spec = "seconds" if tick == int(tick) else "milliseconds"
    return f"{workflow}{TICK_SEPARATOR}{moment.isoformat(timespec=spec)}"


def as_schedule(row: ScheduleRow) -> Schedule:
    """The public record of a journaled row (its next tick computed)."""
    upcoming = None if row.paused else next_tick(row.cron, row.every, row.tz, row.last_tick)
    tz = zone(row.tz)
    return Schedule(row.workflow, row.cron, row.every, row.tz, row.overlap, bool(row.paused), row.data_preview,
                    datetime.fromtimestamp(row.created_at, tz),
                    None if row.last_execution is None and row.last_tick <= row.created_at
                    else datetime.fromtimestamp(row.last_tick, tz),
                    row.last_execution, None if upcoming is None else datetime.fromtimestamp(upcoming, tz))


# --- the public API ----------------------------------------------------------------------------------


def _journal(journal: str | os.PathLike[str] | None) -> Journal:
    return runtime.journal(journal)


def _name(workflow: object) -> str:
    if isinstance(workflow, str):
        if not workflow:
            raise ConfigurationError("a workflow name is a non-empty string")
        return workflow
    return as_workflow(workflow).name


def recurring(workflow: Workflow[Any] | Any, cron: str | None = None, *,
              every: float | None = None, data: Any = None, tz: str = "UTC", overlap: Overlap = "skip",
              journal: str | os.PathLike[str] | None = None) -> Schedule:
    """Register (or change) the recurring schedule of ``workflow`` in the journal; ``zart serve`` starts
    one execution per tick, with the id ``<workflow name>@<tick, ISO 8601>`` and ``data`` as its input.

    ``cron`` (``"0 9 * * *"``, evaluated in ``tz``) or ``every`` (seconds; ticks on multiples of it since
    the Unix epoch) says when. ``overlap`` says what a tick does while the previous execution still runs:
    ``"skip"`` the tick, ``"cancel"`` the previous one, or ``"allow"`` both to run. Ticks missed while no
    ``zart serve`` ran give one catch-up run in total. Registering a workflow again replaces its
    schedule's timing, data and definition (it keeps being paused, and its last tick). The workflow's
    definition is journaled now, so serve runs it as ``zart resume`` would (it needs the workflow's
    libraries importable)."""
    definition = as_workflow(workflow)
    cron, every, tz = check_timing(cron, every, tz)
    if overlap not in OVERLAPS:
        raise ConfigurationError(f"overlap must be one of {', '.join(OVERLAPS)}, got {overlap!r}")
    if TICK_SEPARATOR in definition.name:
        raise ConfigurationError(f"a recurring workflow's name may not contain {TICK_SEPARATOR!r} (its "
                                 f"executions are named <workflow>{TICK_SEPARATOR}<tick>): {definition.name!r}")
    try:
        def_id = ser.code_hash(definition.definition)
        blob = ser.dumps_by_value(definition.definition)
        payload = ser.dumps(data)
    except Exception as exc:
        raise SerializationError(f"the schedule of workflow {definition.name!r} cannot be pickled into the "
                                 f"journal: {exc}") from exc
    now = time.time()
    row = ScheduleRow(definition.name, def_id, cron, every, tz, overlap, ser.preview(data), False, now, now, 0.0,
                      now, None)
    target = _journal(journal)
    with target.hold():
        if not target.has_definition(def_id):
            target.save_definition(def_id, "workflow", definition.name, ser.source_of(definition.definition), blob)
            target.record()  # durable in the side log; folded before the schedule's transaction
        target.transact(sql.put_schedule, row, payload)
        stored = target.query(sql.schedule_rows, definition.name)
    return as_schedule(stored[0])


def schedules(journal: str | os.PathLike[str] | None = None, *, lock_timeout: float | None = None) -> list[Schedule]:
    """Every recurring schedule of the journal, by workflow name, with its next tick (``lock_timeout``: how
    long to wait for another process to release the file; ``JournalLocked`` after it)."""
    return [as_schedule(row) for row in runtime.journal(journal, lock_timeout=lock_timeout).query(sql.schedule_rows)]


def _set_paused(workflow: object, paused: bool, journal: str | os.PathLike[str] | None) -> Schedule:
    name = _name(workflow)
    target = _journal(journal)
    if not target.transact(sql.set_paused, name, paused, time.time()):
        raise ScheduleNotFound(name, target.path)
    return as_schedule(target.query(sql.schedule_rows, name)[0])


def pause_schedule(workflow: object, *, journal: str | os.PathLike[str] | None = None) -> Schedule:
    """Pause the schedule of ``workflow`` (a workflow or its name): no tick starts until it is resumed."""
    return _set_paused(workflow, True, journal)


def resume_schedule(workflow: object, *, journal: str | os.PathLike[str] | None = None) -> Schedule:
    """Resume a paused schedule; the ticks it missed while paused are not run (its next tick is after now)."""
    return _set_paused(workflow, False, journal)


def remove_schedule(workflow: object, *, journal: str | os.PathLike[str] | None = None) -> None:
    """Remove the schedule of ``workflow`` (the executions it started stay in the journal)."""
    name = _name(workflow)
    target = _journal(journal)
    if not target.transact(sql.remove_schedule, name):
        raise ScheduleNotFound(name, target.path)
