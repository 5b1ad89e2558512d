"""``zart.show(execution_id, step=key)``: one step as a notebook shows it, as zart-tui's step screen does.

Its record (status, run, attempts, worker, previews, error), its failed attempts, the tracebacks, a stored
value's summary, what it printed and its source. An output kept as its two ends says so in its section's
title, in the TUI's words (``captured output (cut: 978,115 characters skipped in the middle)``), and the
``[zart: ...]`` line that stands for the middle is marked apart from the step's own lines. Read through
the read API (``StepRecord.log_skipped``); nothing is unpickled.
"""
from __future__ import annotations

import html
import os
from collections.abc import Sequence

from .._errors import ConfigurationError, ExecutionNotFound
from .._journal.reader import FileJournalReader
from .._reader import JournalReader
from .._records import AttemptRecord, DefinitionRecord, StepRecord, StepStatus
from .._stored import StoredValue
from .show import _esc, _seconds, _table, _when

NOTE_START = "[zart: "  # a line zart wrote into a step's output (what was skipped): shown apart
NOTE_STYLE = "background:#fff3cd;color:#7a4f01;font-weight:bold"
PRE = "white-space:pre-wrap;max-height:40em;overflow:auto;border:1px solid #ddd;padding:4px"


def cut_title(title: str, skipped: int) -> str:
    """``title``, saying how much of the middle a kept output leaves out (zart-tui's words)."""
    return f"{title} (cut: {skipped:,} characters skipped in the middle)" if skipped else title


def output_html(log: str) -> str:
    """What a step printed, escaped, its ``[zart: ...]`` lines marked apart."""
    return "".join(f"<span style='{NOTE_STYLE}'>{html.escape(line)}</span>" if line.startswith(NOTE_START)
                   else html.escape(line) for line in log.splitlines(keepends=True))


class StepView:
    """What ``zart.show(..., step=key)`` returns: renders as HTML in a notebook, as one line elsewhere."""

    def __init__(self, step: StepRecord, attempts: Sequence[AttemptRecord], stored: Sequence[StoredValue],
                 definitions: Sequence[DefinitionRecord], location: str) -> None:
        self.step, self.attempts, self.stored = step, list(attempts), list(stored)
        self.definitions, self.location = list(definitions), location

    def __repr__(self) -> str:
        s = self.step
        cut = f"; output cut: {s.log_skipped:,} characters skipped in the middle" if s.log_skipped else ""
        return (f"Step {s.step_key} of {s.execution_id} [{s.status.value}]: run {s.run_number}, attempts "
                f"{s.attempts}{cut}")

    def _repr_html_(self) -> str:
        s = self.step
        parts = [f"<div><b><code>{_esc(s.step_key)}</code></b> · <b>{s.status.value}</b> · of "
                 f"<code>{_esc(s.execution_id)}</code> · step <code>{_esc(s.name)}</code> · "
                 f"<span style='color:#666'>{_esc(self.location)}</span></div>",
                 f"<div>run {s.run_number} ({_esc(s.reason)}), attempts {s.attempts}, worker {_esc(s.worker or '-')}, "
                 f"started {_when(s.started_at)}, took {_seconds(s.duration)}</div>",
                 f"<div>args: <code>{_esc(s.args_preview)}</code></div>",
                 f"<div>output: <code>{_esc(s.output_preview or '-')}</code></div>"]
        if s.error:
            parts.append(f"<div style='color:#c62828'>error: {_esc(s.error)}</div>")
        if self.attempts:
            parts.append(f"<h4>failed attempts ({len(self.attempts)})</h4>")
            parts.append(_table(("run", "attempt", "status", "error", "worker", "started"), [
                (str(a.run_number), str(a.attempt), a.status.value, _esc(a.error or ""), _esc(a.worker or "-"),
                 _when(a.started_at)) for a in self.attempts]))
        self._section(parts, "traceback", s.traceback)
        # a failed step's record is its last attempt's: that attempt's traceback and output are shown once
        earlier = [a for a in self.attempts if (a.run_number, a.attempt) != (s.run_number, s.attempts)]
        for attempt in earlier:
            self._section(parts, f"traceback of attempt {attempt.attempt} (run {attempt.run_number})",
                          attempt.traceback)
        for value in self.stored:
            self._section(parts, "stored value", "\n".join(value.describe(s.output_preview)))
        self._section(parts, cut_title("captured output", s.log_skipped), s.log, output=True, always=True)
        for attempt in earlier:
            self._section(parts, cut_title(f"captured output of attempt {attempt.attempt} (run "
                                           f"{attempt.run_number})", attempt.log_skipped), attempt.log, output=True)
        sources = [d for d in self.definitions if d.kind == "step" and d.name == s.name]
        for definition in sources:
            self._section(parts, f"source ({definition.def_id[:12]})", definition.source)
        return "".join(parts)

    @staticmethod
    def _section(parts: list[str], title: str, body: str | None, *, output: bool = False,
                 always: bool = False) -> None:
        if not body and not always:
            return
        parts.append(f"<h4>{html.escape(title)}</h4>")
        if not body:
            parts.append("<div style='color:#666'>(none)</div>")
            return
        parts.append(f"<pre style='{PRE}'>{output_html(body) if output else html.escape(body)}</pre>")


def step_view(reader: JournalReader, execution_id: str, step_key: str) -> StepView:
    """The journaled step ``step_key`` of ``execution_id`` (a ``ConfigurationError`` when it has none:
    a step is journaled when it ends)."""
    if reader.execution_record(execution_id) is None:
        raise ExecutionNotFound(execution_id, reader.location)
    index = reader.step_index(execution_id, step_key)
    found = [] if index is None else reader.list_steps(execution_id, offset=index, limit=1)
    if not found or found[0].step_key != step_key:
        raise ConfigurationError(f"execution {execution_id!r} has no journaled step {step_key!r} (a step is "
                                 f"journaled when it ends) in {reader.location}")
    step = found[0]
    stored: list[StoredValue] = []
    if step.status is StepStatus.COMPLETED:
        path = getattr(reader, "path", reader.location)
        stored = [value.peek(path) for value in reader.stored_values(execution_id, step_key)]
    return StepView(step, reader.list_attempts(execution_id, step_key), stored, reader.list_definitions(),
                    reader.location)


def show_step(execution_id: str, step_key: str, journal: str | os.PathLike[str] | None = None) -> StepView:
    from .._runtime import runtime

    return step_view(FileJournalReader(runtime.journal(journal)), execution_id, step_key)
