"""``zart serve`` and ``zart recurring`` (the long-running process and the schedules it runs)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ._cli_format import safe
from ._errors import ScheduleNotFound, ZartError


def cmd_serve(args: argparse.Namespace) -> int:
    from ._serve.loop import Serve, folder_paths, install_signals

    sys.path.insert(0, os.getcwd())  # the notebook's modules, as `zart resume` finds them
    given = args.journals or ([args.journal] if args.journal else None)
    paths = folder_paths(given)
    if not paths:
        print("zart serve: no journal to serve in ./.zart/ (name one with --journal)", file=sys.stderr)
        return 2
    # the journals of ./.zart/ are looked up again every poll: a notebook's first run makes a new one
    discover = None if given or os.environ.get("ZART_JOURNAL") else (lambda: folder_paths(None))
    serve = Serve(paths, poll=args.poll, discover=discover)
    install_signals(serve)
    http = None
    if args.http:
        from ._serve.http import HttpServer, token_path

        http = HttpServer(serve, args.http)
        url = http.start()
        serve.on_stop(http.stop)
        print(f"zart serve: HTTP API on {url} (OpenAPI: {url}/openapi.json); bearer tokens in "
              + ", ".join(str(token_path(journal.path)) for journal in serve.journals), file=sys.stderr, flush=True)
    print("zart serve: serving " + ", ".join(str(journal.path) for journal in serve.journals)
          + " (Ctrl-C or SIGTERM stops it)", file=sys.stderr, flush=True)
    serve.run()
    return 0


def _recurring_paths(args: argparse.Namespace) -> list[Path]:
    from ._serve.loop import folder_paths

    return folder_paths([args.journal] if args.journal else None)


def cmd_recurring(args: argparse.Namespace) -> int:
    from ._serve import recurring

    paths = _recurring_paths(args)
    if args.action == "list":
        found = [(path, schedule) for path in paths if path.exists() for schedule in recurring.schedules(path)]
        if args.json:
            from ._serve.http import jsonable

            print(json.dumps([{"journal": str(path), **jsonable(schedule)} for path, schedule in found], indent=2))
            return 0
        if not found:
            print("no recurring schedules")
            return 0
        for path, schedule in found:
            state = "paused" if schedule.paused else \
                f"next {schedule.next_tick.isoformat() if schedule.next_tick else '-'}"
            last = f", last {schedule.last_execution}" if schedule.last_execution else ""
            where = f"  [{path}]" if len(paths) > 1 else ""
            print(safe(f"{schedule.workflow}  {schedule.timing}  overlap={schedule.overlap}  {state}{last}"
                       f"  data={schedule.data_preview}{where}"))
        return 0
    if not args.workflow:
        print(f"zart recurring {args.action}: name the workflow", file=sys.stderr)
        return 2
    act = {"pause": recurring.pause_schedule, "resume": recurring.resume_schedule,
           "remove": recurring.remove_schedule}[args.action]
    missing: ZartError | None = None
    for path in paths:
        if not path.exists():
            continue
        try:
            result = act(args.workflow, journal=path)
        except ScheduleNotFound as exc:
            missing = exc
            continue
        done = {"pause": "paused", "resume": "resumed", "remove": "removed"}[args.action]
        print(safe(f"schedule of {args.workflow!r} {done}" + (f": {result}" if result is not None else "")))
        return 0
    raise missing or ScheduleNotFound(args.workflow, "any journal of ./.zart/")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser,
                as_json: argparse.ArgumentParser) -> None:
    serve = sub.add_parser("serve", help="continue due work (recurring ticks, runs whose process died) of "
                                         "journals, until Ctrl-C or SIGTERM")
    serve.add_argument("--journal", dest="journals", action="append", metavar="PATH",
                       help="a journal to serve (repeat for several; default: $ZART_JOURNAL, else every journal "
                            "of ./.zart/)")
    serve.add_argument("--http", metavar="HOST:PORT",
                       help="also serve the HTTP API there (HOST defaults to 127.0.0.1; needs zart_nb[serve])")
    serve.add_argument("--poll", type=float, default=5.0, metavar="SECONDS",
                       help="look for new schedules at least this often (default 5)")
    serve.set_defaults(func=cmd_serve, journals=None)

    recurring = sub.add_parser("recurring", parents=[common, as_json],
                               help="list recurring schedules with their next tick; pause, resume or remove one")
    recurring.add_argument("action", nargs="?", default="list", choices=["list", "pause", "resume", "remove"])
    recurring.add_argument("workflow", nargs="?", help="the workflow whose schedule to pause, resume or remove")
    recurring.set_defaults(func=cmd_recurring)
