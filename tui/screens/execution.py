"""One execution: its input and output, runs, a page of its steps, a timeline per worker, live."""
from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static
from textual.worker import get_current_worker

import zart_nb as zart

from .. import fmt
from ..widgets.timeline import Timeline

if TYPE_CHECKING:
    from ..host import Host
    from ..source import Source

PAGE = 500
IN_FLIGHT = {zart.StepStatus.SCHEDULED, zart.StepStatus.RUNNING, zart.StepStatus.RETRYING}


class ExecutionScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="execution.back"),
        Binding("left_square_bracket", "page(-1)", "Prev page", id="execution.prev"),
        Binding("right_square_bracket", "page(1)", "Next page", id="execution.next"),
        Binding("t", "toggle_timeline", "Timeline", id="execution.timeline"),
        Binding("c", "cancel", "Cancel", id="execution.cancel"),
        Binding("u", "resume", "Resume", id="execution.resume"),
        Binding("r", "retry", "Retry step", id="execution.retry"),
        Binding("d", "delete", "Delete", id="execution.delete"),
    ]

    def __init__(self, source: Source, execution_id: str) -> None:
        super().__init__()
        self.source = source
        self.execution_id = execution_id
        self.page_offset = 0
        self.record: zart.ExecutionRecord | None = None
        self.steps: dict[str, zart.StepRecord] = {}

    @property
    def zapp(self) -> Host:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Static(id="summary")
        table: DataTable[object] = DataTable(id="steps", cursor_type="row", zebra_stripes=True)
        table.add_columns("key", "status", "attempt", "duration", "this run", "worker", "args", "output / error")
        yield table
        yield Timeline(id="timeline")
        yield Static(id="preview")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()
        self.reload()

    def on_screen_resume(self) -> None:
        self.reload()  # events may have come while another screen was on top

    # --- data ------------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="execution")
    def reload(self) -> None:
        execution_id, offset = self.execution_id, self.page_offset

        def read(reader: zart.JournalReader) -> tuple[object, ...]:
            return (reader.execution_record(execution_id), reader.list_runs(execution_id),
                    reader.list_steps(execution_id, offset=offset, limit=PAGE))

        found = self.source.read(read)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show, found)

    def _show(self, found: tuple[object, ...] | None) -> None:
        summary = self.query_one("#summary", Static)
        if found is None or found[0] is None:
            why = self.source.message if found is None else f"no execution {self.execution_id!r} in {self.source.path}"
            summary.update(Text(fmt.clean(why), style="bold red"))
            return
        record, runs, steps = found
        assert isinstance(record, zart.ExecutionRecord) and isinstance(runs, list) and isinstance(steps, list)
        self.record = record
        clock = self.zapp.clock
        text = Text()
        text.append(fmt.clean(record.execution_id, lines=False), style="bold")
        text.append("  ")
        text.append_text(fmt.status(record.status))
        text.append(f"  {fmt.clean(record.workflow, lines=False)}  ·  {self.source.name} ({self.source.state})  ·  ")
        text.append_text(fmt.bar(record.steps_completed, record.steps_total, 20))
        text.append(f"  failed {record.steps_failed}\n", style="red" if record.steps_failed else "dim")
        text.append(f"input:  {fmt.cell(record.input_preview, 200)}\n")
        if record.output_preview is not None:
            text.append(f"output: {fmt.cell(record.output_preview, 200)}\n")
        if record.error:
            text.append(f"error:  {fmt.cell(record.error, 200)}\n", style="red")
        for run in runs:
            text.append(f"run {run.run_number}: {run.status.value}, {fmt.when(run.started_at)}, "
                        f"{clock.duration(run.started_at, run.finished_at)}, executed {run.executed}, "
                        f"reused {run.reused}, pid {run.pid}\n", style="dim")
        last = self.page_offset + len(steps)
        text.append(f"steps {self.page_offset + 1 if steps else 0}-{last} of {record.steps_total}"
                    + ("  ([ ] pages)" if record.steps_total > PAGE else ""), style="dim")
        summary.update(text)
        self._fill(record, steps)
        self.query_one(Timeline).show(steps, clock.now())

    def _fill(self, record: zart.ExecutionRecord, steps: list[zart.StepRecord]) -> None:
        table = self.query_one(DataTable)
        current = self.current_key()
        table.clear()
        self.steps = {}
        for step in steps:
            self.steps[step.step_key] = step
            ran = (f"executed ({step.reason})" if step.run_number == record.run_number
                   else f"reused from run {step.run_number}")
            result = step.error if step.error else step.output_preview
            table.add_row(fmt.cell(step.step_key, 40), fmt.status(step.status), str(step.attempts),
                          fmt.seconds_text(step.duration), ran, fmt.cell(step.worker or "-", 24),
                          fmt.cell(step.args_preview, 30), fmt.cell(result or "", 50), key=step.step_key)
        if len(steps) < PAGE:  # the last page: steps in flight that the journal has no row of yet
            live = self.zapp.live_steps.get((self.source.path, self.execution_id), {})
            for key, event in live.items():
                if key not in self.steps and event.status in IN_FLIGHT:
                    table.add_row(fmt.cell(key, 40), fmt.status(event.status), str(event.attempt), "-",
                                  f"executing ({event.reason.value if event.reason else 'new'})",
                                  fmt.cell(event.worker or "-", 24), "", fmt.cell(event.error or "", 50), key=key)
        if current is not None and current in table.rows:
            table.move_cursor(row=table.get_row_index(current))
        self._preview()

    def current_key(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    @on(DataTable.RowHighlighted, "#steps")
    def _preview(self) -> None:
        step = self.steps.get(self.current_key() or "")
        preview = self.query_one("#preview", Static)
        if step is None:
            preview.update("")
            return
        text = Text()
        text.append(f"{fmt.clean(step.step_key, lines=False)}  ", style="bold")
        text.append(f"args: {fmt.cell(step.args_preview, 120)}\n")
        text.append(f"output: {fmt.cell(step.output_preview or '-', 140)}")
        if step.error:
            text.append(f"\nerror: {fmt.cell(step.error, 140)}", style="red")
        preview.update(text)

    @on(DataTable.RowSelected, "#steps")
    def open_step(self, event: DataTable.RowSelected) -> None:
        step = self.steps.get(event.row_key.value or "")
        if step is not None:
            from .step import StepScreen

            self.app.push_screen(StepScreen(self.source, step))

    # --- keys --------------------------------------------------------------------------------------

    def action_page(self, direction: int) -> None:
        total = self.record.steps_total if self.record else 0
        offset = max(0, self.page_offset + direction * PAGE)
        if offset != self.page_offset and offset < max(total, 1):
            self.page_offset = offset
            self.reload()

    def action_toggle_timeline(self) -> None:
        timeline = self.query_one(Timeline)
        timeline.display = not timeline.display

    def action_cancel(self) -> None:
        self.zapp.confirm_action(f"Cancel execution {self.execution_id!r}?",
                                 lambda: self.source.cancel(self.execution_id))

    def action_resume(self) -> None:
        self.zapp.confirm_action(f"Resume execution {self.execution_id!r}?",
                                 lambda: self.source.resume(self.execution_id))

    def action_delete(self) -> None:
        def delete() -> str:
            message = self.source.delete(self.execution_id)
            self.app.call_from_thread(self.dismiss)
            return message

        self.zapp.confirm_action(f"Delete execution {self.execution_id!r} and its steps?", delete)

    def action_retry(self) -> None:
        step = self.steps.get(self.current_key() or "")
        if step is None or step.status not in (zart.StepStatus.FAILED, zart.StepStatus.CANCELLED):
            self.notify("highlight a failed step to retry it", severity="warning")
            return
        self.zapp.confirm_action(f"Retry step {step.step_key!r} of {self.execution_id!r}? (completed steps "
                                 "are reused)", lambda: self.source.resume(self.execution_id, step.step_key))
