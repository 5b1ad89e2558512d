"""The ``zart`` commands that start a run of a journaled execution: resume, recover, restart, rerun, retry,
fork. Each runs in this process, or, when another process's engine holds the journal, asks that engine
(through its monitor endpoint) and follows the run there to its end."""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from . import _serialization as ser
from . import _stores as stores
from ._cli_format import safe
from ._errors import ConfigurationError, ExecutionNotFound, JournalLocked
from ._handles import journal_of
from ._records import ExecutionStatus
from ._runtime import runtime

if TYPE_CHECKING:
    from ._actions import RemoteExecution
    from ._handles import Execution
    from ._monitor.client import MonitorClient


def _report(handle: Execution | RemoteExecution, what: str) -> int:
    """Wait for the run ``handle`` follows and say how it ended (exit 0 when completed). A run in another
    process is followed through its engine, and its output shown as journaled (a preview)."""
    from ._actions import RemoteExecution

    name = safe(repr(handle.execution_id))
    for key in getattr(handle, "stale", ()):
        print(f"  reused after the steps run again, may be stale: {safe(key)}")
    if not isinstance(handle, RemoteExecution):
        print(f"{what} execution {name}...", flush=True)
        try:
            output = handle.result()
        except Exception as exc:  # noqa: BLE001 - the run's own error, reported as the command's end
            print(f"zart: execution {name} did not complete: {safe(exc, lines=True)}", file=sys.stderr)
            return 1
        print(f"Execution completed (run {handle.run_number}).")
        print(f"  output: {safe(ser.preview(output))}")
        _print_trigger(handle)
        return 0
    run = handle.run_number
    print(f"{what} execution {name} in process {handle.pid}, which holds the journal "
          f"(run {run if run is not None else '?'}); following it (Ctrl-C stops following, not the run)...",
          flush=True)
    try:
        record = handle.wait()
    except KeyboardInterrupt:
        print(f"zart: stopped following; execution {name} goes on in process {handle.pid} "
              f"(`zart cancel {safe(handle.execution_id)}` stops it)", file=sys.stderr)
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


def _print_trigger(execution: Execution) -> None:
    """What started the run and its detail, as ``zart runs`` shows it (a rerun's maybe-stale steps)."""
    from ._cli_read import run_trigger
    from ._journal.reader import FileJournalReader

    reader = FileJournalReader(journal_of(execution))
    try:
        runs = [r for r in reader.list_runs(execution.execution_id) if r.run_number == execution.run_number]
    finally:
        reader.close()
    if runs and runs[0].trigger is not None:
        print(f"  run {runs[0].run_number}: {safe(run_trigger(runs[0]))}")


def cmd_resume(args: argparse.Namespace) -> int:
    from ._actions import prepare_resume, remote
    from ._engine import execute
    from ._handles import Execution
    from ._monitor.client import MonitorClient
    from ._monitor.protocol import MessageType
    from ._options import RunOptions

    options = RunOptions.make(workers=args.workers, executor=args.executor, display=False)
    sys.path.insert(0, os.getcwd())
    journal = runtime.journal(args.journal)
    client = MonitorClient.connect(journal.path)
    stored = prepared = None
    if client is None:
        try:
            with journal.hold():
                stored = journal.pickled_execution(args.execution_id)
                if stored is None:
                    raise ExecutionNotFound(args.execution_id, journal.path)
                prepared = None if stored.status == ExecutionStatus.COMPLETED.value else \
                    prepare_resume(journal, args.execution_id, extend=args.extend)
        except JournalLocked:
            client = MonitorClient.connect(journal.path)  # its engine may have begun serving meanwhile
            if client is None:
                raise
    if client is not None:  # another process's engine holds the journal: it runs the resume
        with client:
            _not_used(client, args)
            handle = remote(client, client.act(MessageType.RESUME, execution_id=args.execution_id,
                                               extend=args.extend))
        return _report(handle, "Resuming")
    assert stored is not None
    if prepared is None:
        output = stores.load(journal, args.execution_id, stored.output) if stored.output is not None else None
        print(f"Execution {safe(repr(args.execution_id))} is already completed (run {stored.run_number}); "
              "nothing to resume.")
        print(f"  output: {safe(ser.preview(output))}")
        return 0
    execution = Execution(args.execution_id, journal)
    print(f"Resuming execution {safe(repr(args.execution_id))} ({safe(stored.workflow)}, was {stored.status})...")
    execute(execution, prepared.workflow, prepared.data, options, prepared.plan)
    output = execution.result()
    print(f"Execution completed (run {execution.run_number}).")
    print(f"  output: {safe(ser.preview(output))}")
    return 0


