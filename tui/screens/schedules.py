"""``R``: the recurring schedules of every journal, with their next tick; pause or resume (``p``) and remove
(``x``) one, confirmed. Read from the file for a moment (an engine holding it has no schedules to tell)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

import zart_nb as zart

from ..refresh import Refresher

if TYPE_CHECKING:
    from pathlib import Path

    from ..host import Host

LOCK_TIMEOUT = 0.3


@dataclass(frozen=True)
class Row:
    path: Path
    schedule: zart.Schedule

    @property
    def key(self) -> str:
        return f"{self.path}\x00{self.schedule.workflow}"


class SchedulesScreen(Screen[None]):
    BINDINGS = [
        Binding("p", "toggle_pause", "Pause/resume", id="schedules.pause"),
        Binding("x", "remove", "Remove", id="schedules.remove"),
        Binding("escape", "app.pop_screen", "Back", id="schedules.back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, Row] = {}
        self._last: dict[Path, list[Row]] = {}  # per journal: the rows of its last read
        self.refresher: Refresher[tuple[list[Row], list[str]]] = Refresher(self, self._read, self._show,
                                                                            name="schedules")

    @property
    def zapp(self) -> Host:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Static("Recurring schedules (zart serve starts their ticks)", id="schedules-title")
        yield Static(id="schedules-note", classes="empty")
        yield DataTable(id="schedules", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for label in ("workflow", "when", "overlap", "next tick", "last execution", "journal"):
            table.add_column(label, key=label)
        self.reload()

    def reload(self) -> None:
        self.refresher.request()

    def _read(self) -> tuple[list[Row], list[str]]:
        rows, notes = [], []
        for source in self.zapp.refresh_sources():
            if not source.path.exists():
                continue
            try:
                found = zart.schedules(source.path, lock_timeout=LOCK_TIMEOUT)
            except zart.JournalLocked as exc:
                last = self._last.get(source.path)
                if last is not None and exc.held_by_serve:  # zart serve looks at it a moment: as shown
                    rows += last
                    continue
                notes.append(f"{source.name}: held by a running engine; its schedules show once it releases it")
                continue
            except zart.ZartError as exc:
                notes.append(f"{source.name}: {exc}")
                continue
            self._last[source.path] = [Row(source.path, schedule) for schedule in found]
            rows += self._last[source.path]
        return rows, notes

    def _show(self, read: tuple[list[Row], list[str]]) -> None:
        rows, notes = read
        table = self.query_one(DataTable)
        highlighted = self.highlighted()
        table.clear()
        self.rows = {row.key: row for row in rows}
        for row in rows:
            schedule = row.schedule
            upcoming = "paused" if schedule.paused or schedule.next_tick is None else \
                schedule.next_tick.isoformat(timespec="seconds")
            table.add_row(schedule.workflow, schedule.timing, schedule.overlap, upcoming,
                          schedule.last_execution or "-", row.path.stem, key=row.key)
        if highlighted is not None and highlighted.key in self.rows:
            table.move_cursor(row=table.get_row_index(highlighted.key))
        note = "; ".join(notes) if notes else ("" if rows else "no recurring schedules (zart.recurring registers one)")
        self.query_one("#schedules-note", Static).update(note)

    def highlighted(self) -> Row | None:
        table = self.query_one(DataTable)
        if not self.rows or table.cursor_row < 0 or table.cursor_row >= table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.rows.get(key or "")

    def action_toggle_pause(self) -> None:
        row = self.highlighted()
        if row is None:
            return
        name, path = row.schedule.workflow, row.path
        if row.schedule.paused:
            self.zapp.confirm_action(f"Resume the schedule of {name!r}?",
                                     lambda: f"resumed: {zart.resume_schedule(name, journal=path)}")
        else:
            self.zapp.confirm_action(f"Pause the schedule of {name!r}?",
                                     lambda: f"paused: {zart.pause_schedule(name, journal=path)}")

    def action_remove(self) -> None:
        row = self.highlighted()
        if row is None:
            return
        name, path = row.schedule.workflow, row.path

        def remove() -> str:
            zart.remove_schedule(name, journal=path)
            return f"schedule of {name!r} removed (its executions stay)"

        self.zapp.confirm_action(f"Remove the schedule of {name!r}?", remove)
