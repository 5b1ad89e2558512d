"""The ``zart`` commands that read and tidy journals: ls, show, runs, stats, delete.

Without ``--journal`` (or ``$ZART_JOURNAL``) they read every journal of ``./.zart/`` (``zart ls DIR`` and
``zart stats DIR``: of another folder), each through its live engine's monitor when another process's
engine holds it (``_discovery``). ``--json`` prints one JSON document built from the typed records.
Nothing here unpickles.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _discovery as discovery
from . import _values as values
from ._cli_format import (
    STATUS_EXIT,
    USAGE_EXIT,
    Table,
    dumps,
    fmt_duration,
    fmt_time,
    safe,
    table,
    to_json,
    write,
)
from ._errors import ConfigurationError, ExecutionNotFound, JournalError, JournalLocked, ZartError
from ._executors.capture import prefix_lines, unseen
from ._progress import QueueBacklog, RunEnd, RunProgress
from ._reader import JournalReader
from ._records import AttemptRecord, ExecutionRecord, PendingEvent, RunRecord, StepRecord
from ._status import ExecutionStatus
from ._stored import StoredValue, by_step, counts_by_step, others_line
from ._stored import lines as stored_lines
from ._stored import read as read_stored

if TYPE_CHECKING:
    from ._monitor.client import MonitorClient

SHOW_LIMIT = 50  # steps `zart show` prints unless told otherwise
CHUNK = 20_000  # steps read at a time by --all (the monitor answers at most 5,000: it is read on)


@dataclass
class Journals:
    """What a command reads: one journal file, or the journals of a folder (``where`` names it)."""

    where: str
    paths: list[Path]
    folder: bool


def targets(args: argparse.Namespace) -> Journals:
    """``--journal``, else ``$ZART_JOURNAL``, else the folder given (``zart ls DIR``) or ``./.zart/``."""
    given = getattr(args, "folder", None)
    if args.journal:
        if given:
            raise ZartError("give a folder or --journal, not both")
        return Journals(str(args.journal), [Path(args.journal)], False)
    env = os.environ.get("ZART_JOURNAL")
    if env and not given:
        return Journals(env, [Path(env)], False)
    folder, paths = discovery.folder_journals(given)
    return Journals(f"{folder}/", paths, True)


def journal_path(args: argparse.Namespace) -> Path:
    """The one journal an id command reads (``_cli._locate`` has resolved it across the folder)."""
    from ._runtime import default_journal_path

    return Path(args.journal) if args.journal else default_journal_path()


@dataclass
class Listed:
    """One journal of a listing: how it was read and what it gave (``error`` when it could not be)."""

    path: Path
    state: str
    pid: int | None = None
    error: str | None = None
    counts: dict[ExecutionStatus, int] = field(default_factory=dict)
    records: list[ExecutionRecord] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path.resolve()), "name": self.path.stem, "state": self.state, "pid": self.pid,
                "error": self.error, "stats": to_json(self.counts), "executions": sum(self.counts.values())}


def _list_one(path: Path, read: Any, *, missing_ok: bool = False) -> Listed:
    try:
        found = discovery.read(path, read, missing_ok=missing_ok)
    except JournalLocked as exc:
        return Listed(path, "locked", discovery.holder_pid(exc),
                      error=f"in use by {exc.owner}; it can be read once that process releases it")
    except JournalError as exc:
        return Listed(path, "missing" if not path.exists() else "error", error=str(exc))
    counts, records = found.value
    return Listed(path, found.via, found.pid, counts=counts, records=records)


def _report_unread(listed: list[Listed], what: str) -> None:
    for one in listed:
        if one.error is not None and one.state != "missing":
            print(f"zart: {safe(one.path)}: {what}: {safe(one.error)}", file=sys.stderr)


def _handed_over(waits_for: str | None) -> bool:
    from ._handover import is_handover  # the engine's words for an execution zart serve handed over

    return is_handover(waits_for)


def _status_cell(record: ExecutionRecord) -> str:
    """Its status; a suspended one's with what it waits for and until when (``sleeping 'nap' until 14:05:00``)."""
    if not record.status.suspended:
        return record.status.value
    until = "" if record.wake_at is None else f" until {record.wake_at.isoformat(sep=' ', timespec='seconds')}"
    return f"{record.status.value} {safe(repr(record.waits_for))}{until}"


