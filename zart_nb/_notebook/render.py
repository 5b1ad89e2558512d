"""Text and HTML pieces of a progress snapshot, shared by the widget, the text line and ``zart.show``."""
from __future__ import annotations

import html

from .._status import ExecutionStatus
from .progress import Snapshot

GREY = "#9e9e9e"
STATUS_COLOURS = {
    ExecutionStatus.COMPLETED: "#2e7d32",
    ExecutionStatus.FAILED: "#c62828",
    ExecutionStatus.CANCELLED: "#757575",
    ExecutionStatus.INTERRUPTED: "#757575",
    ExecutionStatus.SLEEPING: "#6a1b9a",
    ExecutionStatus.WAITING: "#6a1b9a",
}


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def header_html(snap: Snapshot) -> str:
    colour = STATUS_COLOURS.get(snap.status, "#1565c0")
    run = f" · run {snap.run_number}" if snap.run_number else ""
    if snap.run_number and snap.run_number > 1:
        run += " (resumed)"
    return (f"<b>{html.escape(snap.workflow or 'workflow')}</b> · <code>{html.escape(snap.execution_id)}</code>"
            f"{run} · <b style='color:{colour}'>{snap.status.value}</b>"
            + (f" · {html.escape(snap.waits)} (nothing runs: it continues then)" if snap.waits else ""))


def counts_text(snap: Snapshot) -> str:
    """``12 completed · 3 running · ...``: the states with steps in them, in a fixed order."""
    if snap.from_journal:
        return "completed in an earlier run: output from the journal, nothing ran"
    parts = [f"{snap.finished - snap.failed - snap.cancelled}/{snap.total} done"]
    for label, count in (("completed", snap.completed), ("running", snap.running),
                         ("scheduled", snap.scheduled), ("retrying", snap.retrying),
                         ("failed", snap.failed), ("cancelled", snap.cancelled)):
        if count:
            parts.append(f"{count} {label}")
    for queue in snap.queues:  # waiting for a slot of a zart.Queue
        parts.append(f"{queue.waiting} waiting on queue {queue.name!r}")
    if snap.reused:
        parts.append(f"{snap.reused} reused from earlier runs")
    return " · ".join(parts)


def details_html(snap: Snapshot) -> str:
    rows = []
    if not snap.done:
        for step in snap.running_steps:
            attempt = f" (attempt {step.attempt})" if step.attempt > 1 else ""
            rows.append(f"<div>▶ <code>{html.escape(step.key)}</code>{attempt} {_duration(step.elapsed)}</div>")
    for failed in snap.failed_steps:
        rows.append(f"<div style='color:#c62828'>✖ <code>{html.escape(failed.key)}</code> after "
                    f"{failed.attempts} attempt{'s' if failed.attempts != 1 else ''}: "
                    f"{html.escape(failed.error[:300])}</div>")
    if snap.done and snap.error and not snap.failed_steps:
        rows.append(f"<div style='color:{STATUS_COLOURS.get(snap.status, GREY)}'>"
                    f"{html.escape(snap.error[:300])}</div>")
    return "".join(rows)
