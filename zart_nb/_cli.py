"""The ``zart`` command: demo, ls, show, resume, cancel."""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from . import _serialization as ser
from . import _values as values
from ._errors import ConfigurationError, ExecutionNotFound, JournalLocked, ZartError
from ._executors.capture import prefix_lines
from ._records import ExecutionRecord, ExecutionStatus, RunRecord, StepRecord, StepStatus
from ._runtime import DEFAULT_JOURNAL, runtime

if TYPE_CHECKING:
    from ._reader import JournalReader


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


def _fmt_time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 120:
        return f"{seconds:.1f}s"
    return f"{seconds / 60:.1f}m"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    rows = [[safe(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(str(c))) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def run_end(run: RunRecord) -> str:
    """How a run ended, in a few words ("" while it runs)."""
    if run.ended_by is None:
        return ""
    if run.ended_by.value in ("cancelled", "process died") and run.end_detail:
        return run.end_detail
    return run.ended_by.value


def this_run(step: StepRecord, current_run: int) -> str:
    """What the execution's last run did with a step: executed it (and why), reused it, or never started it."""
    if step.run_number != current_run:
        return f"reused from run {step.run_number}"
    if step.status is StepStatus.INTERRUPTED:
        return "interrupted (its process died)"
    if step.status is StepStatus.CANCELLED and step.started_at is None:
        return "cancelled before it started"
    return f"executed ({step.reason})"


def cmd_demo(args: argparse.Namespace) -> int:
    from . import _demo

    _demo.main(journal=args.journal, execution_id=args.execution_id, workers=args.workers)
    return 0


def _reader(args: argparse.Namespace) -> JournalReader:
    """The live engine's monitor when another process holds the journal, else the file for a moment."""
    from . import journal

    return journal(args.journal)


def _journal_paths(args: argparse.Namespace) -> list[Path] | None:
    """Every journal in ``./.zart/`` (a notebook's is ``.zart/<notebook stem>.duckdb``), or None when
    ``--journal`` or ``$ZART_JOURNAL`` names one."""
    if args.journal or os.environ.get("ZART_JOURNAL"):
        return None
    return sorted(DEFAULT_JOURNAL.parent.glob("*.duckdb")) or [DEFAULT_JOURNAL]


def _locate(args: argparse.Namespace) -> None:
    """Without ``--journal``, point ``args.journal`` at whichever journal of ``./.zart/`` holds the
    execution (the first one that does; a journal another process holds is waited for)."""
    from ._journal.reader import FileJournalReader

    paths = _journal_paths(args)
    if paths is None or len(paths) == 1:
        return
    for path in paths:
        if FileJournalReader(runtime.journal(path)).execution_record(args.execution_id) is not None:
            args.journal = str(path)
            return
    raise ExecutionNotFound(args.execution_id, f"any journal of {DEFAULT_JOURNAL.parent}/")


def cmd_ls(args: argparse.Namespace) -> int:
    from ._journal.reader import FileJournalReader

    paths = _journal_paths(args)
    if paths is None:
        reader = _reader(args)
        records = reader.list_executions(status=args.status, limit=args.limit)
        if not records:
            print(f"no executions in {safe(reader.location)}")
            return 0
        rows = [(r.execution_id, r.workflow, r.status.value, f"{r.steps_completed}/{r.steps_total}",
                 str(r.run_number), _fmt_time(r.started_at), _fmt_duration(r.duration)) for r in records]
        print(_table(("ID", "WORKFLOW", "STATUS", "DONE/TOTAL", "RUNS", "STARTED", "DURATION"), rows))
        return 0
    found: list[tuple[str, ExecutionRecord]] = []
    for path in paths:
        try:
            records = FileJournalReader(runtime.journal(path)).list_executions(status=args.status,
                                                                               limit=args.limit)
        except JournalLocked as exc:
            print(f"zart: skipped {safe(path)}: {safe(exc)}", file=sys.stderr)
            continue
        found.extend((path.stem, record) for record in records)
    if not found:
        print(f"no executions in {safe(DEFAULT_JOURNAL.parent)}/")
        return 0
    found.sort(key=lambda item: item[1].started_at or datetime.min, reverse=True)
    table = [(r.execution_id, journal, r.workflow, r.status.value, f"{r.steps_completed}/{r.steps_total}",
             str(r.run_number), _fmt_time(r.started_at), _fmt_duration(r.duration))
             for journal, r in found[:args.limit]]
    print(_table(("ID", "JOURNAL", "WORKFLOW", "STATUS", "DONE/TOTAL", "RUNS", "STARTED", "DURATION"), table))
    return 0


FOLLOW_POLL = 0.25


def follow_output(reader: JournalReader, execution_id: str) -> ExecutionRecord | None:
    """Print what the running steps of an execution print, as they print it, until it stops running in
    the engine ``reader`` reads through; returns its record then (None if it cannot be read)."""
    shown: dict[tuple[str, int], int] = {}
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
                start = shown.get((step.key, attempt), 0)
                end = text.rfind("\n") + 1  # whole lines only; the rest comes with the next poll
                if end > start:
                    print(prefix_lines(step.key, attempt, safe(text[start:end], lines=True)), end="", flush=True)
                    shown[(step.key, attempt)] = end
        except ZartError:  # the engine released the journal: the run is over
            return None
        time.sleep(FOLLOW_POLL)


def cmd_show(args: argparse.Namespace) -> int:
    if getattr(args, "follow", False):
        with _reader(args) as reader:
            if not args.output:
                raise ConfigurationError("--follow follows the output of running steps: use it with --output")
            record = follow_output(reader, args.execution_id)
        if record is None:
            record = _reader(args).execution_record(args.execution_id)
        if record is None:
            raise ExecutionNotFound(args.execution_id, str(args.journal or DEFAULT_JOURNAL))
        end = f" ({safe(record.end_detail)})" if record.end_detail else ""
        print(f"Execution {safe(record.execution_id)}  [{record.status.value}]{end}")
        return 0
    with _reader(args) as reader:
        record = reader.execution_record(args.execution_id)
        if record is None:
            raise ExecutionNotFound(args.execution_id, reader.location)
        steps = reader.list_steps(args.execution_id)
        runs = reader.list_runs(args.execution_id)
        attempts = reader.list_attempts(args.execution_id)
        progress = reader.progress(args.execution_id)
    print(f"Execution {safe(record.execution_id)}  [{record.status.value}]")
    print(f"  workflow: {safe(record.workflow)}")
    print(f"  input:    {safe(record.input_preview)}")
    if record.output_preview is not None:
        print(f"  output:   {safe(record.output_preview)}")
    if record.error and record.error != record.end_detail:
        print(f"  error:    {safe(record.error)}")
    if record.ended_by is not None:
        print(f"  ended:    {record.ended_by.value}" + (f": {safe(record.end_detail)}" if record.end_detail else ""))
    running = f", {record.steps_running} running" if record.steps_running else ""
    print(f"  steps:    {record.steps_completed}/{record.steps_total} completed, "
          f"{record.steps_failed} failed{running}")
    print()
    print("Runs")
    print(_table(("RUN", "STATUS", "STARTED", "DURATION", "EXECUTED", "REUSED", "PID", "ENDED"),
                 [(str(r.run_number), r.status.value, _fmt_time(r.started_at),
                   _fmt_duration(((r.finished_at or datetime.now()) - r.started_at).total_seconds()
                                 if r.started_at else None),
                   str(r.executed), str(r.reused), str(r.pid), run_end(r)) for r in runs]))
    print()
    print("Steps")
    rows = []
    for s in steps:
        ran = this_run(s, record.run_number)
        result = s.error if s.error else (s.output_preview or "")
        rows.append((s.step_key, s.status.value, str(s.attempts), _fmt_duration(s.duration), ran,
                     s.worker or "", s.args_preview, result))
    print(_table(("KEY", "STATUS", "ATTEMPTS", "DURATION", "THIS RUN", "WORKER", "ARGS", "OUTPUT / ERROR"),
                 rows))
    if progress is not None and progress.running_steps:
        print()
        print(f"Running now ({progress.running} running, {progress.scheduled} waiting for a worker, "
              f"{progress.retrying} waiting to retry)")
        print(_table(("KEY", "STATUS", "ATTEMPT", "WORKER", "ELAPSED"),
                     [(s.key, "running", str(s.attempt), s.worker, _fmt_duration(s.elapsed))
                      for s in progress.running_steps]))
    if attempts:
        print()
        print("Failed attempts")
        print(_table(("KEY", "RUN", "ATTEMPT", "WORKER", "ERROR"),
                     [(a.step_key, str(a.run_number), str(a.attempt), a.worker or "", a.error or "")
                      for a in attempts]))
    if args.output:
        for a in attempts:
            if a.log:
                print(f"\nOutput of {safe(a.step_key)} (run {a.run_number}, attempt {a.attempt}):\n"
                      f"{safe(a.log.rstrip(), lines=True)}")
        for s in steps:
            if s.log:
                print(f"\nOutput of {safe(s.step_key)} (run {s.run_number}, attempt {s.attempts}):\n"
                      f"{safe(s.log.rstrip(), lines=True)}")
    if args.traceback:
        from ._tracebacks import short  # zart_nb's frames hidden, source lines shown

        for s in steps:
            if s.traceback:
                print(f"\nTraceback of {safe(s.step_key)}:\n{safe(short(s.traceback), lines=True)}")
        if record.traceback:
            print(f"\nTraceback of the workflow:\n{safe(short(record.traceback), lines=True)}")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from ._api import check_options
    from ._definitions import as_workflow
    from ._engine import execute
    from ._handles import Execution

    check_options("rerun", args.workers, args.executor)  # as zart.run does: --workers 0 is refused

    sys.path.insert(0, os.getcwd())
    journal = runtime.journal(args.journal)
    with journal.hold():
        stored = journal.pickled_execution(args.execution_id)
        if stored is None:
            raise ExecutionNotFound(args.execution_id, journal.path)
        kind, name, blob = journal.pickled_definition(stored.def_id)
    if stored.status == ExecutionStatus.COMPLETED.value:
        output = values.load(stored.output, journal.path) if stored.output is not None else None
        print(f"Execution {safe(repr(args.execution_id))} is already completed (run {stored.run_number}); "
              "nothing to resume.")
        print(f"  output: {safe(ser.preview(output))}")
        return 0
    workflow = as_workflow(ser.loads(blob), stored.workflow)
    data = values.load(stored.input, journal.path)
    execution = Execution(args.execution_id, journal)
    print(f"Resuming execution {safe(repr(args.execution_id))} ({safe(stored.workflow)}, was {stored.status})...")
    execute(execution, workflow, data, workers=args.workers, executor=args.executor)
    output = execution.result()
    print(f"Execution completed (run {execution.run_number}).")
    print(f"  output: {safe(ser.preview(output))}")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    from ._control import CANCEL_WAIT, cancel_and_wait

    was, now = cancel_and_wait(args.execution_id, journal=args.journal)
    name = safe(repr(args.execution_id))
    if was.finished:
        print(f"execution {name} is already {was.value}")
    elif now in (None, ExecutionStatus.RUNNING, ExecutionStatus.PENDING):
        print(f"execution {name} is cancelling (was {was.value}); it had not stopped after "
              f"{CANCEL_WAIT:.0f}s: `zart show {name}` tells when it has")
    else:
        print(f"execution {name} {now.value} (was {was.value})")
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    from ._data import gc

    paths = _journal_paths(args)
    for path in [Path(args.journal)] if paths is None else paths:
        if paths is not None and not path.exists():
            continue
        report = gc(path if paths is not None else args.journal, dry_run=args.dry_run, min_age=args.min_age)
        print(safe(str(report)))
        for name in report.removed:
            print(f"  {'would remove' if args.dry_run else 'removed'} {safe(name)}")
    return 0


def cmd_tui(args: argparse.Namespace) -> int:
    try:
        from zart_tui.app import main as tui_main
    except ImportError as exc:
        print(f"zart tui: the terminal monitor needs textual ({exc}); install it with "
              "`pip install 'zart_nb[tui]'`", file=sys.stderr)
        return 2
    status: int = tui_main(["--journal", args.journal] if args.journal else [])
    return status


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--journal", default=argparse.SUPPRESS,
                        help="journal file (default: $ZART_JOURNAL, else every journal in ./.zart/)")
    parser = argparse.ArgumentParser(prog="zart", description="Durable workflows for notebooks.",
                                     parents=[common])
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", parents=[common], help="run the seed's parallel health check")
    demo.add_argument("--execution-id", help="default: parallel-demo-<unix time>")
    demo.add_argument("--workers", type=int, help="worker processes (default: $ZART_WORKERS or CPUs)")
    demo.set_defaults(func=cmd_demo)

    ls = sub.add_parser("ls", parents=[common], help="list executions")
    ls.add_argument("--status", choices=[s.value for s in ExecutionStatus])
    ls.add_argument("--limit", type=int, default=50)
    ls.set_defaults(func=cmd_ls)

    show = sub.add_parser("show", parents=[common], help="show an execution, its runs and steps")
    show.add_argument("execution_id")
    show.add_argument("--traceback", action="store_true", help="print error tracebacks")
    show.add_argument("--output", action="store_true", help="print what each attempt printed")
    show.add_argument("--follow", action="store_true",
                      help="with --output: print what running steps print, live, until the execution stops")
    show.set_defaults(func=cmd_show)

    resume = sub.add_parser("resume", parents=[common],
                            help="finish an execution from its journaled definition")
    resume.add_argument("execution_id")
    resume.add_argument("--workers", type=int)
    resume.add_argument("--executor", help="run the steps on a Dask cluster: its scheduler address, e.g. "
                        "tcp://host:8786 (default: $ZART_EXECUTOR, else the local pool)")
    resume.set_defaults(func=cmd_resume)

    cancel = sub.add_parser("cancel", parents=[common], help="mark an unfinished execution cancelled")
    cancel.add_argument("execution_id")
    cancel.set_defaults(func=cmd_cancel)

    gc = sub.add_parser("gc", parents=[common],
                        help="remove value store files no journal row points to (orphans, deleted executions)")
    gc.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    gc.add_argument("--min-age", type=float, default=3600.0, metavar="SECONDS",
                    help="keep unreferenced files younger than this: they may be being written (default: 3600)")
    gc.set_defaults(func=cmd_gc)

    tui = sub.add_parser("tui", parents=[common], help="terminal monitor (zart-tui)")
    tui.set_defaults(func=cmd_tui)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.journal = getattr(args, "journal", None)
    try:
        if getattr(args, "execution_id", None) and args.command in ("show", "resume", "cancel"):
            _locate(args)
        command: Callable[[argparse.Namespace], int] = args.func
        return command(args)
    except ZartError as exc:
        print(f"zart: {safe(exc, lines=True)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("zart: interrupted; run `zart resume ID` to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
