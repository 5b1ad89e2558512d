"""Retention: ``zart.garbage_collect`` (``zart gc``) deletes the finished executions a rule leaves out,
with every record they own (superseded step records, attempts, runs) and the value store files only
they pointed to, then the store's orphans (as ``zart.gc``). Running, pending and interrupted executions
are never touched.

When another process's engine holds the journal, the work is done by that engine (through its monitor
endpoint): it alone may write the file. A holder that serves no monitor is named, and nothing is done.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from . import _values as values
from ._errors import ConfigurationError, JournalError, JournalLocked
from ._handles import journal_of

if TYPE_CHECKING:
    from ._journal import Journal
    from ._journal.retention import Candidate

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*")


def parse_duration(text: str) -> float:
    """Seconds of ``"90"``, ``"90s"``, ``"15m"``, ``"12h"``, ``"7d"`` or ``"2w"``; ``ConfigurationError``
    for anything else."""
    match = _DURATION.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ConfigurationError(f"a duration is a number with an optional unit s, m, h, d or w "
                                 f"(e.g. 7d, 12h, 90), got {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


@dataclass(frozen=True, slots=True)
class RetentionReport:
    """What ``zart.garbage_collect`` freed in one journal (or, with ``dry_run``, would free).

    ``executions``: the ids of the executions deleted; ``rows``: the journal rows they took with them
    (``rows_by_table`` per table); ``files``/``bytes``: the value store files only they pointed to;
    ``orphans``/``orphan_bytes``: files no row points to (older than ``min_age``); ``kept``: finished
    executions the rule kept."""

    journal: str
    executions: tuple[str, ...]
    rows: int
    files: int
    bytes: int
    orphans: int
    orphan_bytes: int
    kept: int
    dry_run: bool
    rows_by_table: dict[str, int] = field(default_factory=dict)
    removed_files: tuple[str, ...] = ()
    kept_young: int = 0  # unreferenced files younger than min_age: possibly being written

    def __str__(self) -> str:
        verb = "would free" if self.dry_run else "freed"
        size = values.size_text(self.bytes + self.orphan_bytes)
        return (f"{self.journal}: {verb} {len(self.executions)} finished execution(s) ({self.rows} journal "
                f"row(s)), {self.files + self.orphans} value file(s) of {size} ({self.orphans} of them orphans); "
                f"kept {self.kept} finished execution(s)"
                + (f"; {self.kept_young} unreferenced file(s) younger than the minimum age kept"
                   if self.kept_young else ""))

    def to_json(self) -> dict[str, Any]:
        """The report as JSON values (what ``zart gc --json`` prints and the monitor carries)."""
        return {"journal": self.journal, "executions": list(self.executions), "rows": self.rows,
                "files": self.files, "bytes": self.bytes, "orphans": self.orphans,
                "orphan_bytes": self.orphan_bytes, "kept": self.kept, "dry_run": self.dry_run,
                "rows_by_table": dict(self.rows_by_table), "removed_files": list(self.removed_files),
                "kept_young": self.kept_young}

    @classmethod
    def from_json(cls, value: Any) -> RetentionReport:
        """The report back from :meth:`to_json`'s values (checked: a bad document is a ``ProtocolError``)."""
        from ._monitor.protocol import ProtocolError

        try:
            return cls(str(value["journal"]), tuple(str(i) for i in value["executions"]), int(value["rows"]),
                       int(value["files"]), int(value["bytes"]), int(value["orphans"]),
                       int(value["orphan_bytes"]), int(value["kept"]), bool(value["dry_run"]),
                       {str(k): int(v) for k, v in dict(value.get("rows_by_table") or {}).items()},
                       tuple(str(n) for n in value.get("removed_files") or ()), int(value.get("kept_young") or 0))
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"a retention report does not fit: {exc}") from None


def check_rule(keep: object, older_than: object, workflow: object, min_age: object) -> tuple[
        int | None, float | None, str | None, float]:
    """The rule's values, checked (``older_than`` may be seconds, a ``timedelta`` or ``"7d"``)."""
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 0):
        raise ConfigurationError(f"keep is a number of executions (0 or more), got {keep!r}")
    if isinstance(older_than, timedelta):
        older_than = older_than.total_seconds()
    elif isinstance(older_than, str):
        older_than = parse_duration(older_than)
    if older_than is not None and (isinstance(older_than, bool) or not isinstance(older_than, (int, float))
                                   or not older_than >= 0):
        raise ConfigurationError(f"older_than is 0 or more seconds (or a timedelta, or '7d'), got {older_than!r}")
    if workflow is not None and (not isinstance(workflow, str) or not workflow):
        raise ConfigurationError(f"workflow is a workflow's name, got {workflow!r}")
    if isinstance(min_age, bool) or not isinstance(min_age, (int, float)) or not min_age >= 0:
        raise ConfigurationError(f"min_age must be 0 or more seconds, got {min_age!r}")
    return keep, None if older_than is None else float(older_than), workflow, float(min_age)