def cmd_ls(args: argparse.Namespace) -> int:
    journals = targets(args)
    status = args.status
    listed = [_list_one(path, lambda r: (r.stats(), r.list_executions(status=status, limit=args.limit)),
                        missing_ok=not journals.folder) for path in journals.paths]
    if not journals.folder and listed[0].error is not None and listed[0].state != "locked":
        raise JournalError(listed[0].path, listed[0].error) if listed[0].state == "missing" else \
            ZartError(listed[0].error)
    found = [(one.path, r) for one in listed for r in one.records]
    found.sort(key=lambda item: item[1].created_at or item[1].started_at or datetime.min, reverse=True)
    shown = found[:args.limit]
    total = sum(one.counts.get(ExecutionStatus(status), 0) if status else sum(one.counts.values())
                for one in listed)
    if args.json:
        write(dumps({"where": journals.where, "journals": [one.to_json() for one in listed],
                     "executions": [{"journal": str(path.resolve()), **to_json(r)} for path, r in shown],
                     "shown": len(shown), "total": total}))
        return 0
    _report_unread(listed, "not listed")
    if not shown:
        print(f"no executions in {safe(journals.where)}" +
              ("" if journals.paths else " (no journals there)"))
        return 0
    several = len(journals.paths) > 1
    headers = ["ID", *(["JOURNAL"] if several else []), "WORKFLOW", "STATUS", "DONE/TOTAL", "RUNS", "STARTED",
               "DURATION"]
    print(table(headers, [(r.execution_id, *([path.stem] if several else []), r.workflow, _status_cell(r),
                           f"{r.steps_completed}/{r.steps_total}", r.run_number, fmt_time(r.started_at),
                           fmt_duration(r.duration)) for path, r in shown]))
    if total > len(shown):
        print(f"({len(shown)} of {total} executions shown, newest first: `zart ls --limit {total}` lists all)",
              file=sys.stderr)
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from . import _storefolders as folders  # the value stores' files, as found on disk (none opened)

    journals = targets(args)
    journaled: dict[Path, list[str] | None] = {}

    def read(path: Path) -> Any:
        def counts(reader: JournalReader) -> tuple[dict[ExecutionStatus, int], list[ExecutionRecord]]:
            journaled[path] = _value_stores(reader)
            return reader.stats(), []
        return counts

    listed = [_list_one(path, read(path)) for path in journals.paths]
    if not journals.folder and listed[0].error is not None and listed[0].state != "locked":
        raise ZartError(listed[0].error)  # a held journal's stores are still counted (from the list beside it)
    summed = {status: sum(one.counts.get(status, 0) for one in listed) for status in ExecutionStatus}
    stores = {one.path: folders.of_journal(one.path, journaled.get(one.path)) for one in listed}
    files = sum(f.files for found in stores.values() for f in found)
    size = sum(f.size for found in stores.values() for f in found)
    if args.json:
        write(dumps({"where": journals.where,
                     "journals": [{**one.to_json(), "store": {"path": stores[one.path][0].path,
                                                              "files": stores[one.path][0].files,
                                                              "bytes": stores[one.path][0].size},
                                   "stores": [f.to_json() for f in stores[one.path]],
                                   "store_files": sum(f.files for f in stores[one.path]),
                                   "store_bytes": sum(f.size for f in stores[one.path])} for one in listed],
                     "stats": {s: n for s, n in summed.items() if n}, "total": sum(summed.values()),
                     "store_files": files, "store_bytes": size}))
        return 0
    _report_unread(listed, "not counted")
    statuses = list(ExecutionStatus)
    rows = [[one.path.stem, *(one.counts.get(s, 0) for s in statuses), sum(one.counts.values()),
             _store_text(sum(f.files for f in stores[one.path]), sum(f.size for f in stores[one.path]))]
            for one in listed if one.error is None]
    if len(rows) > 1:
        rows.append(["all", *(summed[s] for s in statuses), sum(summed.values()), _store_text(files, size)])
    shown = [(one.path, f) for one in listed for f in stores[one.path] if f.files or f.error or not f.own]
    if not rows and not shown:
        print(f"no journals in {safe(journals.where)}")
        return 0
    if rows:
        print(table(["JOURNAL", *(s.value.upper() for s in statuses), "TOTAL", "STORE"], rows))
    if shown:  # each folder: the journal's own store and each value_store= folder of its executions
        if rows:
            print()
        folder_rows: list[list[object]] = [[f.path, path.stem, f.files, values.size_text(f.size) if f.files else "-",
                                            f.error or ""] for path, f in shown]
        if len(shown) > 1:
            folder_rows.append(["all", "", files, values.size_text(size), ""])
        print(table(["VALUE STORE", "JOURNAL", "FILES", "SIZE", "NOTE"], folder_rows))
    return 0


