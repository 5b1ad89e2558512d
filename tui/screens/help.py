"""``?``: every key of the app, by screen: one key a line, so it wraps at any width and scrolls."""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS: list[tuple[str, list[tuple[str, str]]]] = [
    ("Everywhere", [
        ("q", "quit"), ("?", "this help"), ("ctrl+p", "command palette"), ("ctrl+r", "read again now"),
        ("escape", "back (or close a search)"), ("j k", "down, up (or the arrows)"),
        ("g G", "first, last row"), ("enter", "open"), ("T", "recurring schedules (their timetable)"),
    ]),
    ("Executions", [
        ("/", "search ids and workflows"), ("f", "next status filter"),
        ("0-8", "all, running, failed, completed, cancelled, interrupted, pending, sleeping, waiting"),
        ("s S", "sort by the next column, reverse the order (or click a column's header)"),
        ("y", "copy the execution's id (also shown, as not every terminal lets an app copy)"),
        ("c", "cancel (confirmed)"), ("u", "resume an interrupted or failed one"), ("d", "delete a finished one"),
        ("R", "restart from scratch (every step again; earlier runs kept)"),
    ]),
    ("Execution", [
        ("[ ]", "previous, next page of steps"), ("g G", "first, last step"),
        ("f", "only failed steps, or every step"), ("n", "next failed step"), ("/", "go to a step key"),
        ("t", "show or hide the timeline"), ("y Y", "copy the execution's id, the step's key"),
        ("c u d", "cancel, resume, delete"), ("r", "retry the highlighted failed step"),
        ("R", "restart from scratch"), ("e", "run the highlighted completed step again (the rest reused)"),
        ("F", "fork: a new execution from the highlighted step (the steps before it reused)"),
        ("E", "send an event to the execution (a name and a JSON payload; confirmed)"),
    ]),
    ("Step", [("r", "retry this step (when it failed)")]),
    ("Schedules", [("p", "pause or resume the highlighted schedule (confirmed)"), ("x", "remove it (confirmed)")]),
]

ABOUT = ("zart-tui: executions of zart_nb journals, live while an engine runs them. How a journal is read "
         "(the line under the counts): live, from the engine that runs it (events arrive as they happen); "
         "file, read for a moment (polled every 2 s); locked, another process holds it without serving a "
         "monitor; missing or error, with what is wrong. \"updated N s ago\" says how old what is shown is. "
         "Nothing is ever unpickled.")


def help_text() -> Text:
    text = Text(ABOUT + "\n")
    for title, keys in KEYS:
        text.append(f"\n{title}\n", style="bold")
        for key, what in keys:
            text.append(f"  {key:<8}", style="bold cyan")
            text.append(f"{what}\n")
    text.rstrip()
    return text


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "app.pop_screen", "Close", id="help.close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(help_text())