def choose(candidates: list[Candidate], keep: int | None, older_than: float | None, now: float) -> list[str]:
    """The ids of ``candidates`` (newest first) the rule leaves out: beyond the ``keep`` newest, and
    ended more than ``older_than`` seconds before ``now`` (both, when both are given; none without a rule)."""
    if keep is None and older_than is None:
        return []
    chosen = candidates[keep:] if keep is not None else candidates
    if older_than is not None:
        chosen = [c for c in chosen if now - c.ended_at > older_than]
    return [c.execution_id for c in chosen]


def garbage_collect(journal: str | os.PathLike[str] | None = None, *, keep: int | None = None,
                    older_than: float | timedelta | str | None = None, workflow: str | None = None,
                    dry_run: bool = False, min_age: float = values.MIN_AGE) -> RetentionReport:
    """Delete the finished (completed, failed, cancelled) executions of ``journal`` beyond what is kept,
    with their records and the stored values only they point to, then the value store's orphans
    (files no row points to, older than ``min_age`` seconds: see ``zart.gc``).

    ``keep=N`` keeps the N newest finished executions (by when they ended; of ``workflow`` only, when
    given); ``older_than`` (seconds, a ``timedelta`` or ``"7d"``) deletes only those that ended longer
    ago; given both, an execution goes when both say so. Without either, only orphans are removed.
    Running, pending and interrupted executions are never touched, nor a value another execution (a
    fork) still points to. ``dry_run`` only reports.

    When another process's engine holds the journal, that engine does it (through its monitor
    endpoint); a holder that serves none is refused with ``JournalLocked``. Returns a
    :class:`RetentionReport` (rows, files and bytes freed)."""
    from ._monitor.client import MonitorClient
    from ._runtime import runtime

    keep, seconds, workflow, age = check_rule(keep, older_than, workflow, min_age)
    journal_ = runtime.journal(journal)
    path = journal_.path
    if not path.exists():
        raise JournalError(path, "no journal file here")

    def live(client: MonitorClient) -> RetentionReport:
        with client:
            return RetentionReport.from_json(client.garbage_collect(
                keep=keep, older_than=seconds, workflow=workflow, dry_run=dry_run, min_age=age))

    client = MonitorClient.connect(path)
    if client is not None:
        return live(client)
    try:  # waits for another process's hold as long as the journal's lock timeout says
        return collect_here(journal_, keep=keep, older_than=seconds, workflow=workflow, dry_run=dry_run,
                            min_age=age)
    except JournalLocked as exc:
        client = MonitorClient.connect(path)  # its engine may have begun serving meanwhile
        if client is not None:
            return live(client)
        raise JournalLocked(exc.path, f"{exc.owner}: zart gc runs when no other process holds the journal, "
                                      "or in the engine that holds it (through its monitor endpoint)",
                            exc.waited) from None


def collect_here(journal: Journal, *, keep: int | None, older_than: float | None, workflow: str | None,
                 dry_run: bool, min_age: float) -> RetentionReport:
    """:func:`garbage_collect` on a journal this process may write (its engine's, or a free file)."""
    from . import _data as data
    from . import _stores as stores
    from ._journal import retention
    from ._runtime import runtime

    with journal.hold():
        candidates = journal.query(retention.finished, workflow)
        live = {e.execution_id for e in runtime.live_executions() if journal_of(e) is journal and not e.done}
        candidates = [c for c in candidates if c.execution_id not in live]
        chosen = choose(candidates, keep, older_than, time.time())
        removed = journal.retire(chosen, dry_run=dry_run)
        gone = stores.by_folder(journal.path, removed.blobs)
        remaining = stores.by_folder(journal.path, removed.remaining)  # read after the delete (a dry run's too)
        freed_names, freed = [], 0
        for folder in stores.folders(journal):  # each name in the folder of its execution's store
            names, size = stores.remove_files(
                folder, stores.names_in(gone, folder) - stores.names_in(remaining, folder), dry_run)
            freed_names += names
            freed += size
        orphans = data.collect_all(journal, stores.merged(remaining, gone), min_age=min_age, dry_run=dry_run)
    retired = set(removed.ids)
    deleted = tuple(i for i in chosen if i in retired)
    return RetentionReport(str(journal.path), deleted, sum(removed.rows.values()), len(freed_names), freed,
                           len(orphans.removed), orphans.freed, len(candidates) - len(deleted), dry_run,
                           dict(removed.rows), tuple(freed_names) + orphans.removed, len(orphans.kept_young))
