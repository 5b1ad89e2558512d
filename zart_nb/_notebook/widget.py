"""The live progress widget (ipywidgets) shown under a cell that runs or starts a workflow.

Every update sets all traits inside ``hold_sync``, so one update is one comm message whatever
changed; the caller (``live.Live``) decides how often that happens (at most ~10 times a second).
"""
from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets

from .._status import ExecutionStatus
from .progress import Snapshot
from .render import GREY, counts_text, details_html, header_html


class ProgressWidget(widgets.VBox):  # type: ignore[misc]
    """A bar and one HTML block in a VBox (few models: creating each costs a comm message), whose
    ``text/plain`` is a stable one-line summary (saved notebooks and GitHub previews read well)."""

    def __init__(self, snap: Snapshot) -> None:
        self._summary = snap.summary()
        shared = widgets.Layout()
        self._text = widgets.HTML(layout=shared)
        self._bar = widgets.IntProgress(min=0, max=1, value=0, bar_style="info",
                                        layout=widgets.Layout(width="360px"))
        super().__init__([self._text, self._bar], layout=shared)
        self.update(snap)

    def __repr__(self) -> str:
        return self._summary

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict):
            bundle["text/plain"] = self._summary
        return bundle

    def resend(self) -> None:
        """Send the models' full state again (from the calling thread's cell)."""
        for model in (self._bar, self._bar.style, self._text):
            model.send_state()

    def update(self, snap: Snapshot) -> None:
        self._summary = snap.summary()
        with self.hold_sync():
            self._text.value = (f"<div>{header_html(snap)}</div><div>{html.escape(counts_text(snap))}</div>"
                                f"{details_html(snap)}")
            total = max(snap.total, 1)
            if snap.from_journal:
                self._bar.max, self._bar.value = 1, 1
            else:
                self._bar.max = total
                self._bar.value = min(snap.finished, total)
            if snap.done:
                if snap.status is ExecutionStatus.COMPLETED:
                    self._bar.max = self._bar.value = max(self._bar.value, 1)  # a workflow with no steps
                    self._bar.bar_style = "success"
                elif snap.status is ExecutionStatus.FAILED:
                    self._bar.bar_style = "danger"
                else:
                    self._bar.bar_style = ""
                    self._bar.style.bar_color = GREY
