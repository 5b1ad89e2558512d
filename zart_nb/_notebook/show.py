"""``zart.show(execution_id)``: an execution as HTML in a notebook (runs, steps, previews) with an
inline SVG timeline (one lane per worker, a bar per attempt). No plotting library, nothing unpickled.
"""
from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from .._errors import ExecutionNotFound, ZartError
from .._handles import journal_of
from .._journal.reader import FileJournalReader
from .._reader import JournalReader
from .._records import AttemptRecord, ExecutionRecord, RunRecord, StepRecord, StepStatus
from .._stored import StoredValue, by_step, others_line
from .._stored import read as read_stored
from .render import STATUS_COLOURS

if TYPE_CHECKING:
    from .._handles import Execution

MAX_ROWS = 200  # steps listed in the table; the timeline draws every attempt
COLOURS = {"completed": "#43a047", "failed": "#e53935", "retried": "#fb8c00", "cancelled": "#9e9e9e",
           "earlier": "#a5d6a7"}
LANE = 22
WIDTH = 760
LEFT = 150


def _esc(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s" if value < 120 else f"{value / 60:.1f} min"


@dataclass(frozen=True, slots=True)
class _Bar:
    lane: str
    start: float
    end: float
    colour: str
    title: str


def _bars(record: ExecutionRecord, steps: list[StepRecord], attempts: list[AttemptRecord]) -> list[_Bar]:
    bars: list[_Bar] = []
    for attempt in attempts:
        if attempt.started_at is None or attempt.finished_at is None:
            continue
        bars.append(_Bar(attempt.worker or "?", attempt.started_at.timestamp(), attempt.finished_at.timestamp(),
                         COLOURS["retried"], f"{attempt.step_key} attempt {attempt.attempt} (run "
                         f"{attempt.run_number}) failed: {attempt.error or ''}"))
    for step in steps:
        if step.started_at is None or step.finished_at is None:
            continue
        earlier = step.run_number < record.run_number
        colour = (COLOURS["earlier"] if earlier and step.status is StepStatus.COMPLETED
                  else COLOURS.get(step.status.value, COLOURS["cancelled"]))
        note = f", reused in run {record.run_number}" if earlier and step.status is StepStatus.COMPLETED else ""
        bars.append(_Bar(step.worker or "?", step.started_at.timestamp(), step.finished_at.timestamp(), colour,
                         f"{step.step_key} attempt {step.attempts} (run {step.run_number}{note}): "
                         f"{step.status.value}"))
    return bars


def timeline_svg(record: ExecutionRecord, steps: list[StepRecord], attempts: list[AttemptRecord],
                 runs: list[RunRecord]) -> str:
    """One lane per worker, a bar per attempt (hover for the step); runs marked by vertical lines."""
    bars = _bars(record, steps, attempts)
    if not bars:
        return "<p><i>No attempt has run yet: no timeline.</i></p>"
    lanes = sorted({bar.lane for bar in bars}, key=lambda lane: (lane.split(":")[0], lane))
    start = min(bar.start for bar in bars)
    for run in runs:
        if run.started_at is not None:
            start = min(start, run.started_at.timestamp())
    end = max(bar.end for bar in bars)
    span = max(end - start, 1e-3)
    scale = (WIDTH - LEFT - 10) / span
    height = LANE * len(lanes) + 36
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
             f'font-family="sans-serif" font-size="11" role="img" aria-label="timeline">']
    for index, lane in enumerate(lanes):
        y = 8 + index * LANE
        parts.append(f'<text x="4" y="{y + 14}">{_esc(lane.split(":")[0])}</text>')
        parts.append(f'<line x1="{LEFT}" y1="{y + LANE - 2}" x2="{WIDTH - 10}" y2="{y + LANE - 2}" '
                     'stroke="#eeeeee"/>')
    for run in runs:
        if run.started_at is None:
            continue
        x = LEFT + (run.started_at.timestamp() - start) * scale
        parts.append(f'<line x1="{x:.1f}" y1="2" x2="{x:.1f}" y2="{height - 22}" stroke="#5c6bc0" '
                     f'stroke-dasharray="3,2"/><text x="{x + 2:.1f}" y="{height - 24}" fill="#5c6bc0">'
                     f'run {run.run_number}</text>')
    for bar in bars:
        y = 8 + lanes.index(bar.lane) * LANE + 3
        x = LEFT + (bar.start - start) * scale
        w = max(1.0, (bar.end - bar.start) * scale)
        parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{LANE - 8}" fill="{bar.colour}" '
                     f'rx="2"><title>{_esc(bar.title)}</title></rect>')
    parts.append(f'<text x="{LEFT}" y="{height - 6}" fill="#666">0 s</text>'
                 f'<text x="{WIDTH - 10}" y="{height - 6}" fill="#666" text-anchor="end">{_seconds(span)}</text>')
    legend = " ".join(f'<tspan fill="{colour}">■</tspan> {name}' for name, colour in
                      (("completed", COLOURS["completed"]), ("retried attempt", COLOURS["retried"]),
                       ("failed", COLOURS["failed"]), ("cancelled", COLOURS["cancelled"]),
                       ("ran in an earlier run", COLOURS["earlier"])))
    parts.append(f'<text x="{LEFT + 60}" y="{height - 6}" fill="#444">{legend}</text></svg>')
    return "".join(parts)