def _value_stores(reader: JournalReader) -> list[str] | None:
    """The journal's ``value_store=`` folders, or None from a reader that cannot list them (an engine of
    an older zart_nb answering through its monitor: the list beside the journal is read instead)."""
    from ._errors import MonitorError

    try:
        return reader.value_stores()
    except (NotImplementedError, MonitorError):
        return None


def _store_text(files: int, size: int) -> str:
    """``57.0 MB (3 files)``: a value store's size (``-`` for none)."""
    return f"{values.size_text(size)} ({files} file{'s' if files != 1 else ''})" if files else "-"


# --- one execution -----------------------------------------------------------------------------------


def _record(reader: JournalReader, execution_id: str) -> ExecutionRecord:
    record = reader.execution_record(execution_id)
    if record is None:
        raise ExecutionNotFound(execution_id, reader.location)
    return record


def _read_one(args: argparse.Namespace, fn: Any) -> discovery.Read[Any]:
    path = journal_path(args)
    if not path.exists():
        raise ExecutionNotFound(args.execution_id, path)
    return discovery.read(path, fn)


def run_end(run: RunRecord) -> str:
    """How a run ended, in a few words ("" while it runs)."""
    if run.ended_by is None:
        return ""
    if run.ended_by in (RunEnd.CANCELLED, RunEnd.PROCESS_DIED, RunEnd.DEADLINE_EXCEEDED, RunEnd.RECOVERED) \
            and run.end_detail:
        return run.end_detail
    return run.ended_by.value


def _step_row(step: StepRecord, record: ExecutionRecord) -> tuple[object, ...]:
    result = step.error if step.error else (step.output_preview or "")
    return (step.step_key, step.status.value, step.attempts, fmt_duration(step.duration),
            step.this_run(record.run_number), step.worker or "", step.args_preview, result)


STEP_HEADERS = ("KEY", "STATUS", "ATTEMPTS", "DURATION", "THIS RUN", "WORKER", "ARGS", "OUTPUT / ERROR")


def _run_rows(runs: list[RunRecord]) -> list[tuple[object, ...]]:
    return [(r.run_number, r.status.value, fmt_time(r.started_at), fmt_time(r.finished_at),
             fmt_duration(((r.finished_at or datetime.now()) - r.started_at).total_seconds()
                          if r.started_at else None), r.executed, r.reused, r.pid, run_trigger(r), run_end(r))
            for r in runs]


def run_trigger(run: RunRecord) -> str:
    """What started a run, with its detail (``rerun: steps fetch#0``); "" from a journal before schema 6."""
    if run.trigger is None:
        return ""
    return f"{run.trigger.value}: {run.trigger_detail}" if run.trigger_detail else run.trigger.value


RUN_HEADERS = ("RUN", "STATUS", "STARTED", "FINISHED", "DURATION", "EXECUTED", "REUSED", "PID", "TRIGGER",
               "ENDED")


@dataclass
class _Page:
    record: ExecutionRecord
    runs: list[RunRecord]
    steps: list[StepRecord]
    attempts: list[AttemptRecord]
    more: bool
    progress: RunProgress | None = None
    stored: list[StoredValue] = field(default_factory=list)
    children: list[ExecutionRecord] = field(default_factory=list)
    events: list[PendingEvent] = field(default_factory=list)  # sent, not consumed yet
    stored_counts: dict[tuple[str, str | None], int] = field(default_factory=dict)  # each step's, in the execution


CHILDREN_SHOWN = 10  # children of an execution `zart show` names (the rest are counted)
FOLLOW_POLL = 0.25


