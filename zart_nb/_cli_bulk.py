"""``zart gc`` (retention and the value store's orphans) and the bulk forms of ``zart cancel`` and
``zart delete``: act on every execution a filter selects (``--status``, ``--older-than``, ``--workflow``,
``--all``) across the journals of ``./.zart/`` (or ``--journal``), after a confirmation on a terminal
(``--yes`` skips it), listing only with ``--dry-run``, one JSON document with ``--json``."""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _discovery as discovery
from ._cli_format import ERROR_EXIT, USAGE_EXIT, safe
from ._errors import ConfigurationError, ZartError
from ._status import ExecutionStatus

if TYPE_CHECKING:
    from ._control import ControlOutcome
    from ._reader import JournalReader
    from ._records import ExecutionRecord

PAGE = 5_000  # the monitor's largest page
SHOWN = 20  # executions a confirmation names (the rest are counted)


def duration(text: str) -> float:
    """argparse type of ``--older-than``: ``7d``, ``12h``, ``30m``, ``90s`` or seconds."""
    from ._retention import parse_duration

    try:
        return parse_duration(text)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# --- zart gc -----------------------------------------------------------------------------------------


def add_gc(sub: Any, common: argparse.ArgumentParser, as_json: argparse.ArgumentParser,
           count: Callable[[str], int]) -> None:
    gc = sub.add_parser("gc", parents=[common, as_json],
                        help="delete finished executions beyond --keep N / --older-than, and value store "
                             "files no journal row points to",
                        description="Delete the finished executions (completed, failed, cancelled) beyond what "
                                    "--keep/--older-than keep, with their records and the stored values only they "
                                    "point to, then the value store's orphans; with neither, only the orphans. "
                                    "Running, pending and interrupted executions are never touched. When an "
                                    "engine holds the journal, it does the work.")
    gc.add_argument("--keep", type=count, metavar="N",
                    help="keep the N newest finished executions (completed, failed, cancelled)")
    gc.add_argument("--older-than", type=duration, metavar="AGE",
                    help="delete finished executions that ended longer ago than AGE (7d, 12h, 30m, 90s)")
    gc.add_argument("--workflow", metavar="W", help="only executions of workflow W")
    gc.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    gc.add_argument("--min-age", type=float, default=3600.0, metavar="SECONDS",
                    help="keep unreferenced files younger than this: they may be being written (default: 3600)")
    gc.add_argument("--verify", action="store_true",
                    help="read every stored value whole and check it (exit 1 when one is damaged); none is removed")
    gc.add_argument("--compact", action="store_true",
                    help="rewrite the journal file with only its live data (DuckDB's VACUUM does not shrink it)")
    gc.set_defaults(func=cmd_gc)


def cmd_gc(args: argparse.Namespace) -> int:
    from ._cli_read import targets
    from ._retention import garbage_collect

    journals = targets(args)
    reports = []
    for path in journals.paths:
        if journals.folder and not path.exists():
            continue
        report = garbage_collect(path, keep=args.keep, older_than=args.older_than, workflow=args.workflow,
                                 dry_run=args.dry_run, min_age=args.min_age)
        reports.append(report)
        if args.json:
            continue
        print(safe(str(report)))
        verb = "would delete" if args.dry_run else "deleted"
        for execution_id in report.executions:
            print(f"  {verb} execution {safe(repr(execution_id))}")
        for name in report.removed_files:
            print(f"  {'would remove' if args.dry_run else 'removed'} {safe(name)}")
    if args.json:
        print(json.dumps({"dry_run": args.dry_run, "journals": [r.to_json() for r in reports]}, indent=2))
    return _verify_and_compact(args, [path for path in journals.paths if path.exists()])


def _verify_and_compact(args: argparse.Namespace, paths: list[Path]) -> int:
    """``zart gc --verify`` (exit 1 when a stored file is damaged) and ``--compact``."""
    from . import _values as values
    from ._maintenance import compact, scrub

    code = 0
    for path in paths:
        if args.verify:
            scrubbed = scrub(path)
            print(safe(str(scrubbed)))
            for name, why in scrubbed.damaged:
                print(f"  damaged {safe(name)}: {safe(why)}")
            code = code or (ERROR_EXIT if scrubbed.damaged else 0)
        if args.compact:
            if args.dry_run:
                print(f"{safe(path)}: would compact it ({values.size_text(path.stat().st_size)} now)")
            else:
                print(safe(str(compact(path))))
    return code


# --- bulk cancel and delete ----------------------------------------------------------------------------


def add_filters(parser: argparse.ArgumentParser, *, acts_on: str) -> None:
    parser.add_argument("--status", choices=[s.value for s in ExecutionStatus],
                        help=f"only executions of this status (default: every {acts_on} one)")
    parser.add_argument("--older-than", type=duration, metavar="AGE",
                        help="only executions that ended (unfinished ones: were created) longer ago than AGE "
                             "(7d, 12h, 30m, 90s)")
    parser.add_argument("--workflow", metavar="W", help="only executions of workflow W")
    parser.add_argument("--all", action="store_true",
                        help="every execution the filters select (needed when no filter is given)")
    parser.add_argument("--yes", action="store_true", help="do not ask (needed when stdin is not a terminal)")
    parser.add_argument("--dry-run", action="store_true", help="only list what would be done")
    parser.add_argument("--json", action="store_true", help="print one JSON document (for scripts)")


