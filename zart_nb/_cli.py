"""The ``zart`` command: demo, ls, show, runs, stats, delete, resume, cancel, tui (the reading ones are in
``_cli_read``; how each journal of a folder is found and read, in ``_discovery``)."""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from . import _discovery as discovery
from . import _serialization as ser
from . import _values as values
from ._cli_events import add_commands as add_event_commands
from ._cli_format import BROKEN_PIPE_EXIT, ERROR_EXIT, EXIT_CODES, safe
from ._cli_read import SHOW_LIMIT, cmd_delete, cmd_ls, cmd_runs, cmd_show, cmd_stats
from ._errors import ExecutionNotFound, JournalLocked, ZartError
from ._records import ExecutionStatus
from ._runtime import runtime

if TYPE_CHECKING:
    from ._monitor.client import MonitorClient


def cmd_demo(args: argparse.Namespace) -> int:
    from . import _demo

    _demo.main(journal=args.journal, execution_id=args.execution_id, workers=args.workers)
    return 0


def _where(execution_id: str, journal: str | None) -> Path:
    """The journal that holds ``execution_id``: ``journal`` (``--journal``) or ``$ZART_JOURNAL`` when given,
    else the one journal of ``./.zart/`` that holds it, each read through its live engine when one
    holds it (a journal held by a process that serves no monitor is named, not waited for)."""
    if journal:
        return Path(journal)
    env = os.environ.get("ZART_JOURNAL")
    if env:
        return Path(env)
    folder, paths = discovery.folder_journals()
    if not paths:
        raise ExecutionNotFound(execution_id, f"any journal of {folder}/")
    return discovery.locate(execution_id, paths, f"{folder}/")


def _locate(args: argparse.Namespace) -> None:
    """Point ``args.journal`` at the journal that holds ``args.execution_id`` (see :func:`_where`)."""
    args.journal = str(_where(args.execution_id, args.journal))


def cmd_resume(args: argparse.Namespace) -> int:
    from ._api import check_options
    from ._definitions import as_workflow
    from ._engine import execute
    from ._handles import Execution
    from ._monitor.client import MonitorClient

    check_options("rerun", args.workers, args.executor)  # as zart.run does: --workers 0 is refused

    sys.path.insert(0, os.getcwd())
    journal = runtime.journal(args.journal)
    client = MonitorClient.connect(journal.path)
    if client is not None:  # another process's engine holds the journal: it runs the resume
        with client:
            return _resume_in_engine(client, args)
    try:
        with journal.hold():
            stored = journal.pickled_execution(args.execution_id)
            if stored is None:
                raise ExecutionNotFound(args.execution_id, journal.path)
            kind, name, blob = journal.pickled_definition(stored.def_id)
    except JournalLocked:
        client = MonitorClient.connect(journal.path)  # its engine may have begun serving meanwhile
        if client is None:
            raise
        with client:
            return _resume_in_engine(client, args)
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


def _resume_in_engine(client: MonitorClient, args: argparse.Namespace) -> int:
    """``zart resume`` when another process's engine holds the journal: that engine runs the next run
    (as the TUI's resume key asks it to), and this command follows it to its end."""
    from ._control import follow

    name = safe(repr(args.execution_id))
    if args.workers is not None or args.executor is not None:
        print(f"zart: --workers/--executor are not used: process {client.pid} runs it with its own",
              file=sys.stderr)
    run = client.resume(args.execution_id)
    print(f"Resuming execution {name} in process {client.pid}, which holds the journal "
          f"(run {run if run is not None else '?'}); following it (Ctrl-C stops following, not the run)...",
          flush=True)
    try:
        record = follow(client, args.execution_id, client.path, run=run)
    except KeyboardInterrupt:
        print(f"zart: stopped following; execution {name} goes on in process {client.pid} "
              f"(`zart cancel {safe(args.execution_id)}` stops it)", file=sys.stderr)
        return 130
    if record is None:
        print(f"zart: the status of execution {name} cannot be read any more", file=sys.stderr)
        return 1
    if record.status is ExecutionStatus.COMPLETED:
        print(f"Execution completed (run {record.run_number}).")
        print(f"  output: {safe(record.output_preview)}")
        return 0
    print(f"zart: execution {name} {record.status.value} (run {record.run_number})"
          + (f": {safe(record.error, lines=True)}" if record.error else ""), file=sys.stderr)
    return 1


def cmd_cancel(args: argparse.Namespace) -> int:
    from ._control import CANCEL_WAIT, cancel_and_wait, origin_here

    was, now = cancel_and_wait(args.execution_id, journal=args.journal, origin=origin_here("zart cancel"))
    name = safe(repr(args.execution_id))
    if was.finished:
        print(f"execution {name} is already {was.value}")
    elif now in (None, ExecutionStatus.RUNNING, ExecutionStatus.PENDING):
        print(f"execution {name} is cancelling (was {was.value}); it had not stopped after "
              f"{CANCEL_WAIT:.0f}s: `zart show {name}` tells when it has")
    else:
        print(f"execution {name} {now.value} (was {was.value})")
    return 0


def _delete(args: argparse.Namespace) -> int:
    return cmd_delete(args, lambda execution_id: _where(execution_id, args.journal))


