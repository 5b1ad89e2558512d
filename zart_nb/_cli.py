"""The ``zart`` command: demo, ls, show, runs, stats, delete, cancel, tui (the reading ones are in
``_cli_read``, the ones that start a run, resume, recover, restart, rerun, retry, fork, in ``_cli_control``;
how each journal of a folder is found and read, in ``_discovery``)."""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from . import _cli_bulk as bulk
from . import _discovery as discovery
from ._cli_control import LOCATED, add_commands
from ._cli_events import add_commands as add_event_commands
from ._cli_format import BROKEN_PIPE_EXIT, ERROR_EXIT, EXIT_CODES, USAGE_EXIT, safe
from ._cli_read import SHOW_LIMIT, cmd_delete, cmd_ls, cmd_runs, cmd_show, cmd_stats
from ._errors import ExecutionNotFound, ZartError
from ._records import ExecutionStatus

if TYPE_CHECKING:
    pass


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


def _by_filter(args: argparse.Namespace, action: str, ids: Sequence[str]) -> int | None:
    """Run ``zart cancel|delete`` on a filter when one is given; ``None``: it acts on ``ids``."""
    if bulk.filtering(args):
        if ids:
            print(f"zart {action}: give execution ids or a filter (--status, --older-than, --workflow, --all), "
                  "not both", file=sys.stderr)
            return USAGE_EXIT
        return bulk.run_bulk(args, action)
    if not ids:
        print(f"zart {action}: give an execution id, or a filter (--status, --older-than, --workflow) or --all",
              file=sys.stderr)
        return USAGE_EXIT
    if args.dry_run or args.json:
        print(f"zart {action}: --dry-run and --json go with a filter", file=sys.stderr)
        return USAGE_EXIT
    return None


def cmd_cancel(args: argparse.Namespace) -> int:
    from ._control import CANCEL_WAIT, cancel_and_wait, origin_here

    done = _by_filter(args, "cancel", [args.execution_id] if args.execution_id else [])
    if done is not None:
        return done

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
    done = _by_filter(args, "delete", args.execution_ids)
    if done is not None:
        return done
    return cmd_delete(args, lambda execution_id: _where(execution_id, args.journal))


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

    stats = sub.add_parser("stats", parents=[common, as_json],
                           help="executions per status and value store sizes, per journal")
    stats.add_argument("folder", nargs="?", metavar="DIR", help="another folder (as for ls)")
    stats.set_defaults(func=cmd_stats)

    delete = sub.add_parser("delete", parents=[common],
                            help="remove finished executions (given, or every one a filter selects)")
    delete.add_argument("execution_ids", nargs="*", metavar="ID")
    bulk.add_filters(delete, acts_on="finished or interrupted")
    delete.set_defaults(func=_delete)

    add_commands(sub, common)

    cancel = sub.add_parser("cancel", parents=[common],
                            help="stop an unfinished execution, or every one a filter selects")
    cancel.add_argument("execution_id", nargs="?")
    bulk.add_filters(cancel, acts_on="unfinished")
    cancel.set_defaults(func=cmd_cancel)

    bulk.add_gc(sub, common, as_json, _count)

    query = sub.add_parser("sql", parents=[common, as_json],
                           help='SQL over the tables steps returned: each a view "<execution id>/<step key>"')
    query.add_argument("query", help='e.g. \'select cat, avg(x) from "exec-1/load#0" group by cat\'')
    query.add_argument("--max-rows", type=int, default=100, metavar="N", help="rows printed (default 100)")
    query.set_defaults(func=cmd_sql)

    tui = sub.add_parser("tui", parents=[common], help="terminal monitor (zart-tui)")
    tui.set_defaults(func=cmd_tui)

    from ._cli_serve import add_parsers as add_serve_parsers

    add_serve_parsers(sub, common, as_json)
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
        if getattr(args, "execution_id", None) and args.command in ("show", "runs", "cancel", "event", "wake",
                                                                     *LOCATED):
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
