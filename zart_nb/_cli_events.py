"""``zart event ID NAME --data '<json>'`` and ``zart wake ID``: an event for an execution, the end of its sleep."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ._cli_format import ERROR_EXIT, safe


def add_commands(sub: Any, common: argparse.ArgumentParser, as_json: argparse.ArgumentParser) -> None:
    """Add ``zart event`` to the ``zart`` parser's subcommands."""
    event = sub.add_parser("event", parents=[common, as_json],
                           help="send an event to an execution (a zart.wait_for_event in its body gets it)")
    event.add_argument("execution_id")
    event.add_argument("name", help="the event's name, as the workflow waits for it")
    event.add_argument("--data", default="null", metavar="JSON",
                       help="the payload, a JSON value (default: null), e.g. --data '{\"approved\": true}'")
    event.add_argument("--idempotency-key", metavar="KEY",
                       help="sent once: another send with this key to the same execution is not delivered")
    event.set_defaults(func=cmd_event)
    wake = sub.add_parser("wake", parents=[common, as_json], help="end the durable sleep an execution is in")
    wake.add_argument("execution_id")
    wake.set_defaults(func=cmd_wake)


def cmd_wake(args: argparse.Namespace) -> int:
    from ._messages import wake

    woken = wake(args.execution_id, journal=args.journal)
    if args.json:
        print(json.dumps({"execution_id": args.execution_id, "woken": woken}))
    else:
        print(f"woke {safe(repr(args.execution_id))}" if woken else
              f"{safe(repr(args.execution_id))} is not in a durable sleep")
    return 0


def cmd_event(args: argparse.Namespace) -> int:
    from ._errors import SerializationError
    from ._messages import send_event

    try:
        sent = send_event(args.execution_id, args.name, journal=args.journal, idempotency_key=args.idempotency_key,
                          payload_json=args.data)
    except SerializationError as exc:  # checked by the one JSON codec (_monitor.jsonvalue)
        print(f"zart event: --data: {safe(exc)}; quote it for the shell: --data '{{\"k\": 1}}'", file=sys.stderr)
        return ERROR_EXIT
    if args.json:
        print(json.dumps({"execution_id": args.execution_id, "name": args.name, "sent": sent}))
    elif sent:
        print(f"sent event {safe(repr(args.name))} to {safe(repr(args.execution_id))}")
    else:
        print(f"not sent: event {safe(repr(args.name))} with idempotency key "
              f"{safe(repr(args.idempotency_key))} was already delivered to {safe(repr(args.execution_id))}")
    return 0
