"""Displaying the progress widget in the current cell (imports IPython.display and ipywidgets)."""
from __future__ import annotations

from collections.abc import Callable

from IPython.display import display

from .progress import Snapshot
from .widget import ProgressWidget


def widget_view(first: Snapshot) -> tuple[Callable[[Snapshot], None], Callable[[Snapshot], None]]:
    """Display a widget now; returns ``(update, finish)``. ``finish`` also rewrites the output's
    ``text/plain`` (what a saved notebook shows without the widget) to the final summary."""
    widget = ProgressWidget(first)
    handle = display(widget, display_id=True)

    def finish(snap: Snapshot) -> None:
        widget.update(snap)
        widget.resend()
        if handle is not None:
            handle.update(widget)

    return widget.update, finish
