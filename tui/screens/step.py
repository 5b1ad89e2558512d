"""One step: its record, every failed attempt, the error's traceback, what it printed, and its source.

A step running now (opened from a live execution) shows what it has printed so far, followed live (asked
of the engine twice a second), and its record once it has finished."""
from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

import zart_nb as zart

from .. import fmt

if TYPE_CHECKING:
    from ..host import Host
    from ..source import Source


NOTE_START = "[zart: "  # a line zart wrote into a step's output: what was skipped, or not shown live
NOTE_STYLE = "bold yellow"


class StepScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="step.back"),
        Binding("r", "retry", "Retry", id="step.retry"),
    ]

    def __init__(self, source: Source, step: zart.StepRecord) -> None:
        super().__init__()
        self.source = source
        self.step = step
        self.following = step.status is zart.StepStatus.RUNNING
        self.live_text: str | None = None
        self.stored: list[zart.StoredValue] = []
        self.shown = False  # a read of the step's detail was shown

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="step"):
            yield Static(self._head(), id="step-head")
            yield Static(id="step-live")
            yield Static(id="step-detail")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        if self.following:
            self.follow()
            self.set_interval(0.5, self._tick)
        self.load()

    def _tick(self) -> None:
        if self.following:
            self.follow()

    @work(thread=True, exclusive=True, group="step-live")
    def follow(self) -> None:
        """What the running step printed so far; once it no longer runs, its journaled record."""
        step = self.step

        def read(reader: zart.JournalReader) -> tuple[tuple[int, str] | None, zart.StepRecord | None]:
            live = reader.live_output(step.execution_id, step.step_key)
            if live is not None:
                return live, None
            index = reader.step_index(step.execution_id, step.step_key)
            found = [] if index is None else reader.list_steps(step.execution_id, offset=index, limit=1)
            return None, found[0] if found and found[0].step_key == step.step_key else None

        found = self.source.read(read)
        if found is not None:
            self.app.call_from_thread(self._show_live, *found)

    def _show_live(self, live: tuple[int, str] | None, record: zart.StepRecord | None) -> None:
        box = self.query_one("#step-live", Static)
        if live is not None:
            attempt, text = live
            self.live_text = text
            out = Text()
            self._section(out, f"printed so far (attempt {attempt}, live)", text or None, output=True)
            box.update(out)
            return
        if record is None:
            return  # finished, but its record is not readable yet: asked again on the next tick
        self.following = False
        self.step = record
        box.update("")
        self.query_one("#step-head", Static).update(self._head())
        self.load()

    def _head(self) -> Text:
        s = self.step
        text = Text()
        text.append(f"{fmt.clean(s.step_key, lines=False)}  ", style="bold")
        text.append_text(fmt.status(s.status))
        text.append(f"  of {fmt.clean(s.execution_id, lines=False)}  ·  step {fmt.clean(s.name, lines=False)}\n")
        text.append(f"run {s.run_number} ({s.reason}), attempts {s.attempts}, worker {fmt.clean(s.worker or '-')}, "
                    f"started {fmt.when(s.started_at)}, took {fmt.seconds_text(s.duration)}\n")
        text.append(f"args:   {fmt.clean(s.args_preview)}\n")
        text.append(f"output: {fmt.clean(s.output_preview or '-')}\n")
        if s.error:
            text.append(f"error:  {fmt.clean(s.error)}\n", style="bold red")
        return text

    @work(thread=True, exclusive=True, group="step")
    def load(self) -> None:
        step = self.step

        def read(reader: zart.JournalReader) -> tuple[list[zart.AttemptRecord], list[zart.DefinitionRecord]]:
            return reader.list_attempts(step.execution_id, step.step_key), reader.list_definitions()

        def stored(reader: zart.JournalReader) -> list[zart.StoredValue]:
            try:  # an engine of an older zart_nb does not list them: the preview alone then
                return reader.stored_values(step.execution_id, step.step_key)
            except (NotImplementedError, zart.MonitorError):
                return []

        found = self.source.read(read)
        values = self.source.read(stored) if step.status is zart.StepStatus.COMPLETED else None
        if self.source.kept:  # zart serve took the file for a moment meanwhile: both are read again
            found = values = None
        # a table's schema and first rows, read from its Parquet file (nothing is unpickled)
        self.stored = [value.peek(self.source.path) for value in values or []]
        self.app.call_from_thread(self._show, found)

    def _section(self, text: Text, title: str, body: str | None, *, output: bool = False) -> None:
        text.append(f"\n── {title} ", style="bold")
        width = min(64, (self.size.width or 80) - 4)  # a rule that never wraps on a narrow terminal
        text.append("─" * max(0, width - len(title) - 4) + "\n", style="dim")
        if body and output:  # what zart wrote into a step's output (a skip note) stands out from the step's
            for line in fmt.clean(body).splitlines(keepends=True):
                text.append(line, style=NOTE_STYLE if line.startswith(NOTE_START) else "")
        else:
            text.append(fmt.clean(body) if body else "(none)\n", style="" if body else "dim")
        if body and not body.endswith("\n"):
            text.append("\n")

    def _output_section(self, text: Text, title: str, log: str | None, skipped: int) -> None:
        """What a step printed; a kept output that leaves its middle out says so in its title too."""
        if skipped:
            title += f" (cut: {skipped:,} characters skipped in the middle)"
        self._section(text, title, log, output=True)

    def _show(self, found: tuple[list[zart.AttemptRecord], list[zart.DefinitionRecord]] | None) -> None:
        step = self.step
        text = Text()
        if found is None and self.source.kept:  # zart serve holds the file a moment: read again soon
            self.set_timer(1.0, self.load)
            if not self.shown:
                self.query_one("#step-detail", Static).update(Text("journal busy: zart serve holds it a moment; "
                                                                   "reading again", style="dim"))
            return  # else what is shown stays
        if found is None:
            text.append(fmt.clean(self.source.message), style="bold red")
            self.query_one("#step-detail", Static).update(text)
            return
        attempts, definitions = found
        lines = [f"run {a.run_number} attempt {a.attempt}: {a.status.value}  {a.error or ''}  ({a.worker or '-'}, "
                 f"{fmt.when(a.started_at)})" for a in attempts]
        self._section(text, f"failed attempts ({len(attempts)})", "\n".join(lines))
        self._section(text, "traceback", step.traceback)
        for attempt in attempts:  # (a failed step's record is its last attempt's: its traceback is shown once)
            if attempt.traceback and (attempt.run_number, attempt.attempt) != (step.run_number, step.attempts):
                self._section(text, f"traceback of attempt {attempt.attempt} (run {attempt.run_number})",
                              attempt.traceback)
        for value in self.stored:
            first, *rest = value.describe(step.output_preview)
            self._section(text, "stored value", "\n".join([first, *rest]))
        if not self.following:  # while it runs, what it printed so far is shown above, live
            self._output_section(text, "captured output", step.log, step.log_skipped)
        sources = [d for d in definitions if d.kind == "step" and d.name == step.name]
        if not sources:
            self._section(text, "source", None)
        for definition in sources:
            self._section(text, f"source ({definition.def_id[:12]})", definition.source)
        self.query_one("#step-detail", Static).update(text)
        self.shown = True

    def action_retry(self) -> None:
        step = self.step
        if step.status not in (zart.StepStatus.FAILED, zart.StepStatus.CANCELLED):
            self.notify(f"{step.step_key} is {step.status.value}; only a failed step is retried", severity="warning")
            return
        zapp: Host = self.app  # type: ignore[assignment]
        zapp.confirm_action(f"Retry step {step.step_key!r} of {step.execution_id!r}? (completed steps are reused)",
                            lambda: self.source.control(step.execution_id, "retry", step.step_key))
