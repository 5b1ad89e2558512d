"""Where this process runs: in a Jupyter kernel or not, and whether progress is wanted."""
from __future__ import annotations

import os
import sys
from typing import Any

_OFF = ("0", "false", "no", "off")


def display_enabled(display: bool | None) -> bool:
    """``display=`` wins; otherwise ``$ZART_DISPLAY=0`` turns progress off."""
    if display is not None:
        return bool(display)
    return os.environ.get("ZART_DISPLAY", "").strip().lower() not in _OFF


def kernel_shell() -> Any:
    """The IPython shell of a running Jupyter kernel, or None (a script, a plain IPython terminal)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return None
    try:
        shell = ipython.get_ipython()
    except Exception:
        return None
    if shell is None or getattr(shell, "kernel", None) is None:
        return None
    return shell