def follow_output(reader: JournalReader, execution_id: str) -> ExecutionRecord | None:
    """Print what the running steps of an execution print, as they print it, until it stops running in
    the engine ``reader`` reads through; returns its record then (None if it cannot be read)."""
    shown: dict[tuple[str, int], tuple[int, str]] = {}  # (key, attempt) -> where it is (capture.unseen)
    while True:
        try:
            progress = reader.progress(execution_id)
            if progress is None:
                return reader.execution_record(execution_id)
            for step in progress.running_steps:
                found = reader.live_output(execution_id, step.key)
                if found is None:
                    continue
                attempt, text = found
                start, seen = shown.get((step.key, attempt), (0, ""))
                lines, start, seen = unseen(text, start, seen)  # whole lines; the rest comes with the next poll
                if lines:
                    print(prefix_lines(step.key, attempt, safe(lines, lines=True)), end="", flush=True)
                shown[(step.key, attempt)] = start, seen
        except ZartError:  # the engine released the journal: the run is over
            return None
        time.sleep(FOLLOW_POLL)


def _show_follow(args: argparse.Namespace) -> int:
    """``zart show ID --output --follow``: what running steps print, live, then how the execution ended."""
    if not args.output:
        raise ConfigurationError("--follow follows the output of running steps: use it with --output")
    record = _read_one(args, lambda reader: follow_output(reader, args.execution_id)).value
    if record is None:  # the engine let go of the journal as the run ended: read how it ended
        record = _read_one(args, lambda reader: _record(reader, args.execution_id)).value
    end = f" ({safe(record.end_detail)})" if record.end_detail else ""
    print(f"Execution {safe(record.execution_id)}  [{record.status.value}]{end}")
    return STATUS_EXIT[record.status]


def cmd_show(args: argparse.Namespace) -> int:
    if args.follow:
        return _show_follow(args)
    if args.all:
        return _show_all(args)
    limit, offset = args.limit, args.offset

    def read(reader: JournalReader) -> _Page:
        record = _record(reader, args.execution_id)
        steps = reader.list_steps(args.execution_id, offset=offset, limit=limit + 1)
        keys = {s.step_key for s in steps[:limit]}
        attempts = [a for a in reader.list_attempts(args.execution_id) if a.step_key in keys]
        keys |= {values.INPUT_KEY, values.OUTPUT_KEY}  # a workflow's table input and output, with its steps'
        every = read_stored(reader, args.execution_id)
        stored = [s for s in every if s.step_key in keys]
        return _Page(record, reader.list_runs(args.execution_id), steps[:limit], attempts, len(steps) > limit,
                     reader.progress(args.execution_id), stored,
                     reader.list_executions(parent=args.execution_id, limit=CHILDREN_SHOWN + 1, descending=False),
                     reader.pending_events(args.execution_id), counts_by_step(every))

    found = _read_one(args, read)
    page = found.value
    record = page.record
    left = _left(record, offset, len(page.steps), page.more)
    if args.json:
        write(dumps({"journal": str(found.path.resolve()), "read": found.via, "execution": record,
                     "runs": page.runs, "offset": offset, "limit": limit, "steps": page.steps,
                     "more": left if page.more else 0, "attempts": page.attempts, "progress": page.progress,
                     "stored": [s.peek(found.path).to_json() for s in page.stored], "children": page.children,
                     "pending_events": [{"name": e.name, "payload": e.payload, "sent_at": e.sent_at,
                                         "sender": e.sender} for e in page.events]}))
        return STATUS_EXIT[record.status]
    _print_head(record, page.runs, found, page.children)
    first = offset + 1
    span = f"{first}-{offset + len(page.steps)}" if page.steps else "none"
    print(f"Steps ({span} of {_of(record, offset, len(page.steps), page.more)})")
    print("\n".join(Table(STEP_HEADERS).lines(_step_row(s, record) for s in page.steps)))
    if page.more:
        nxt = offset + len(page.steps)
        more = f"{left} more" if isinstance(left, int) else "more steps follow"
        print(f"... {more}: `zart show {safe(args.execution_id)} --offset {nxt}` for the next {limit}, "
              "--limit N for another page size, --all for every step")
    _print_stored(page.stored, {s.step_key: s.output_preview for s in page.steps}, found.path, page.stored_counts)
    progress = page.progress
    if progress is not None and (progress.running_steps or progress.queued):
        print()
        queued = f", {progress.queued} waiting on a queue's limit" if progress.queued else ""
        print(f"Running now ({progress.running} running, {progress.scheduled} waiting for a worker, "
              f"{progress.retrying} waiting to retry{queued})")
        if progress.running_steps:
            print(table(("KEY", "STATUS", "ATTEMPT", "WORKER", "ELAPSED"),
                        [(s.key, "running", s.attempt, s.worker, fmt_duration(s.elapsed))
                         for s in progress.running_steps]))
        if progress.queues:
            print(table(("QUEUE", "WAITING", "ACTIVE", "LIMIT"),
                        [(q.name, q.waiting, q.active, _queue_limit(q)) for q in progress.queues]))
    if page.events:
        print()
        print(f"Events sent, not consumed yet ({len(page.events)}; a zart.wait_for_event of the name takes each)")
        print(table(("NAME", "PAYLOAD", "SENT", "BY"),
                    [(e.name, ser_cap(e.payload), fmt_time(e.sent_at), e.sender or "")
                     for e in page.events]))
    _print_tail(args, record, page.steps, page.attempts)
    return STATUS_EXIT[record.status]


