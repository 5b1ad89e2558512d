"""The first screen: every execution of every journal, sorted by any column (newest first), live."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

import zart_nb as zart

from .. import fmt
from ..refresh import Refresher
from ..widgets.status_header import StatusHeader

if TYPE_CHECKING:
    from ..host import Host
    from ..source import Source

PAGE = 500
FILTERS: list[str | None] = [None, "running", "failed", "completed", "cancelled", "interrupted", "pending",
                             "sleeping", "waiting"]
NARROW = 100  # below this many columns the run number is left out (the execution screen has it)


def _duration(record: zart.ExecutionRecord) -> float | None:
    if record.started_at is None:
        return None
    return ((record.finished_at or datetime.now()) - record.started_at).total_seconds()


# Each column: (label, the read API's sort key, the value that key sorts by: to merge several journals).
COLUMNS: list[tuple[str, str, Callable[[zart.ExecutionRecord], Any]]] = [
    ("id", "id", lambda r: r.execution_id),
    ("workflow", "workflow", lambda r: r.workflow),
    ("status", "status", lambda r: r.status.value),
    ("done/total", "done", lambda r: r.steps_completed),
    ("run", "run", lambda r: r.run_number),
    ("started", "started", lambda r: r.started_at),
    ("duration", "duration", _duration),
]
SORTS = ["created"] + [key for _, key, _ in COLUMNS]
_BY_KEY = {key: value for _, key, value in COLUMNS} | {"created": lambda r: r.created_at}


def merged(records: list[zart.ExecutionRecord], sort: str, descending: bool) -> list[zart.ExecutionRecord]:
    """Several journals' sorted pages as one list, in the query's order (ties by id, empty values last)."""
    value = _BY_KEY[sort]
    rows = sorted(records, key=lambda r: r.execution_id)
    if descending:
        return sorted(rows, key=lambda r: (value(r) is not None, value(r) or 0), reverse=True)
    return sorted(rows, key=lambda r: (value(r) is None, value(r) or 0))


def narrowed(read: Query, records: list[zart.ExecutionRecord], query: Query) -> list[zart.ExecutionRecord] | None:
    """The executions ``query`` would list, taken from the records a read for ``read`` listed (the last read
    of a journal ``zart serve`` holds a moment): filtered and sorted here as the read API does (a status,
    a part of the id or workflow, case-insensitive). None when that read cannot hold them all: it kept
    another status or a search ``query``'s does not contain, or it filled its page (rows past it unknown)."""
    if len(records) >= PAGE or read.status not in (None, query.status):
        return None
    if read.search and (not query.search or read.search.lower() not in query.search.lower()):
        return None
    part = (query.search or "").lower()
    found = [r for r in records if (query.status is None or r.status.value == query.status)
             and (not part or part in r.execution_id.lower() or part in r.workflow.lower())]
    return merged(found, query.sort, query.descending)


@dataclass(frozen=True)
class Row:
    source: Source
    record: zart.ExecutionRecord

    @property
    def key(self) -> str:
        return f"{self.source.path}\x00{self.record.execution_id}"


@dataclass(frozen=True)
class Query:
    status: str | None
    search: str | None
    sort: str
    descending: bool