def cmd_gc(args: argparse.Namespace) -> int:
    from ._cli_read import targets
    from ._data import gc

    journals = targets(args)
    for path in journals.paths:
        if journals.folder and not path.exists():
            continue
        report = gc(path, dry_run=args.dry_run, min_age=args.min_age)
        print(safe(str(report)))
        for name in report.removed:
            print(f"  {'would remove' if args.dry_run else 'removed'} {safe(name)}")
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    from ._cli_read import targets
    from ._data import sql

    paths = [path for path in targets(args).paths if path.exists()]
    if len(paths) != 1:
        found = ", ".join(str(path) for path in paths) or "none"
        print(f"zart sql: it reads one journal; choose one with --journal (found: {safe(found)})", file=sys.stderr)
        return 2
    frame = sql(args.query, paths[0])
    if args.json:
        import json

        rows = json.loads(frame.to_json(orient="records", date_format="iso", date_unit="us"))
        print(json.dumps({"journal": str(paths[0]), "columns": [str(c) for c in frame.columns], "rows": rows},
                         indent=2))
    else:
        print(safe(frame.to_string(index=False, max_rows=args.max_rows), lines=True))
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
                                     parents=[common], epilog=EXIT_CODES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", parents=[common], help="run the seed's parallel health check")
    demo.add_argument("--execution-id", help="default: parallel-demo-<unix time>")
    demo.add_argument("--workers", type=int, help="worker processes (default: $ZART_WORKERS or CPUs)")
    demo.set_defaults(func=cmd_demo)

    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print one JSON document (for scripts)")

    ls = sub.add_parser("ls", parents=[common, as_json], help="list executions of every journal of ./.zart/")
    ls.add_argument("folder", nargs="?", metavar="DIR",
                    help="another folder: a project folder with .zart/, or a folder of journals")
    ls.add_argument("--status", choices=[s.value for s in ExecutionStatus])
    ls.add_argument("--limit", type=_count, default=50, help="executions listed, newest first (default 50)")
    ls.set_defaults(func=cmd_ls)

    show = sub.add_parser("show", parents=[common, as_json], help="show an execution, its runs and steps",
                          epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    show.add_argument("execution_id")
    show.add_argument("--limit", type=_count, default=SHOW_LIMIT,
                      help=f"steps shown (default {SHOW_LIMIT}; a note says how many more there are)")
    show.add_argument("--offset", type=_count, default=0, help="steps skipped first (default 0)")
    show.add_argument("--all", action="store_true", help="every step (from --offset)")
    show.add_argument("--traceback", action="store_true", help="print error tracebacks")
    show.add_argument("--output", action="store_true", help="print what each attempt printed")
    show.add_argument("--follow", action="store_true",
                      help="with --output: print what running steps print, live, until the execution stops")
    show.set_defaults(func=cmd_show)

    runs = sub.add_parser("runs", parents=[common, as_json], epilog=EXIT_CODES,
                          formatter_class=argparse.RawDescriptionHelpFormatter,
                          help="an execution's runs: when, how each ended, steps executed and reused")
    runs.add_argument("execution_id")
    runs.set_defaults(func=cmd_runs)

    stats = sub.add_parser("stats", parents=[common, as_json], help="executions per status, per journal")
    stats.add_argument("folder", nargs="?", metavar="DIR", help="another folder (as for ls)")
    stats.set_defaults(func=cmd_stats)

    delete = sub.add_parser("delete", parents=[common], help="remove finished executions from their journal")
    delete.add_argument("execution_ids", nargs="+", metavar="ID")
    delete.add_argument("--yes", action="store_true",
                        help="do not ask (needed when stdin is not a terminal)")
    delete.set_defaults(func=_delete)

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

    query = sub.add_parser("sql", parents=[common, as_json],
                           help='SQL over the tables steps returned: each a view "<execution id>/<step key>"')
    query.add_argument("query", help='e.g. \'select cat, avg(x) from "exec-1/load#0" group by cat\'')
    query.add_argument("--max-rows", type=int, default=100, metavar="N", help="rows printed (default 100)")
    query.set_defaults(func=cmd_sql)

    tui = sub.add_parser("tui", parents=[common], help="terminal monitor (zart-tui)")
    tui.set_defaults(func=cmd_tui)
    add_event_commands(sub, common, as_json)
    return parser


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``zart`` command; returns its exit code (see ``EXIT_CODES``). A reader of the output that
    goes away (``zart show ID | head``) ends it quietly, as the Python docs advise for SIGPIPE."""
    try:
        code = _main(argv)
        sys.stdout.flush()
    except BrokenPipeError:
        # Python flushes stdout again at exit: point it at devnull so that flush cannot fail too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return BROKEN_PIPE_EXIT
    return code


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.journal = getattr(args, "journal", None)
    try:
        if getattr(args, "execution_id", None) and args.command in ("show", "runs", "resume", "cancel", "event",
                                                                     "wake"):
            _locate(args)
        command: Callable[[argparse.Namespace], int] = args.func
        return command(args)
    except ZartError as exc:
        print(f"zart: {safe(exc, lines=True)}", file=sys.stderr)
        return ERROR_EXIT
    except KeyboardInterrupt:
        print("zart: interrupted; run `zart resume ID` to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