def _print_stored(stored: list[StoredValue], previews: dict[str, str | None], journal: Path,
                  counts: dict[tuple[str, str | None], int] | None = None) -> None:
    """The steps shown whose output is in the value store: kind, size, a table's schema and first rows
    (read from its Parquet file now), an array's dtype and shape (``previews``: the steps' output previews).
    Of the keys of one step (a fan-out's), the first is shown so and the others in one line: a fan-out of
    100 frames printed 100 tables' first rows, each file read for them. ``counts``: each step's values in the
    execution, when ``stored`` is a page's (its line says how many the step's SQL view unites)."""
    if not stored:
        return
    print()
    where = sorted({value.store for value in stored if value.store})  # the execution's value_store=, if any
    print(f"Stored values ({len(stored)}{', in ' + safe(', '.join(where)) if where else ''})")
    for group in by_step(stored, list(previews)):
        first, *rest = stored_lines(group[0].peek(journal), previews.get(group[0].step_key))
        print(f"  {safe(group[0].step_key)}: {safe(first)}")
        for line in rest:
            print(f"    {safe(line)}")
        if len(group) > 1:
            in_all = counts.get((group[0].execution_id, group[0].step)) if counts else None
            print(f"  {safe(others_line(group, in_all=in_all))}")


def ser_cap(text: str, limit: int = 60) -> str:
    """A payload cut for a table cell."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _queue_limit(queue: QueueBacklog) -> str:
    """``concurrency 2, rate 5/1s``: a queue's limit (counted in the process running the execution)."""
    parts = [f"concurrency {queue.concurrency}"] if queue.concurrency is not None else []
    if queue.rate is not None:
        parts.append(f"rate {queue.rate}")
    return ", ".join(parts)


def _left(record: ExecutionRecord, offset: int, shown: int, more: bool) -> int | str:
    """How many steps follow the page: from the record's count, or "more" when it does not say."""
    left = record.steps_total - offset - shown
    return left if more and left > 0 else ("more" if more else 0)


def _of(record: ExecutionRecord, offset: int, shown: int, more: bool) -> str:
    total = record.steps_total
    return str(total) if total >= offset + shown + (1 if more else 0) else "more"


def _print_head(record: ExecutionRecord, runs: list[RunRecord], found: discovery.Read[Any],
                children: list[ExecutionRecord] | None = None) -> None:
    via = f"live, through the engine of pid {found.pid}" if found.via == discovery.LIVE else "read from the file"
    print(f"Execution {safe(record.execution_id)}  [{record.status.value}]")
    print(f"  journal:  {safe(found.path)} ({via})")
    print(f"  workflow: {safe(record.workflow)}")
    if record.parent_execution_id is not None:
        print(f"  parent:   {safe(record.parent_execution_id)}")
    if children:
        named = ", ".join(f"{safe(c.execution_id)} ({c.status.value})" for c in children[:CHILDREN_SHOWN])
        more = " and more (zart ls shows them)" if len(children) > CHILDREN_SHOWN else ""
        print(f"  children: {named}{more}")
    print(f"  input:    {safe(record.input_preview)}")
    if record.output_preview is not None:
        print(f"  output:   {safe(record.output_preview)}")
    if record.error and record.error != record.end_detail:
        print(f"  error:    {safe(record.error)}")
    if record.status.suspended and _handed_over(record.waits_for):
        print(f"  waits:    for the journal, {safe(record.waits_for)} by zart serve (nothing runs; zart serve "
              "continues it once that process lets the file go)")
    elif record.status.suspended:
        until = "no timeout" if record.wake_at is None else \
            f"until {record.wake_at.astimezone().isoformat(timespec='seconds')}"
        what = "sleep" if record.status is ExecutionStatus.SLEEPING else "event"
        print(f"  waits:    {what} {safe(repr(record.waits_for))}, {until} (nothing runs; zart serve, the process "
              "that suspended it or zart resume continues it)")
    elif record.ended_by is not None:
        print(f"  ended:    {record.ended_by.value}" + (f": {safe(record.end_detail)}" if record.end_detail else ""))
    running = f", {record.steps_running} running" if record.steps_running else ""
    print(f"  steps:    {record.steps_completed}/{record.steps_total} completed, {record.steps_failed} failed"
          f"{running}")
    print()
    print("Runs")
    print(table(RUN_HEADERS, _run_rows(runs)))
    print()


