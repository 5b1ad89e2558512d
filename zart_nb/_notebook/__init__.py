"""The notebook surface: the live progress widget, the plain-text progress line, ``zart.show``.

The only package that imports ipywidgets and IPython, and only once a kernel is known to be running
(``IPython`` already imported, with a kernel): scripts never load either.
"""
from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

from .kernel import display_enabled, kernel_shell

if TYPE_CHECKING:
    from .._handles import Execution
    from .live import Live

__all__ = ["display_enabled", "follow", "kernel_shell"]

logger = logging.getLogger("zart_nb")

def follow(execution: Execution, workflow: str, display: bool | None, background: bool) -> Live | None:
    """Show the progress of ``execution`` where the caller runs: in a kernel, a widget (unless
    display is off) and the steps' printed lines in this cell; on a terminal, a progress line on
    stderr. Returns the controller (``close()`` ends it), or None: steps' lines then go to this
    process's stdout/stderr as they arrive."""
    show = display_enabled(display)
    if kernel_shell() is not None:
        from .live import Live
        from .progress import Tracker
        from .tracebacks import install

        install()
        tracker = Tracker(execution, workflow)
        opener = None
        if show:
            try:
                from .show_live import widget_view
            except ImportError:
                logger.info("zart: install ipywidgets (pip install 'zart_nb[notebook]') for live progress")
            else:
                opener = lambda: widget_view(tracker.snapshot())  # noqa: E731
        if background and opener is not None:
            # start() returns at once: the widget must be displayed before the cell ends (output
            # that arrives after it is dropped). A blocking run displays it from its thread.
            update, finish = opener()
            return Live(tracker, update, finish, background)
        return Live(tracker, None, None, background, opener=opener)
    if not show:
        return None
    stream = sys.stderr
    try:
        tty = stream is not None and stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    if not tty:
        return None
    from .live import Live
    from .progress import Tracker
    from .text import TextProgress

    text = TextProgress(stream)
    return Live(Tracker(execution, workflow), text.update, text.finish, background, before_output=text.clear)