class ExecutionsScreen(Screen[None]):
    BINDINGS = [
        Binding("slash", "search", "Search", id="executions.search"),
        Binding("f", "next_filter", "Filter", id="executions.filter"),
        *[Binding(str(i), f"filter({i})", show=False, id=f"executions.filter{i}") for i in range(len(FILTERS))],
        Binding("s", "next_sort", "Sort", id="executions.sort"),
        Binding("S", "reverse_sort", "Reverse", show=False, id="executions.reverse"),
        Binding("c", "cancel", "Cancel", id="executions.cancel"),
        Binding("u", "resume", "Resume", id="executions.resume"),
        Binding("R", "restart", "Restart", show=False, id="executions.restart"),
        Binding("d", "delete", "Delete", show=False, id="executions.delete"),
        Binding("y", "copy_id", "Copy id", show=False, id="executions.copy"),
        Binding("j", "move(1)", show=False, id="executions.down"),
        Binding("k", "move(-1)", show=False, id="executions.up"),
        Binding("g", "first", show=False, id="executions.first"),
        Binding("G", "last", show=False, id="executions.last"),
        Binding("escape", "clear_search", show=False, id="executions.clear"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.status_filter: str | None = None
        self.search: str | None = None
        self.sort = "created"
        self.descending = True
        self.rows: dict[str, Row] = {}
        self.updated_at: datetime | None = None
        self._counts: dict[str, int] = {}
        # per journal: ((the app's execution_events, read live), counts) of its last stats read
        self._stats: dict[Path, tuple[tuple[int, bool], dict[str, int]]] = {}
        # per journal: (query, records, counts) of its last read, kept while zart serve holds its file; and
        # its last read of every status with no search (a filter changed then is applied to it, see narrowed)
        self._last: dict[Path, tuple[Query, list[zart.ExecutionRecord], dict[str, int]]] = {}
        self._whole: dict[Path, tuple[Query, list[zart.ExecutionRecord]]] = {}
        self._columns: list[tuple[str, str]] = []  # (label, sort key) shown now
        self.refresher: Refresher[tuple[Query, list[tuple[Source, list[zart.ExecutionRecord], dict[str, int]]]]] \
            = Refresher(self, self._read, self._show, name="executions")

    @property
    def zapp(self) -> Host:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield StatusHeader(id="header")
        yield Input(placeholder="search an id or a workflow (enter to apply, escape to clear)", id="search")
        yield Static(id="empty", classes="empty")
        yield DataTable(id="executions", cursor_type="row", zebra_stripes=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#search", Input).display = False
        self.query_one("#empty", Static).display = False
        self.query_one(DataTable).focus()
        self.set_interval(1.0, self._draw_header)
        self.reload()

    def on_screen_resume(self) -> None:
        self.reload()  # events may have come while another screen was on top

    # --- data ------------------------------------------------------------------------------------

    def query_now(self) -> Query:
        return Query(self.status_filter, self.search, self.sort, self.descending)

    def reload(self) -> None:
        """Read again soon (one read at a time; see ``refresh.Refresher``)."""
        self.refresher.request()

    def _read(self) -> tuple[Query, list[tuple[Source, list[zart.ExecutionRecord], dict[str, int]]]]:
        q = self.query_now()
        results = []
        for source in self.zapp.refresh_sources():
            records = source.read(lambda r: r.list_executions(q.status, search=q.search, limit=PAGE, sort=q.sort,
                                                              descending=q.descending))
            last = self._last.get(source.path)
            if records is None and source.kept and last is not None:  # zart serve holds the file a moment
                if last[0] == q:
                    results.append((source, last[1], last[2]))  # as shown
                    continue
                # the filter, search or sort changed meanwhile: the last read (or the last of every
                # status) narrowed here; the last read itself is kept for when the query comes back
                whole = self._whole.get(source.path)
                shown = narrowed(last[0], last[1], q)
                if shown is None and whole is not None:
                    shown = narrowed(whole[0], whole[1], q)
                results.append((source, shown or [], last[2]))
                continue
            seen = (self.zapp.execution_events, source.live)
            cached = self._stats.get(source.path)
            if source.live and cached is not None and cached[0] == seen:
                counts = cached[1]  # only steps moved (read live both times): no execution changed status
            else:
                found = source.read(lambda r: r.stats())
                if found is None and source.kept and last is not None:
                    counts = last[2]
                else:
                    counts = {k.value: v for k, v in (found or {}).items()}
                    self._stats[source.path] = (seen, counts)
            self._last[source.path] = (q, records or [], counts)
            if records is not None and q.status is None and not q.search:
                self._whole[source.path] = (q, records)
            results.append((source, records or [], counts))
        return q, results

    def _show(self, found: tuple[Query, list[tuple[Source, list[zart.ExecutionRecord], dict[str, int]]]]) -> None:
        q, results = found
        if q != self.query_now():
            self.reload()  # the filter or sort changed while this was read: that read is coming
            return
        kept = [source for source, _, _ in results if source.kept]
        if len(kept) < len(results):  # something was read (what zart serve held is shown as it was)
            self.updated_at = self.zapp.clock.now()
        rows = [Row(source, record) for source, records, _ in results for record in records]
        if len(results) > 1:
            order = {id(r): i for i, r in enumerate(merged([row.record for row in rows], q.sort, q.descending))}
            rows.sort(key=lambda row: order[id(row.record)])
        self._counts = {}
        for _, _, stats in results:
            for state, count in stats.items():
                self._counts[state] = self._counts.get(state, 0) + count
        self._draw_header()
        table = self.query_one(DataTable)
        current = self.current_row()
        self._set_columns(table, several=len(self.zapp.sources) > 1)
        table.clear()
        self.rows = {}
        clock = self.zapp.clock
        labels = {label for label, _ in self._columns}
        for row in rows:
            r = row.record
            self.rows[row.key] = row
            cells: list[object] = [fmt.cell(row.source.name, 20)] if "journal" in labels else []
            cells += [fmt.cell(r.execution_id, 32), fmt.cell(r.workflow, 24), fmt.status(r.status),
                      fmt.bar(r.steps_completed, r.steps_total, 6)]
            if "run" in labels:
                cells.append(str(r.run_number))
            cells += [fmt.short_when(r.started_at), clock.duration(r.started_at, r.finished_at)]
            table.add_row(*cells, key=row.key)
        if current is not None and current.key in self.rows:
            table.move_cursor(row=table.get_row_index(current.key))
        empty = self.query_one("#empty", Static)
        empty.display = not rows
        if not rows:
            what = [f"status {q.status}"] if q.status else []
            what += [f"search {q.search!r}"] if q.search else []
            if kept:
                empty.update(Text(f"Reading {', '.join(source.name for source in kept)}: zart serve holds it for a "
                                  "moment.", style="bold"))
                return
            empty.update(Text(f"No executions match {' and '.join(what)} (0 shows every status, escape clears "
                              "the search)." if what else "No executions yet: run a workflow and it shows here.",
                              style="bold"))

    def _set_columns(self, table: DataTable[object], *, several: bool) -> None:
        """The journal column only with several journals; the run number only when there is room."""
        columns = [("journal", "")] if several else []
        columns += [(label, key) for label, key, _ in COLUMNS if label != "run" or self.size.width >= NARROW]
        labels = [self._label(label, key) for label, key in columns]
        if columns != self._columns or [str(c.label) for c in table.columns.values()] != [str(x) for x in labels]:
            table.clear(columns=True)
            for (_, key), label in zip(columns, labels, strict=True):
                table.add_column(label, key=key or "journal")
            self._columns = columns

    def _label(self, label: str, key: str) -> Text:
        if key and key == self.sort:
            return Text(f"{label} {'▼' if self.descending else '▲'}", style="bold")
        return Text(label)

    def _draw_header(self) -> None:
        if not self.is_attached:
            return
        sort = f"{self.sort} {'▼' if self.descending else '▲'}"
        self.query_one(StatusHeader).show(self._counts, [(s.name, s.state, s.message) for s in self.zapp.sources],
                                          self.status_filter, self.search, sort=sort,
                                          updated=fmt.ago(self.updated_at, self.zapp.clock.now()))

    def on_resize(self) -> None:
        self.reload()

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

    @on(DataTable.HeaderSelected, "#executions")
    def sort_by_header(self, event: DataTable.HeaderSelected) -> None:
        key = event.column_key.value or ""
        if key in SORTS:
            self.set_sort(key, not self.descending if key == self.sort else key != "id" and key != "workflow")

    def set_sort(self, key: str, descending: bool) -> None:
        self.sort, self.descending = key, descending
        self._draw_header()
        self.reload()

    def action_next_sort(self) -> None:
        key = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self.set_sort(key, key not in ("id", "workflow", "status"))

    def action_reverse_sort(self) -> None:
        self.set_sort(self.sort, not self.descending)

    def action_move(self, by: int) -> None:
        table = self.query_one(DataTable)
        if table.row_count:
            table.move_cursor(row=max(0, min(table.row_count - 1, table.cursor_row + by)))

    def action_first(self) -> None:
        self.query_one(DataTable).move_cursor(row=0)

    def action_last(self) -> None:
        table = self.query_one(DataTable)
        table.move_cursor(row=max(0, table.row_count - 1))

    def action_copy_id(self) -> None:
        row = self.current_row()
        if row is not None:
            self.app.copy_to_clipboard(row.record.execution_id)  # OSC 52: not every terminal takes it
            self.notify(f"copied {row.record.execution_id}", timeout=4)

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
        self._draw_header()
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

    def action_restart(self) -> None:
        row = self.current_row()
        if row is not None:
            self.zapp.confirm_action(f"Restart execution {row.record.execution_id!r} ({row.record.status.value}) "
                                     "from scratch? (every step runs again)",
                                     lambda: row.source.control(row.record.execution_id, "restart"))

    def action_delete(self) -> None:
        row = self.current_row()
        if row is not None:
            self.zapp.confirm_action(f"Delete execution {row.record.execution_id!r} and its steps from "
                                     f"{row.source.name}?", lambda: row.source.delete(row.record.execution_id))