def filtering(args: argparse.Namespace) -> bool:
    """Whether the command acts on a filter rather than on ids (``--status``/``--older-than``/...)."""
    return bool(args.status or args.older_than is not None or args.workflow or args.all)


@dataclass(frozen=True, slots=True)
class Chosen:
    path: Path
    record: ExecutionRecord


# cancel acts on unfinished executions (interrupted ones are marked cancelled); delete on the others
_ACTS_ON = {"cancel": (ExecutionStatus.RUNNING, ExecutionStatus.PENDING, ExecutionStatus.INTERRUPTED),
            "delete": (ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED,
                       ExecutionStatus.INTERRUPTED)}


def select(args: argparse.Namespace, action: str) -> tuple[list[Chosen], int]:
    """The executions the filters select in every target journal, and how many journals failed to read."""
    from ._cli_read import targets

    statuses = _ACTS_ON[action]
    if args.status and ExecutionStatus(args.status) not in statuses:
        raise ConfigurationError(f"zart {action} acts on {', '.join(s.value for s in statuses)} executions, "
                                 f"not {args.status} ones")
    cutoff = None if args.older_than is None else time.time() - args.older_than

    def matching(reader: JournalReader) -> list[ExecutionRecord]:
        found: list[ExecutionRecord] = []
        for status in ([ExecutionStatus(args.status)] if args.status else list(statuses)):
            offset = 0
            while True:
                page = reader.list_executions(status, limit=PAGE, offset=offset)
                found += [r for r in page if (args.workflow is None or r.workflow == args.workflow)
                          and (cutoff is None or _older(r, cutoff))]
                if len(page) < PAGE:
                    break
                offset += PAGE
        return found

    journals = targets(args)
    chosen: list[Chosen] = []
    failed = 0
    for path in journals.paths:
        if journals.folder and not path.exists():
            continue
        try:
            records = discovery.read(path, matching).value
        except ZartError as exc:
            print(f"zart: {safe(exc, lines=True)}", file=sys.stderr)
            failed += 1
            continue
        chosen += [Chosen(path, record) for record in records]
    return chosen, failed


def _older(record: ExecutionRecord, cutoff: float) -> bool:
    """Whether the execution ended (an unfinished one: was created) before ``cutoff``."""
    when = record.finished_at or record.created_at
    return when is not None and when.timestamp() < cutoff


def confirm(chosen: list[Chosen], action: str) -> bool | None:
    """Ask on the terminal; ``None`` when stdin is not one (the caller says to pass ``--yes``)."""
    if not sys.stdin.isatty():
        return None
    listed = ", ".join(f"{safe(repr(c.record.execution_id))} ({c.record.status.value})" for c in chosen[:SHOWN])
    more = f" and {len(chosen) - SHOWN} more" if len(chosen) > SHOWN else ""
    print(f"{action.capitalize()} {len(chosen)} execution(s): {listed}{more}? [y/N] ", end="", file=sys.stderr,
          flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def run_bulk(args: argparse.Namespace, action: str) -> int:
    """``zart cancel|delete`` on a filter: select, list or confirm, act per journal, report."""
    from . import _control as control

    chosen, failed = select(args, action)
    rows: list[dict[str, Any]] = []
    if not chosen:
        if args.json:
            print(json.dumps({"action": action, "dry_run": args.dry_run, "executions": []}, indent=2))
        else:
            print(f"no execution to {action}")
        return 1 if failed else 0
    if args.dry_run:
        for c in chosen:
            rows.append(_row(c, "would " + action))
            if not args.json:
                print(f"would {action} {safe(repr(c.record.execution_id))} ({c.record.status.value}, "
                      f"{safe(c.record.workflow)}) in {safe(c.path)}")
    else:
        if not args.yes:
            answer = confirm(chosen, action)
            if answer is None:
                print(f"zart: {action} asks before it acts on {len(chosen)} execution(s), and stdin is not a "
                      "terminal: pass --yes (or --dry-run to list them)", file=sys.stderr)
                return USAGE_EXIT
            if not answer:
                print(f"nothing done ({action})", file=sys.stderr)
                return 1
        by_path: dict[Path, list[Chosen]] = {}
        for c in chosen:
            by_path.setdefault(c.path, []).append(c)
        for path, group in by_path.items():
            ids = [c.record.execution_id for c in group]
            try:
                outcomes: list[ControlOutcome] = (control.cancel(ids, journal=path) if action == "cancel"
                                                  else control.delete(ids, journal=path))
            except ZartError as exc:
                print(f"zart: {safe(exc, lines=True)}", file=sys.stderr)
                failed += len(group)
                continue
            for c, outcome in zip(group, outcomes, strict=True):
                rows.append(_row(c, outcome.done, outcome))
                failed += 0 if outcome.ok else 1
                if not args.json:
                    print(safe(f"{outcome} ({path})"), file=sys.stdout if outcome.ok else sys.stderr)
    if args.json:
        print(json.dumps({"action": action, "dry_run": args.dry_run, "executions": rows}, indent=2))
    return 1 if failed else 0


def _row(chosen: Chosen, done: str, outcome: ControlOutcome | None = None) -> dict[str, Any]:
    record = chosen.record
    row: dict[str, Any] = {"execution_id": record.execution_id, "journal": str(chosen.path),
                           "workflow": record.workflow, "was": record.status.value, "done": done}
    if outcome is not None:
        row["status"] = None if outcome.status is None else outcome.status.value
        row["error"] = None if outcome.error is None else str(outcome.error)
    return row
