"""Importing in the driver, ahead of a reply, the module a step's output will need.

A step that returns a large value (a numpy array, a frame) leaves its worker's reply to wait while the
value is pickled, written to the value store and fsynced; the driver then loads it, and unpickling it
imports the value's module (numpy: ~0.1 s) only then, after the worker is done. So the worker names the
module of its output's type (``WireImports``) as the step returns, once per type, and the pool imports it
here on a thread of its own while the worker writes. What is imported is exactly what loading the value
imports (pickle's ``find_class`` imports the class's ``__module__``); no pickle is read, nothing else runs.

Measured (P9: a step returning a 200 MB float64 array, the driver mapping it; bench/README.md): the
driver's numpy import, ~0.1 s, left the critical path.
"""
from __future__ import annotations

import importlib
import logging
import sys
import threading

from .base import NOT_IMPORTED_AHEAD

logger = logging.getLogger("zart_nb")

THREAD_NAME = "zart-import-ahead"


def wanted(module: str) -> bool:
    """A module name worth importing ahead: dotted identifiers, not yet imported, not builtins or __main__."""
    return (module not in sys.modules and module not in NOT_IMPORTED_AHEAD and len(module) < 256
            and all(part.isidentifier() for part in module.split(".")))


def start(modules: list[str]) -> list[str]:
    """Import ``modules`` (those still ``wanted``) on a daemon thread; returns the names it imports."""
    names = [name for name in dict.fromkeys(modules) if wanted(name)]
    if names:
        threading.Thread(target=_import, args=(names,), name=THREAD_NAME, daemon=True).start()
    return names


def _import(names: list[str]) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except BaseException:  # noqa: BLE001 - loading the value will import it again and report what fails
            logger.debug("zart: importing %s ahead of a step's output failed", name, exc_info=True)