def _print_tail(args: argparse.Namespace, record: ExecutionRecord, steps: list[StepRecord],
                attempts: list[AttemptRecord]) -> None:
    if attempts:
        print()
        print("Failed attempts")
        print(table(("KEY", "RUN", "ATTEMPT", "WORKER", "ERROR"),
                    [(a.step_key, a.run_number, a.attempt, a.worker or "", a.error or "") for a in attempts]))
    if args.output:
        shown: set[tuple[str, int, int]] = set()
        for a in attempts:
            if a.log:
                shown.add((a.step_key, a.run_number, a.attempt))
                print(f"\nOutput of {safe(a.step_key)} (run {a.run_number}, attempt {a.attempt}"
                      f"{_cut(a.log_skipped)}):\n{safe(a.log.rstrip(), lines=True)}")
        for s in steps:
            if s.log and (s.step_key, s.run_number, s.attempts) not in shown:  # (a failed step's last attempt)
                print(f"\nOutput of {safe(s.step_key)} (run {s.run_number}, attempt {s.attempts}"
                      f"{_cut(s.log_skipped)}):\n{safe(s.log.rstrip(), lines=True)}")
    if args.traceback:
        from ._tracebacks import short  # zart_nb's frames hidden, source lines shown

        for s in steps:
            if s.traceback:
                print(f"\nTraceback of {safe(s.step_key)}:\n{safe(short(s.traceback), lines=True)}")
        if record.traceback:
            print(f"\nTraceback of the workflow:\n{safe(short(record.traceback), lines=True)}")


def _cut(skipped: int) -> str:
    """What an output's heading says of a kept output that leaves its middle out."""
    return f"; {skipped:,} characters skipped in the middle, at the [zart: ...] line" if skipped else ""


