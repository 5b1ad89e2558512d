"""``zart-tui``: the app, its sources (one per journal) and the live loop.

Events of live engines arrive on subscription threads and are queued; a 0.25 s tick on the app's
thread takes them (keeping only the steps still in flight) and asks the current screen to read again.
A screen reads on a worker thread, one read at a time, and shows every read it makes
(``refresh.Refresher``): a burst of events costs one read, and at 15k steps/s the app's thread only draws.
Journals read from the file are polled every ``poll`` seconds. Actions are confirmed, run on a worker
thread, and report back as notifications; an error is a message, never a traceback.
"""
from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from textual.app import App
from textual.binding import Binding
from textual.notifications import SeverityLevel

import zart_nb as zart

from .cli import build_parser
from .commands import ZartCommands
from .fmt import Clock
from .screens.confirm import ConfirmScreen
from .screens.executions import ExecutionsScreen
from .screens.help import HelpScreen
from .source import Source, discover

TICK = 0.25
IN_FLIGHT = frozenset({zart.StepStatus.SCHEDULED, zart.StepStatus.RUNNING, zart.StepStatus.RETRYING})


class ZartApp(App[None]):
    """Executions of zart_nb journals, live while an engine runs them."""

    CSS_PATH = "zart.tcss"
    TITLE = "zart"
    BINDINGS = [
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("question_mark", "help", "Help", id="app.help"),
        Binding("ctrl+r", "reload", "Reload", show=False, id="app.reload"),
        Binding("T", "schedules", "Schedules", show=False, id="app.schedules"),
    ]
    COMMANDS = App.COMMANDS | {ZartCommands}

    def __init__(self, target: str | None = None, *, clock: Clock | None = None, poll: float = 2.0) -> None:
        super().__init__()
        self.target = target
        self.clock = clock or Clock()
        self.poll = poll
        self.sources = [Source(path, self._queue_events) for path in discover(target)]
        self._zart_events: collections.deque[tuple[Source, list[zart.Event], bool]] = collections.deque()
        # Counts execution events (and resyncs): a screen reads the per-status counts again only when it
        # moved, not for every step event (at 15k steps/s that halves what each refresh asks the engine).
        self.execution_events = 0
        # The latest event of every step in flight of a live engine, by (journal, execution): the journal
        # has no row of them yet. A step that ended leaves (at 250,000 steps the map stays small).
        self.live_steps: dict[tuple[Path, str], dict[str, zart.StepEvent]] = {}
        self._zart_last_reload = time.monotonic()
        self._zart_closed = threading.Event()

    def refresh_sources(self) -> list[Source]:
        """Pick up journals that appeared in the folder (a notebook ran its first workflow)."""
        known = {source.path: source for source in self.sources}
        paths = [path.expanduser().resolve() for path in discover(self.target)]
        if any(path not in known for path in paths) or len(paths) != len(known):
            self.sources = [known.get(path) or Source(path, self._queue_events) for path in paths]
        return self.sources

    def on_mount(self) -> None:
        self.sub_title = self.target or "./.zart/"
        self.push_screen(ExecutionsScreen())
        self.set_interval(TICK, self._tick)

    def _queue_events(self, source: Source, events: list[zart.Event], resync: bool) -> None:
        if not self._zart_closed.is_set():  # on a subscription thread: only queue
            self._zart_events.append((source, events, resync))

    def _tick(self) -> None:
        changed = False
        while self._zart_events:
            source, events, resync = self._zart_events.popleft()
            changed = True
            if resync:  # events were lost: what the app held in flight may have ended unseen
                self.execution_events += 1
                for key in [key for key in self.live_steps if key[0] == source.path]:
                    del self.live_steps[key]
            for event in events:
                if isinstance(event, zart.StepEvent):
                    steps = self.live_steps.setdefault((source.path, event.execution_id), {})
                    if event.status in IN_FLIGHT:
                        steps[event.step_key] = event
                    else:
                        steps.pop(event.step_key, None)
                else:
                    self.execution_events += 1
                if isinstance(event, zart.ExecutionEvent) and (event.status.finished or
                                                               event.status is zart.ExecutionStatus.RUNNING):
                    # ended, or a new run began: no step of an earlier run is in flight now
                    self.live_steps.pop((source.path, event.execution_id), None)
        if changed or time.monotonic() - self._zart_last_reload >= self.poll:
            self.reload_screen()

    def reload_screen(self) -> None:
        self._zart_last_reload = time.monotonic()
        reload = getattr(self.screen, "reload", None)
        if callable(reload):
            reload()

    # --- actions -----------------------------------------------------------------------------------

    def action_reload(self) -> None:
        self.reload_screen()

    def action_schedules(self) -> None:
        from .screens.schedules import SchedulesScreen

        if not isinstance(self.screen, SchedulesScreen):
            self.push_screen(SchedulesScreen())

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def confirm_action(self, question: str, act: Callable[[], str]) -> None:
        """Ask ``question``; on yes, run ``act`` on a worker thread and show what it returns (or its error)."""

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_worker(lambda: self._act(act), thread=True, group="actions")

        self.push_screen(ConfirmScreen(question), answered)

    def _act(self, act: Callable[[], str]) -> None:
        severity: SeverityLevel
        try:
            message, severity = act(), "information"
        except zart.ZartError as exc:
            message, severity = str(exc), "error"
        except Exception as exc:  # shown, never a traceback
            message, severity = f"{type(exc).__name__}: {exc}", "error"
        self.call_from_thread(self._acted, message, severity)

    def _acted(self, message: str, severity: SeverityLevel) -> None:
        self.notify(message, severity=severity, timeout=6)
        self.reload_screen()

    def on_unmount(self) -> None:
        self._zart_closed.set()
        for source in self.sources:
            source.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    ZartApp(args.journal or args.target).run()
    return 0
