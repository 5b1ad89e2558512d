"""One execution: its input and output, runs, a page of its steps, a timeline per worker, live.

Steps page by key (the read API's ``after=``/``before=``/``from_end=``), so the last page of a
1,000,000-step journal costs what the first does; ``f`` shows only failed steps, ``n`` jumps to the next
failed step and ``/`` to a step key, each resolved by the query on a worker thread.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

import zart_nb as zart

from .. import fmt
from ..refresh import Refresher
from ..widgets.timeline import Timeline

if TYPE_CHECKING:
    from ..host import Host
    from ..source import Source

PAGE = 500
IN_FLIGHT = {zart.StepStatus.SCHEDULED, zart.StepStatus.RUNNING, zart.StepStatus.RETRYING}
RUNS_SHOWN = 3
TAKES_NO_EVENTS = {zart.ExecutionStatus.COMPLETED, zart.ExecutionStatus.CANCELLED}  # a failed one may resume
# Ends whose cause the status does not tell (a failed run shows its error already; a recovered one reads
# completed)
TOLD_ENDS = {zart.RunEnd.CANCELLED, zart.RunEnd.INTERRUPTED, zart.RunEnd.PROCESS_DIED, zart.RunEnd.RECOVERED}

# Which page is shown: ("first",), ("end",), ("after", key, start), ("before", key, end) or ("at", key);
# ``start``/``end``: the index of the page's first row, of the row after its last.
Anchor = tuple[object, ...]


# How the step bar names each status (``3 steps: 1 done, 2 running``), in the order it lists them
COUNTED = {zart.StepStatus.COMPLETED: "done", zart.StepStatus.FAILED: "failed",
           zart.StepStatus.CANCELLED: "cancelled", zart.StepStatus.INTERRUPTED: "interrupted",
           zart.StepStatus.RUNNING: "running", zart.StepStatus.SCHEDULED: "waiting",
           zart.StepStatus.RETRYING: "retrying"}


def counted(statuses: list[zart.StepStatus]) -> str:
    """``1 done, 2 running``: how many of ``statuses`` are in each status, in ``COUNTED``'s order."""
    return ", ".join(f"{n} {label}" for status, label in COUNTED.items() if (n := statuses.count(status)))


@dataclass(frozen=True)
class Query:
    anchor: Anchor
    failed_only: bool
    # ("next_failed", from key), ("goto", key), ("first", None) or ("last", None): resolved by the read,
    # which also puts the cursor on the step it lands on (once: live reloads keep the page, not the cursor)
    jump: tuple[str, str | None] | None


@dataclass(frozen=True)
class Page:
    query: Query
    record: zart.ExecutionRecord | None
    runs: list[zart.RunRecord]
    steps: list[zart.StepRecord]
    total: int  # steps listed with the filter
    start: int  # index of the first row shown
    anchor: Anchor  # what the read resolved the query's anchor and jump to
    cursor: str | None  # a step key to put the cursor on ("" for the last row)
    note: str | None
    progress: zart.RunProgress | None = None  # while it runs in the engine read through: what runs now
    events: tuple[str, ...] = ()  # names of the events sent to it and not consumed yet, oldest first
    # running steps whose record (from an earlier run) is on another page: counted once, with their record
    elsewhere: frozenset[str] = frozenset()


def read_page(reader: zart.JournalReader, execution_id: str, q: Query) -> Page:
    """One page of steps as ``q`` asks (on a worker thread)."""
    page = _read_page(reader, execution_id, q)
    if page.record is not None and page.record.status not in TAKES_NO_EVENTS:
        page = replace(page, events=tuple(event.name for event in reader.pending_events(execution_id)))
    if page.record is not None and page.record.status is zart.ExecutionStatus.RUNNING:
        progress = reader.progress(execution_id)
        return replace(page, progress=progress, elsewhere=_recorded_elsewhere(reader, execution_id, page, progress))
    return page


def _recorded_elsewhere(reader: zart.JournalReader, execution_id: str, page: Page,
                        progress: zart.RunProgress | None) -> frozenset[str]:
    """The running steps that have a journaled record on another page than ``page`` (a step an earlier run
    journaled, running again): one lookup each, only when the steps take more than one page."""
    if progress is None or page.query.failed_only or page.total <= len(page.steps):
        return frozenset()
    shown = {step.step_key for step in page.steps}
    return frozenset(step.key for step in progress.running_steps
                     if step.key not in shown and reader.step_index(execution_id, step.key) is not None)