class _AllSteps:
    """``zart show --all``: every step, read and printed a chunk at a time (a retry after the engine went
    away goes on from where it stopped). Keyset chunks: each starts after the last step printed, so the
    journal never counts past the steps already read (OFFSET did: quadratic over a long execution)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.last: str | None = None  # the key of the last step printed: the next chunk starts after it
        self.started = False
        self.table = Table(STEP_HEADERS)
        self.record: ExecutionRecord | None = None
        self.runs: list[RunRecord] = []
        self.attempts: list[AttemptRecord] = []
        self.first = True  # no step written yet (--json)
        self.with_steps: list[StepRecord] = []  # steps whose output or traceback --output/--traceback print
        self.stored: list[StoredValue] = []  # the execution's stored values (those of the steps shown are listed)
        self.previews: dict[str, str | None] = {}  # output previews of the steps shown whose output is stored
        self.location = ""  # the journal, as the reader names it

    def __call__(self, reader: JournalReader) -> ExecutionRecord:
        args = self.args
        if self.record is None:
            self.record = _record(reader, args.execution_id)
            self.runs = reader.list_runs(args.execution_id)
            self.attempts = reader.list_attempts(args.execution_id)
            self.stored = read_stored(reader, args.execution_id)
            self.location = reader.location
        record = self.record
        stored = {s.step_key for s in self.stored}
        while True:
            if self.last is None:  # the first chunk: from --offset on
                steps = reader.list_steps(args.execution_id, offset=args.offset, limit=CHUNK)
            else:
                steps = reader.list_steps(args.execution_id, after=self.last, limit=CHUNK)
            if not self.started:
                self.started = True
                self._begin(reader, steps)
            if not steps:
                return record
            self.last = steps[-1].step_key
            self.previews.update((s.step_key, s.output_preview) for s in steps if s.step_key in stored)
            if args.json:
                for step in steps:
                    sys.stdout.write(("\n    " if self.first else ",\n    ") + json.dumps(to_json(step)))
                    self.first = False
            else:
                print("\n".join(self.table.lines(_step_row(s, record) for s in steps)))
                self.with_steps += [s for s in steps if (args.output and s.log) or (args.traceback and s.traceback)]

    def _begin(self, reader: JournalReader, steps: list[StepRecord]) -> None:
        assert self.record is not None
        pid = getattr(reader, "pid", None)  # a MonitorClient's engine
        via = discovery.LIVE if pid is not None else discovery.FILE
        if self.args.json:
            head = dumps({"journal": str(Path(reader.location).resolve()), "read": via, "execution": self.record,
                          "runs": self.runs, "offset": self.args.offset, "limit": None, "more": 0,
                          "attempts": self.attempts})
            sys.stdout.write(head[:-2] + ',\n  "steps": [')
            return
        found = discovery.Read(Path(reader.location), None, via, pid)
        _print_head(self.record, self.runs, found)
        print(f"Steps (from {self.args.offset + 1}, all)")
        if not steps:
            print("\n".join(self.table.lines([])))


def _show_all(args: argparse.Namespace) -> int:
    show = _AllSteps(args)
    record = _read_one(args, show).value
    # The stored values of the steps shown, as the paged show lists them (a table's head read from its file)
    shown = {*show.previews, values.INPUT_KEY, values.OUTPUT_KEY}  # and a workflow's table input and output
    stored = [s for s in show.stored if s.step_key in shown]
    if args.json:
        sys.stdout.write('\n  ],\n  "stored": ' + json.dumps([s.peek(show.location).to_json() for s in stored])
                         + "\n}\n")
    else:
        _print_stored(stored, show.previews, Path(show.location))
        _print_tail(args, record, show.with_steps, show.attempts)
    return STATUS_EXIT[record.status]


def cmd_runs(args: argparse.Namespace) -> int:
    found = _read_one(args, lambda r: (_record(r, args.execution_id), r.list_runs(args.execution_id)))
    record, runs = found.value
    if args.json:
        write(dumps({"journal": str(found.path.resolve()), "execution_id": record.execution_id,
                     "status": record.status, "runs": runs}))
    else:
        print(table(RUN_HEADERS, _run_rows(runs)))
    return STATUS_EXIT[record.status]


# --- delete ------------------------------------------------------------------------------------------


def _delete_live(client: MonitorClient, execution_id: str) -> None:
    client.delete(execution_id)


def cmd_delete(args: argparse.Namespace, locate: Any) -> int:
    """Delete finished executions (each id found as ``locate`` finds it), after a confirmation on a terminal."""
    from ._control import delete_here

    chosen: list[tuple[str, Path, ExecutionRecord]] = []
    failed = 0
    for execution_id in dict.fromkeys(args.execution_ids):
        try:
            path = locate(execution_id)
            record = discovery.read(path, partial(_record, execution_id=execution_id)).value
        except ZartError as exc:
            print(f"zart: {safe(exc, lines=True)}", file=sys.stderr)
            failed += 1
            continue
        chosen.append((execution_id, path, record))
    if chosen and not args.yes:
        listed = ", ".join(f"{safe(repr(i))} ({r.status.value}, {safe(p.stem)})" for i, p, r in chosen)
        if not sys.stdin.isatty():
            print(f"zart: delete asks before it deletes {listed}, and stdin is not a terminal: pass --yes",
                  file=sys.stderr)
            return USAGE_EXIT
        print(f"Delete {listed} from the journal? [y/N] ", end="", file=sys.stderr, flush=True)
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            print("nothing deleted", file=sys.stderr)
            return 1
    for execution_id, path, record in chosen:
        try:
            discovery.through(path, partial(_delete_live, execution_id=execution_id),
                              partial(delete_here, execution_id=execution_id))
        except ZartError as exc:
            print(f"zart: {safe(exc, lines=True)}", file=sys.stderr)
            failed += 1
            continue
        print(f"deleted {safe(repr(execution_id))} ({record.status.value}) from {safe(path)}")
    return 1 if failed else 0
