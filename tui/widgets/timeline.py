"""A timeline of steps per worker, drawn in the terminal: one line per worker, a block per step from its
start to its end, coloured by status."""
from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.widgets import Static

import zart_nb as zart

from ..fmt import STATUS_STYLES, clean, seconds_text

LABEL = 18


def draw(steps: list[zart.StepRecord], width: int, now: datetime) -> Text:
    timed = [s for s in steps if s.started_at is not None]
    if not timed:
        return Text("no step has run on a worker in this page", style="dim")
    start = min(s.started_at for s in timed if s.started_at is not None)
    end = max((s.finished_at or now) for s in timed)
    span = max((end - start).total_seconds(), 1e-6)
    cols = max(width - LABEL - 2, 10)
    lanes: dict[str, list[str | None]] = {}
    for step in timed:
        assert step.started_at is not None
        lane = lanes.setdefault(step.worker or "?", [None] * cols)
        first = int((step.started_at - start).total_seconds() / span * (cols - 1))
        last = int(((step.finished_at or now) - start).total_seconds() / span * (cols - 1))
        for col in range(first, max(first, last) + 1):
            lane[col] = step.status.value
    text = Text(f"{'worker':<{LABEL}}  0{'':>{cols - 2 - len(seconds_text(span))}}{seconds_text(span)}\n",
                style="dim")
    for worker in sorted(lanes):
        text.append(f"{clean(worker, lines=False)[:LABEL]:<{LABEL}}  ")
        for state in lanes[worker]:
            text.append("█" if state else "·", style=STATUS_STYLES.get(state or "", "dim"))
        text.append("\n")
    return text


class Timeline(Static):
    def show(self, steps: list[zart.StepRecord], now: datetime) -> None:
        self.update(draw(steps, self.size.width or 80, now))
