"""The first screen: every execution of every journal shown, newest first, live."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input
from textual.worker import get_current_worker

import zart_nb as zart

from .. import fmt
from ..widgets.status_header import StatusHeader

if TYPE_CHECKING:
    from ..host import Host
    from ..source import Source

PAGE = 500
FILTERS: list[str | None] = [None, "running", "failed", "completed", "cancelled", "interrupted", "pending"]


@dataclass(frozen=True)
class Row:
    source: Source
    record: zart.ExecutionRecord

    @property
    def key(self) -> str:
        return f"{self.source.path}\x00{self.record.execution_id}"


class ExecutionsScreen(Screen[None]):
    BINDINGS = [
        Binding("slash", "search", "Search", id="executions.search"),
        Binding("f", "next_filter", "Filter", id="executions.filter"),
        *[Binding(str(i), f"filter({i})", show=False, id=f"executions.filter{i}") for i in range(len(FILTERS))],
        Binding("c", "cancel", "Cancel", id="executions.cancel"),
        Binding("u", "resume", "Resume", id="executions.resume"),
        Binding("d", "delete", "Delete", id="executions.delete"),
        Binding("g", "reload", "Reload", id="executions.reload"),
        Binding("escape", "clear_search", show=False, id="executions.clear"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.status_filter: str | None = None
        self.search: str | None = None
        self.rows: dict[str, Row] = {}

    @property
    def zapp(self) -> Host:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield StatusHeader(id="header")
        yield Input(placeholder="search an id or a workflow (enter to apply, escape to clear)", id="search")
        table: DataTable[object] = DataTable(id="executions", cursor_type="row", zebra_stripes=True)
        table.add_columns("journal", "id", "workflow", "status", "done/total", "run", "started", "duration")
        yield table
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#search", Input).display = False
        self.query_one(DataTable).focus()
        self.reload()

    def on_screen_resume(self) -> None:
        self.reload()  # events may have come while another screen was on top

    # --- data ------------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="executions")
    def reload(self) -> None:
        status, search = self.status_filter, self.search
        results = []
        for source in self.zapp.refresh_sources():
            records = source.read(lambda r: r.list_executions(status, search=search, limit=PAGE))
            counts = source.read(lambda r: r.stats())
            results.append((source, records or [], counts or {}))
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show, results)

    def _show(self, results: list[tuple[Source, list[zart.ExecutionRecord], dict[zart.ExecutionStatus, int]]]) \
            -> None:
        rows = [Row(source, record) for source, records, _ in results for record in records]
        rows.sort(key=lambda row: (row.record.created_at or datetime.min, row.record.execution_id), reverse=True)
        counts: dict[str, int] = {}
        for _, _, stats in results:
            for state, count in stats.items():
                counts[state.value] = counts.get(state.value, 0) + count
        self.query_one(StatusHeader).show(counts, [(s.name, s.state, s.message) for s in self.zapp.sources],
                                          self.status_filter, self.search)
        table = self.query_one(DataTable)
        current = self.current_row()
        table.clear()
        self.rows = {}
        clock = self.zapp.clock
        for row in rows:
            r = row.record
            self.rows[row.key] = row
            table.add_row(fmt.cell(row.source.name, 20), fmt.cell(r.execution_id, 40), fmt.cell(r.workflow, 30),
                          fmt.status(r.status), fmt.bar(r.steps_completed, r.steps_total), str(r.run_number),
                          fmt.when(r.started_at), clock.duration(r.started_at, r.finished_at), key=row.key)
        if current is not None and current.key in self.rows:
            table.move_cursor(row=table.get_row_index(current.key))

    def current_row(self) -> Row | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.rows.get(key or "")

    # --- navigation --------------------------------------------------------------------------------

    @on(DataTable.RowSelected, "#executions")
    def open_execution(self, event: DataTable.RowSelected) -> None:
        row = self.rows.get(event.row_key.value or "")
        if row is not None:
            from .execution import ExecutionScreen

            self.app.push_screen(ExecutionScreen(row.source, row.record.execution_id))

    def action_search(self) -> None:
        box = self.query_one("#search", Input)
        box.display = True
        box.focus()

    @on(Input.Submitted, "#search")
    def apply_search(self, event: Input.Submitted) -> None:
        self.search = event.value.strip() or None
        event.input.display = False
        self.query_one(DataTable).focus()
        self.reload()

    def action_clear_search(self) -> None:
        box = self.query_one("#search", Input)
        box.value = ""
        box.display = False
        self.query_one(DataTable).focus()
        if self.search:
            self.search = None
            self.reload()

    def action_next_filter(self) -> None:
        self.action_filter((FILTERS.index(self.status_filter) + 1) % len(FILTERS))

    def action_filter(self, index: int) -> None:
        self.status_filter = FILTERS[index]
        self.reload()

    # --- actions -----------------------------------------------------------------------------------

    def action_cancel(self) -> None:
        row = self.current_row()
        if row is not None:
            self.zapp.confirm_action(f"Cancel execution {row.record.execution_id!r} ({row.record.status.value})?",
                                     lambda: row.source.cancel(row.record.execution_id))

    def action_resume(self) -> None:
        row = self.current_row()
        if row is not None:
            self.zapp.confirm_action(f"Resume execution {row.record.execution_id!r} ({row.record.status.value})?",
                                     lambda: row.source.resume(row.record.execution_id))

    def action_delete(self) -> None:
        row = self.current_row()
        if row is not None:
            self.zapp.confirm_action(f"Delete execution {row.record.execution_id!r} and its steps from "
                                     f"{row.source.name}?", lambda: row.source.delete(row.record.execution_id))

    def action_reload(self) -> None:
        self.reload()
