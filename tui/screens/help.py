"""``?``: every key of the app, by screen."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

HELP = """\
zart-tui: executions of zart_nb journals, live while an engine runs them.

Everywhere
  q          quit                    ?          this help
  ctrl+p     command palette         escape     back

Executions
  enter      open the execution      /          search id or workflow
  f          next status filter      0-6        all, running, failed, completed,
                                                cancelled, interrupted, pending
  c          cancel (confirmed)      u          resume an interrupted or failed one
  d          delete a finished one   g          reload now

Execution
  enter      step detail             [ ]        previous / next page of steps
  t          show or hide the timeline
  c u d      cancel, resume, delete  r          retry the highlighted failed step

Step
  r          retry this step (when it failed)

How a journal is read (the line under the counts): live, from the engine that runs it (events arrive
as they happen); file, read for a moment (polled every 2 s); locked, another process holds it without
serving a monitor; missing or error, with what is wrong. Nothing is ever unpickled."""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "app.pop_screen", "Close", id="help.close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(HELP, markup=False)