def _read_page(reader: zart.JournalReader, execution_id: str, q: Query) -> Page:
    status = "failed" if q.failed_only else None
    record = reader.execution_record(execution_id)
    runs = reader.list_runs(execution_id) if record is not None else []
    total = reader.count_steps(execution_id, status=status) if record is not None else 0
    anchor, cursor, note = q.anchor, None, None
    if q.jump is not None:
        kind, key = q.jump
        if kind == "next_failed":
            found = reader.list_steps(execution_id, status="failed", after=key, limit=1) if key else []
            if not found:
                found = reader.list_steps(execution_id, status="failed", limit=1)
                note = "no failed step" if not found else "no failed step after it: the first one" if key else None
            if found:
                anchor = ("at", found[0].step_key)
        elif kind == "first":
            anchor = ("first",)
        elif kind == "last":
            anchor = ("end",)
        elif key is not None:
            anchor = ("at", key)
    if anchor[0] == "at":
        key = str(anchor[1])
        index = reader.step_index(execution_id, key, status=status)
        if index is None:
            note = f"no step {key!r}" + (" among the failed ones" if status else "")
            anchor = ("first",)
        else:
            before = reader.list_steps(execution_id, status=status, before=key, limit=1)
            steps = reader.list_steps(execution_id, status=status, limit=PAGE,
                                      after=before[0].step_key if before else None)
            # the page stays where it landed, as a page after the step before it; the cursor moves once
            anchor = ("after", before[0].step_key, index) if before else ("first",)
            return Page(q, record, runs, steps, total, index, anchor, key, note)
    if anchor[0] == "after":
        steps = reader.list_steps(execution_id, status=status, after=str(anchor[1]), limit=PAGE)
        start = int(str(anchor[2]))
    elif anchor[0] == "before":
        steps = reader.list_steps(execution_id, status=status, before=str(anchor[1]), limit=PAGE)
        start = max(0, int(str(anchor[2])) - len(steps))
    elif anchor[0] == "end":
        steps = reader.list_steps(execution_id, status=status, from_end=True, limit=PAGE)
        start = max(0, total - len(steps))
        cursor = "" if q.jump is not None else None
    else:
        steps, start = reader.list_steps(execution_id, status=status, limit=PAGE), 0
        cursor = steps[0].step_key if q.jump is not None and steps else None
    return Page(q, record, runs, steps, total, start, anchor, cursor, note)


class ExecutionScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "back", "Back", id="execution.back"),
        Binding("left_square_bracket", "page(-1)", "Prev page", show=False, id="execution.prev"),
        Binding("right_square_bracket", "page(1)", "Next page", show=False, id="execution.next"),
        Binding("f", "toggle_failed", "Failed", id="execution.failed"),
        Binding("n", "next_failed", "Next failed", id="execution.next_failed"),
        Binding("slash", "goto", "Go to", id="execution.goto"),
        Binding("t", "toggle_timeline", "Timeline", show=False, id="execution.timeline"),
        Binding("c", "cancel", "Cancel", show=False, id="execution.cancel"),
        Binding("u", "resume", "Resume", show=False, id="execution.resume"),
        Binding("r", "retry", "Retry", id="execution.retry"),
        Binding("R", "restart", "Restart", show=False, id="execution.restart"),
        Binding("e", "rerun", "Rerun step", show=False, id="execution.rerun"),
        Binding("F", "fork", "Fork", show=False, id="execution.fork"),
        Binding("E", "send_event", "Send event", show=False, id="execution.send_event"),
        Binding("d", "delete", "Delete", show=False, id="execution.delete"),
        Binding("y", "copy_id", "Copy id", show=False, id="execution.copy"),
        Binding("Y", "copy_step", show=False, id="execution.copy_step"),
        Binding("j", "move(1)", show=False, id="execution.down"),
        Binding("k", "move(-1)", show=False, id="execution.up"),
        Binding("g", "first", show=False, id="execution.first"),
        Binding("G", "last", show=False, id="execution.last"),
    ]

    def __init__(self, source: Source, execution_id: str) -> None:
        super().__init__()
        self.source = source
        self.execution_id = execution_id
        self.at: Anchor = ("first",)
        self.failed_only = False
        self.jump: tuple[str, str | None] | None = None
        self.page_start = 0
        self.total = 0
        self.record: zart.ExecutionRecord | None = None
        self.steps: dict[str, zart.StepRecord] = {}
        self.page: list[zart.StepRecord] = []
        # the steps in flight that the journal has no record of yet (rows after the last page's records)
        self.live: list[tuple[str, zart.StepStatus, tuple[Text, ...]]] = []
        # and those in flight again whose record is on another page (counted with it, not as rows)
        self.again: list[zart.StepStatus] = []
        self.elsewhere: frozenset[str] = frozenset()
        self.updated_at: datetime | None = None
        self.note: str | None = None
        self.progress: zart.RunProgress | None = None
        self.events: tuple[str, ...] = ()
        self.refresher: Refresher[Page | None] = Refresher(self, self._read, self._show, name="execution")

    @property
    def zapp(self) -> Host:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Static(id="summary")
        yield Static(id="stepbar")
        yield Input(placeholder="go to a step key (enter to go, escape to close)", id="goto")
        yield Input(placeholder='send an event: NAME then a JSON payload, e.g. approve {"ok": true} '
                    "(enter to send, escape to close)", id="event")
        yield Static(id="empty", classes="empty")
        table: DataTable[object] = DataTable(id="steps", cursor_type="row", zebra_stripes=True)
        table.add_columns("key", "status", "attempt", "duration", "this run", "worker", "args", "output / error")
        yield table
        yield Timeline(id="timeline")
        yield Static(id="preview")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#goto", Input).display = False
        self.query_one("#event", Input).display = False
        self.query_one("#empty", Static).display = False
        if self.app.size.height < 30:  # the steps come first on a small terminal; t shows the timeline
            self.query_one(Timeline).display = False
        self.query_one(DataTable).focus()
        self.set_interval(1.0, self._tick)
        self.reload()

    def _tick(self) -> None:
        self._draw_stepbar()
        if self.progress is not None:  # what runs is asked for, not announced: ask again while it runs
            self.reload()

    def on_screen_resume(self) -> None:
        self.reload()  # events may have come while another screen was on top

    # --- data ------------------------------------------------------------------------------------

    def query_now(self) -> Query:
        return Query(self.at, self.failed_only, self.jump)

    def reload(self) -> None:
        """Read again soon (one read at a time; see ``refresh.Refresher``)."""
        self.refresher.request()

    def _read(self) -> Page | None:
        q, execution_id = self.query_now(), self.execution_id
        return self.source.read(lambda reader: read_page(reader, execution_id, q))

    def _show(self, page: Page | None) -> None:
        if page is not None and page.query != self.query_now():
            self.reload()  # a key changed the page while this was read: that read is coming
            return
        summary = self.query_one("#summary", Static)
        if page is None and self.source.kept and self.record is not None:
            return  # zart serve holds the file a moment: what is shown stays (read again at the next poll)
        if page is None or page.record is None:
            why = self.source.message if page is None else f"no execution {self.execution_id!r} in {self.source.path}"
            summary.update(Text(fmt.clean(why), style="bold red"))
            return
        self.at, self.jump = page.anchor, None
        self.updated_at = self.zapp.clock.now()
        self.record, self.page_start, self.total = page.record, page.start, page.total
        self.progress = page.progress
        self.events = page.events
        self.elsewhere = page.elsewhere
        if page.note:
            self.notify(page.note, timeout=4)
        summary.update(self._summary(page.record, page.runs))
        self._fill(page.record, page.steps, page.cursor)
        self._draw_stepbar()
        self.query_one(Timeline).show(page.steps, self.zapp.clock.now())
        empty = self.query_one("#empty", Static)
        empty.display = not page.steps and not self.query_one(DataTable).row_count
        if empty.display:
            empty.update(Text("No failed steps (f shows every step)." if self.failed_only else "No steps yet.",
                              style="bold"))

    def _summary(self, record: zart.ExecutionRecord, runs: list[zart.RunRecord]) -> Text:
        clock = self.zapp.clock
        text = Text()
        text.append(fmt.clean(record.execution_id, lines=False), style="bold")
        text.append("  ")
        text.append_text(fmt.status(record.status))
        text.append(f"  {fmt.clean(record.workflow, lines=False)}  ·  {self.source.name} ({self.source.state})  ·  ")
        text.append_text(fmt.bar(record.steps_completed, record.steps_total, 20))
        text.append(f"  failed {record.steps_failed}\n", style="red" if record.steps_failed else "dim")
        if record.parent_execution_id is not None:
            text.append(f"parent: {fmt.cell(record.parent_execution_id, 200)}\n")
        text.append(f"input:  {fmt.cell(record.input_preview, 200)}\n")
        if record.output_preview is not None:
            text.append(f"output: {fmt.cell(record.output_preview, 200)}\n")
        if record.error and record.error != record.end_detail:
            text.append(f"error:  {fmt.cell(record.error, 200)}\n", style="red")
        if record.status in (zart.ExecutionStatus.SLEEPING, zart.ExecutionStatus.WAITING):
            what = "sleep" if record.status is zart.ExecutionStatus.SLEEPING else "event"
            until = "no timeout" if record.wake_at is None else \
                f"until {record.wake_at.isoformat(sep=' ', timespec='seconds')}"
            text.append(f"waits:  {what} {fmt.cell(repr(record.waits_for), 100)}, {until}\n", style="blue")
        elif record.ended_by in TOLD_ENDS:
            end = record.end_detail or record.ended_by.value
            text.append(f"ended:  {fmt.cell(end, 200)}\n", style="yellow")
        progress = self.progress
        if progress is not None:
            queued = "".join(f", {q.waiting} waiting on queue {fmt.clean(q.name, lines=False)!r}"
                             for q in progress.queues if q.waiting)
            text.append(f"now:    {progress.running} running, {progress.scheduled} waiting for a worker{queued}, "
                        f"{progress.retrying} waiting to retry, {progress.finished} of {progress.total} finished\n")
        if self.events:
            names = ", ".join(fmt.clean(name, lines=False) for name in self.events[:5])
            more = f" and {len(self.events) - 5} more" if len(self.events) > 5 else ""
            text.append(f"events: {len(self.events)} sent, not consumed yet: {names}{more}\n", style="yellow")
        if len(runs) > RUNS_SHOWN:
            text.append(f"({len(runs) - RUNS_SHOWN} earlier runs)\n", style="dim")
        for run in runs[-RUNS_SHOWN:]:
            # What started it, when the run is more than the first run or a resume (a restart, a rerun, ...)
            told = run.trigger is not None and run.trigger not in (zart.RunTrigger.INITIAL, zart.RunTrigger.RESUME)
            trigger = (f" ({run.trigger.value}" + (f": {fmt.clean(run.trigger_detail, lines=False)}"
                                                    if run.trigger_detail else "") + ")") \
                if told and run.trigger is not None else ""
            text.append(f"run {run.run_number}{trigger}: {run.status.value}, {fmt.when(run.started_at)}, "
                        f"{clock.duration(run.started_at, run.finished_at)}, executed {run.executed}, "
                        f"reused {run.reused}, pid {run.pid}"
                        + (f", {fmt.clean(run.end_detail or run.ended_by.value, lines=False)}"
                           if run.ended_by in TOLD_ENDS else "")
                        + "\n", style="dim")
        text.rstrip()
        return text

    def _draw_stepbar(self) -> None:
        if not self.is_attached:
            return
        self.query_one("#stepbar", Static).update(self.stepbar_text())

    def stepbar_text(self) -> Text:
        """What the steps' table holds, counted as shown: the journal's records and, after them on the last
        page, the steps in flight it has no record of yet (``3 steps: 1 done, 2 running``; paged: ``steps
        1-500 of 1002 (2 running, not journaled yet: on the last page)``)."""
        live = [status for _, status, _ in self.live]
        total = self.total + len(live)
        if self.page_start == 0 and self.on_last_page():
            statuses = [step.status for step in self.page] + live
            text = Text(f"{total} step{'' if total == 1 else 's'}" + (f": {counted(statuses)}" if total else ""),
                        style="dim")
        else:
            last = self.page_start + len(self.page) + (len(live) if self.on_last_page() else 0)
            text = Text(f"steps {self.page_start + 1 if last > self.page_start else 0}-{last} of {total}",
                        style="dim")
            if live:
                where = "" if self.on_last_page() else ": on the last page"
                text.append(f" ({counted(live)}, not journaled yet{where})", style="dim")
            if self.again:
                text.append(f" ({counted(self.again)} again: its record on another page)", style="dim")
        if self.failed_only:
            text.append("  failed only", style="bold red")
        if self.total > PAGE:
            text.append("  [ ] pages, g G first/last", style="dim")
        text.append(f"  {fmt.ago(self.updated_at, self.zapp.clock.now())}", style="dim")
        return text

    def _fill(self, record: zart.ExecutionRecord, steps: list[zart.StepRecord], cursor: str | None) -> None:
        table = self.query_one(DataTable)
        current = self.current_key() if cursor is None else cursor
        table.clear()
        self.steps = {}
        self.page = steps
        for step in steps:
            self.steps[step.step_key] = step
            ran = step.this_run(record.run_number)
            result = step.error if step.error else step.output_preview
            table.add_row(fmt.cell(step.step_key, 40), fmt.status(step.status), str(step.attempts),
                          fmt.seconds_text(step.duration), ran, fmt.cell(step.worker or "-", 24),
                          fmt.cell(step.args_preview, 30), fmt.cell(result or "", 50), key=step.step_key)
        self.live, self.again = self._live_rows() if not self.failed_only else ([], [])
        if self.on_last_page():  # steps in flight that the journal has no row of yet come last
            for key, status, cells in self.live:
                table.add_row(fmt.cell(key, 40), fmt.status(status), *cells, key=key)
        if current == "":
            table.move_cursor(row=max(0, table.row_count - 1))
        elif current is not None and current in table.rows:
            table.move_cursor(row=table.get_row_index(current))
        self._preview()

    def on_last_page(self) -> bool:
        return self.page_start + len(self.page) >= self.total

    def _live_rows(self) -> tuple[list[tuple[str, zart.StepStatus, tuple[Text, ...]]], list[zart.StepStatus]]:
        """The steps in flight that have no record on this page: ``(key, status shown, other cells)``, running
        ones as the engine says now (attempt, worker and elapsed time), then those only an event told of;
        and the statuses of those left out because their record is on another page (the read found it, or
        the event's reason says an earlier run journaled the step)."""
        running = {step.key: step for step in self.progress.running_steps} if self.progress else {}
        live = self.zapp.live_steps.get((self.source.path, self.execution_id), {})
        found: list[tuple[str, zart.StepStatus, tuple[Text, ...]]] = []
        again: list[zart.StepStatus] = []
        for key in self.elsewhere:
            if key not in self.steps and running.pop(key, None) is not None:
                again.append(zart.StepStatus.RUNNING)
        for key, event in list(live.items()):
            if key in self.steps or key in self.elsewhere or event.status not in IN_FLIGHT:
                continue
            if self.total > len(self.page) and event.reason not in (None, zart.RunReason.NEW):
                running.pop(key, None)
                again.append(zart.StepStatus.RUNNING if event.status is zart.StepStatus.SCHEDULED and
                             event.started_at is not None else event.status)
                continue
            now = running.pop(key, None)
            if now is not None:
                found.append((key, zart.StepStatus.RUNNING, self._running_cells(now)))
                continue
            status = zart.StepStatus.RUNNING if event.status is zart.StepStatus.SCHEDULED and \
                event.started_at is not None else event.status
            found.append((key, status, (Text(str(event.attempt)), Text("-"),
                                        Text(f"executing ({event.reason.value if event.reason else 'new'})"),
                                        fmt.cell(event.worker or "-", 24), Text(""), fmt.cell(event.error or "", 50))))
        for key, now in running.items():  # running, though no event of it reached this app
            if key not in self.steps:
                found.append((key, zart.StepStatus.RUNNING, self._running_cells(now)))
        return found, again

    @staticmethod
    def _running_cells(now: zart.RunningStep) -> tuple[Text, ...]:
        return (Text(str(now.attempt)), Text(fmt.seconds_text(now.elapsed)), Text("executing"),
                fmt.cell(now.worker or "-", 24), Text(""), Text(""))

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
        from .step import StepScreen

        key = event.row_key.value or ""
        step = self.steps.get(key)
        if step is not None:
            self.app.push_screen(StepScreen(self.source, step))
            return
        running = {s.key: s for s in self.progress.running_steps} if self.progress else {}
        if key in running:  # a step running now: its screen follows what it prints, live
            now = running[key]
            record = self.record
            self.app.push_screen(StepScreen(self.source, zart.StepRecord(
                self.execution_id, key, now.name, -1, zart.StepStatus.RUNNING,
                record.run_number if record else 0, "running", now.attempt, "", None, None, None, None,
                datetime.fromtimestamp(now.started_at), None, now.worker or None)))

    # --- keys --------------------------------------------------------------------------------------

    def _go(self, anchor: Anchor | None = None, jump: tuple[str, str | None] | None = None) -> None:
        if anchor is not None:
            self.at = anchor
        self.jump = jump
        self.reload()

    def action_page(self, direction: int) -> None:
        if direction > 0 and self.page and self.page_start + len(self.page) < self.total:
            self._go(("after", self.page[-1].step_key, self.page_start + len(self.page)))
        elif direction < 0 and self.page and self.page_start > 0:
            self._go(("before", self.page[0].step_key, self.page_start))

    def action_first(self) -> None:
        if self.page_start == 0:
            self.query_one(DataTable).move_cursor(row=0)
        else:
            self._go(jump=("first", None))

    def action_last(self) -> None:
        if self.on_last_page():
            table = self.query_one(DataTable)
            table.move_cursor(row=max(0, table.row_count - 1))
        else:
            self._go(jump=("last", None))

    def action_move(self, by: int) -> None:
        table = self.query_one(DataTable)
        if table.row_count:
            table.move_cursor(row=max(0, min(table.row_count - 1, table.cursor_row + by)))

    def action_toggle_failed(self) -> None:
        self.failed_only = not self.failed_only
        self._draw_stepbar()
        self._go(("first",))

    def action_next_failed(self) -> None:
        self._go(jump=("next_failed", self.current_key() if self.current_key() in self.steps else None))

    def _ask(self, box_id: str) -> None:
        """Show the input line ``box_id`` (the goto and event prompts), empty and focused."""
        box = self.query_one(box_id, Input)
        box.value = ""
        box.display = True
        box.focus()

    def _answered(self, event: Input.Submitted) -> str:
        """Hide the prompt that was answered, give the steps back the focus; the answer, stripped."""
        event.input.display = False
        self.query_one(DataTable).focus()
        return event.value.strip()

    def action_goto(self) -> None:
        self._ask("#goto")

    @on(Input.Submitted, "#goto")
    def goto_key(self, event: Input.Submitted) -> None:
        key = self._answered(event)
        if key:
            self._go(jump=("goto", key))

    def action_send_event(self) -> None:
        self._ask("#event")

    @on(Input.Submitted, "#event")
    def send_event(self, event: Input.Submitted) -> None:
        name, _, data = self._answered(event).partition(" ")
        if not name:
            return
        execution_id = self.execution_id
        self.zapp.confirm_action(f"Send event {name!r} to {execution_id!r} with payload {data.strip() or 'null'}?",
                                 lambda: self.source.send_event(execution_id, name, data.strip() or "null"))

    def action_back(self) -> None:
        for box in (self.query_one("#goto", Input), self.query_one("#event", Input)):
            if box.display:
                box.display = False
                self.query_one(DataTable).focus()
                return
        self.app.pop_screen()

    def action_toggle_timeline(self) -> None:
        timeline = self.query_one(Timeline)
        timeline.display = not timeline.display

    def action_copy_id(self) -> None:
        self.app.copy_to_clipboard(self.execution_id)  # OSC 52: not every terminal takes it
        self.notify(f"copied {self.execution_id}", timeout=4)

    def action_copy_step(self) -> None:
        key = self.current_key()
        if key is not None:
            self.app.copy_to_clipboard(key)
            self.notify(f"copied {key}", timeout=4)

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
                                 "are reused)", lambda: self.source.control(self.execution_id, "retry", step.step_key))

    def action_restart(self) -> None:
        self.zapp.confirm_action(f"Restart execution {self.execution_id!r} from scratch? (every step runs "
                                 "again; earlier runs are kept)",
                                 lambda: self.source.control(self.execution_id, "restart"))

    def action_rerun(self) -> None:
        key = self.current_key()
        step = self.steps.get(key or "")
        if step is None or step.status is not zart.StepStatus.COMPLETED:
            self.notify("highlight a completed step to run it again", severity="warning")
            return
        self.zapp.confirm_action(f"Run step {step.step_key!r} of {self.execution_id!r} again? (the other steps "
                                 "are reused)", lambda: self.source.control(self.execution_id, "rerun", step.step_key))

    def action_fork(self) -> None:
        key = self.current_key()
        if key is None or key not in self.steps:
            self.notify("highlight the step the fork starts at", severity="warning")
            return
        self.zapp.confirm_action(f"Fork {self.execution_id!r} from step {key!r}? (a new execution reuses the "
                                 "steps before it)", lambda: self.source.control(self.execution_id, "fork", key))
