"""DuckDB, loaded when a journal opens (worker processes never load it).

Its compiled core (``_duckdb``) is imported directly when the installed release has one: the ``duckdb``
package's Python layer around it (the relational API, a version lookup through importlib.metadata)
adds ~80 ms to every cold start, and the journal uses none of it. Older releases ship only ``duckdb``.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from types import ModuleType

_on_load: list[Callable[[], None]] = []
_loaded = False


def load() -> ModuleType:
    global _loaded
    try:
        import _duckdb as module  # the same classes ``duckdb`` re-exports
    except ImportError:
        import duckdb as module  # type: ignore[no-redef]
    if not _loaded:
        _loaded = True
        for callback in _on_load:
            callback()
    return module


def on_load(callback: Callable[[], None]) -> None:
    """Call ``callback`` once DuckDB is imported (at once if it is already)."""
    _on_load.append(callback)
    if _loaded or "_duckdb" in sys.modules:
        load()