def _table(headers: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    head = "".join(f"<th style='text-align:left;padding:2px 8px'>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td style='text-align:left;padding:2px 8px'>{cell}</td>" for cell in row)
                   + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class ExecutionView:
    """What ``zart.show`` returns: renders as HTML in a notebook, as text elsewhere."""

    def __init__(self, record: ExecutionRecord, runs: list[RunRecord], steps: list[StepRecord],
                 attempts: list[AttemptRecord], location: str, stored: Sequence[StoredValue] = ()) -> None:
        self.record, self.runs, self.steps, self.attempts, self.location = record, runs, steps, attempts, location
        self.stored = list(stored)

    def __repr__(self) -> str:
        r = self.record
        return (f"Execution {r.execution_id} [{r.status.value}] {r.workflow}: {r.steps_completed}/{r.steps_total} "
                f"steps completed, {r.steps_failed} failed, run {r.run_number}")

    def _repr_html_(self) -> str:
        r = self.record
        colour = STATUS_COLOURS.get(r.status, "#1565c0")
        parts = [f"<div><b>{_esc(r.workflow)}</b> · <code>{_esc(r.execution_id)}</code> · "
                 f"<b style='color:{colour}'>{r.status.value}</b> · {r.steps_completed}/{r.steps_total} steps "
                 f"completed, {r.steps_failed} failed · <span style='color:#666'>{_esc(self.location)}</span></div>",
                 f"<div>input: <code>{_esc(r.input_preview)}</code></div>"]
        if r.output_preview is not None:
            parts.append(f"<div>output: <code>{_esc(r.output_preview)}</code></div>")
        if r.error:
            parts.append(f"<div style='color:#c62828'>error: {_esc(r.error)}</div>")
        parts.append("<h4>Runs</h4>")
        parts.append(_table(("run", "status", "started", "duration", "executed", "reused"), [
            (str(run.run_number), run.status.value, _when(run.started_at),
             _seconds(_between(run.started_at, run.finished_at)), str(run.executed), str(run.reused))
            for run in self.runs]))
        parts.append("<h4>Timeline</h4>")
        parts.append(timeline_svg(r, self.steps, self.attempts, self.runs))
        parts.append("<h4>Steps</h4>")
        rows = []
        for step in self.steps[:MAX_ROWS]:
            ran = _esc(step.this_run(r.run_number))
            result = (f"<span style='color:#c62828'>{_esc(step.error)}</span>" if step.error
                      else f"<code>{_esc(step.output_preview)}</code>")
            rows.append((f"<code>{_esc(step.step_key)}</code>", step.status.value, str(step.attempts),
                         _seconds(step.duration), ran, f"<code>{_esc(step.args_preview)}</code>", result))
        parts.append(_table(("key", "status", "attempts", "duration", "this run", "arguments", "output / error"),
                            rows))
        if len(self.steps) > MAX_ROWS:
            parts.append(f"<p>... and {len(self.steps) - MAX_ROWS} more steps (zart.journal() reads them all)</p>")
        cut = [step for step in self.steps if step.log_skipped]
        if cut:  # the journal keeps an output's two ends: which outputs lost their middle
            parts.append("<div>Output cut (its first 16 KiB and last 64 KiB kept): " + ", ".join(
                f"<code>{_esc(step.step_key)}</code> ({step.log_skipped:,} characters skipped in the middle)"
                for step in cut[:MAX_ROWS]) + (f" and {len(cut) - MAX_ROWS} more" if len(cut) > MAX_ROWS else "")
                + "</div>")
        if any(step.log for step in self.steps):
            parts.append(f"<div style='color:#666'>What a step printed: <code>zart.show({_esc(repr(r.execution_id))}, "
                         "step=KEY)</code></div>")
        if self.stored:
            parts.append(stored_html(self.stored, self.steps))
        if self.attempts:
            parts.append("<h4>Failed attempts</h4>")
            parts.append(_table(("key", "run", "attempt", "error"), [
                (f"<code>{_esc(a.step_key)}</code>", str(a.run_number), str(a.attempt), _esc(a.error))
                for a in self.attempts]))
        return "".join(parts)


def stored_html(stored: Sequence[StoredValue], steps: Sequence[StepRecord]) -> str:
    """The steps whose output is in the value store: kind, size and shape; a table's schema and first
    rows (read from its Parquet file), an array's dtype and shape (its preview). Of a step's several keys
    (a fan-out's), the first so and the others in one line (``_stored.others_line``)."""
    previews = {s.step_key: s.output_preview for s in steps}
    parts = ["<h4>Stored values</h4>"]
    for group in by_step(list(stored))[:MAX_ROWS]:
        value = group[0]
        parts.append(f"<div><code>{_esc(value.step_key)}</code>: {_esc(value.summary())}</div>")
        if value.is_table and value.columns:
            names = tuple(f"{_esc(name)}<br><span style='color:#666;font-weight:normal'>{_esc(kind)}</span>"
                          for name, kind in value.columns)
            rows = [tuple(_esc(cell) for cell in row) for row in value.head]
            parts.append(_table(names, rows))
            if value.rows is not None and value.rows > len(value.head):
                parts.append(f"<div style='color:#666'>... {value.rows - len(value.head):,} more rows</div>")
        elif not value.is_table and previews.get(value.step_key):
            parts.append(f"<div><code>{_esc(previews[value.step_key])}</code></div>")
        if len(group) > 1:
            parts.append(f"<div style='color:#666'>{_esc(others_line(group, python=True))}</div>")
    return "".join(parts)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None:
        return None
    return ((end or datetime.now()) - start).total_seconds()


def view(reader: JournalReader, execution_id: str) -> ExecutionView:
    record = reader.execution_record(execution_id)
    if record is None:
        raise ExecutionNotFound(execution_id, reader.location)
    steps = reader.list_steps(execution_id)
    path = getattr(reader, "path", reader.location)
    # each step's first value with its table's rows (read from its file); a fan-out's others as they are
    stored = [value.peek(path) if index == 0 else value
              for group in by_step(read_stored(reader, execution_id), [s.step_key for s in steps])
              for index, value in enumerate(group)]
    return ExecutionView(record, reader.list_runs(execution_id), steps,
                         reader.list_attempts(execution_id), reader.location, stored)


def show(execution_id: str, journal: str | os.PathLike[str] | None = None) -> ExecutionView:
    from .._runtime import runtime

    return view(FileJournalReader(runtime.journal(journal)), execution_id)


def execution_html(execution: Execution) -> str:
    """An :class:`Execution` as a cell's value, at any moment of its life: as ``zart.show`` shows it
    once its run is journaled (running, done, failed), else one line saying what it waits for. It
    never raises (a display error stops Run All) and never waits for the journal while the run is
    still opening it."""
    journal = journal_of(execution)
    if not execution.done and not journal.is_open:
        return _brief(execution, "its run has not begun yet: the journal is being opened")
    try:
        return view(FileJournalReader(journal), execution.execution_id)._repr_html_()
    except ExecutionNotFound:
        if execution.done:
            error = execution._error
            return _brief(execution, "it ended before its run was journaled"
                          + (f": {type(error).__name__}: {error}" if error is not None else ""))
        return _brief(execution, "its run is starting: not journaled yet")
    except ZartError as exc:
        return _brief(execution, f"its journal cannot be read now ({exc})")


def _brief(execution: Execution, note: str) -> str:
    status = execution.status
    colour = STATUS_COLOURS.get(status, "#1565c0")
    return (f"<div><code>{_esc(execution.execution_id)}</code> · <b style='color:{colour}'>{status.value}</b> · "
            f"{_esc(note)} · <span style='color:#666'>{_esc(execution.journal)}</span></div>")
