"""DuckDB, loaded when a journal opens (worker processes never load it).

Its compiled core (``_duckdb``) is imported directly when the installed release has one: the ``duckdb``
package's Python layer around it (the relational API, a version lookup through importlib.metadata)
adds ~80 ms to every cold start, and the journal uses none of it. Older releases ship only ``duckdb``.
"""
from __future__ import annotations

from types import ModuleType


def load() -> ModuleType:
    try:
        import _duckdb as module  # the same classes ``duckdb`` re-exports
    except ImportError:
        import duckdb as module  # type: ignore[no-redef]
    return module