def _not_used(client: MonitorClient, args: argparse.Namespace) -> None:
    if getattr(args, "workers", None) is not None or getattr(args, "executor", None) is not None:
        print(f"zart: --workers/--executor are not used: process {client.pid} runs it with its own",
              file=sys.stderr)


def cmd_recover(args: argparse.Namespace) -> int:
    from ._control_api import recover

    sys.path.insert(0, os.getcwd())
    handles = recover(args.journal)
    if not handles:
        print("No execution to recover (none whose last run ended because its process died).")
        return 0
    code = 0
    for handle in handles:
        code = max(code, _report(handle, "Recovering"))
    return code


def cmd_restart(args: argparse.Namespace) -> int:
    from ._control_api import restart

    sys.path.insert(0, os.getcwd())
    return _report(restart(args.execution_id, args.journal), "Restarting")


def cmd_rerun(args: argparse.Namespace) -> int:
    from ._control_api import rerun_steps

    sys.path.insert(0, os.getcwd())
    return _report(rerun_steps(args.execution_id, args.step, after=args.after, journal=args.journal),
                   "Re-running steps of")


def cmd_retry(args: argparse.Namespace) -> int:
    from ._control_api import retry_step

    sys.path.insert(0, os.getcwd())
    return _report(retry_step(args.execution_id, args.step_key, args.journal), f"Retrying {safe(args.step_key)} of")


def _json_data(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConfigurationError(f"--data must be JSON: {exc}") from None


def cmd_fork(args: argparse.Namespace) -> int:
    from ._actions import SAME
    from ._control_api import fork

    sys.path.insert(0, os.getcwd())
    data = SAME if args.data is None else _json_data(args.data)
    return _report(fork(args.execution_id, args.from_step, args.new_id, data, args.journal), "Forked into")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


LOCATED = ("resume", "restart", "rerun", "retry", "fork")  # commands whose execution id names the journal


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the commands of this module to ``zart``'s subparsers."""
    resume = sub.add_parser("resume", parents=[common],
                            help="finish an execution from its journaled definition")
    resume.add_argument("execution_id")
    resume.add_argument("--workers", type=int)
    resume.add_argument("--executor", help="run the steps on a Dask cluster: its scheduler address, e.g. "
                        "tcp://host:8786 (default: $ZART_EXECUTOR, else the local pool)")
    resume.add_argument("--extend", type=_seconds, metavar="SECONDS",
                        help="move its deadline this much later (from now if it has passed or none was set)")
    resume.set_defaults(func=cmd_resume)

    recover = sub.add_parser("recover", parents=[common],
                             help="resume every execution whose process died (not those stopped on purpose)")
    recover.set_defaults(func=cmd_recover)

    restart = sub.add_parser("restart", parents=[common], help="run an execution again from scratch (same input)")
    restart.add_argument("execution_id")
    restart.set_defaults(func=cmd_restart)

    rerun = sub.add_parser("rerun", parents=[common], help="run some completed steps again, reusing the rest")
    rerun.add_argument("execution_id")
    rerun.add_argument("--step", action="append", required=True, metavar="KEY",
                       help="a step key to run again (repeat for more)")
    rerun.add_argument("--after", action="store_true", help="and every step after it in call order")
    rerun.set_defaults(func=cmd_rerun)

    retry = sub.add_parser("retry", parents=[common], help="run a failed step again and continue its execution")
    retry.add_argument("execution_id")
    retry.add_argument("step_key")
    retry.set_defaults(func=cmd_retry)

    fork = sub.add_parser("fork", parents=[common],
                          help="a new execution reusing another's steps before a step, maybe with new input")
    fork.add_argument("execution_id")
    fork.add_argument("--from-step", required=True, metavar="KEY", help="the first step the fork runs")
    fork.add_argument("--new-id", help="the new execution's id (default: <id>-fork-N)")
    fork.add_argument("--data", help="a new input, as JSON (default: the original's)")
    fork.set_defaults(func=cmd_fork)
