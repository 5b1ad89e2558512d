"""A workflow's table input: a pandas or polars DataFrame or a pyarrow Table given to ``zart.run``.

It is stored as a Parquet file of its execution's value store under the key ``workflow:input``
(``tables/<execution id>/workflow:input.parquet``), as the workflow's table output is under
``workflow:output``, written once (a run with the same input hash keeps the file: ``_values.kept``; a
run with another input writes it beside the journaled one: ``_values.input_table_name``).
The body receives it as read back from that file, on the first run as on a replay or a resume, as a
step's table output is received: the same kind of value with the same dtypes and index every time,
written to the same way (a pandas frame copies a column on its first write: ``_tables.shielded``), and
passed to a step unchanged it travels by reference (``_byref``), hashed as the input it is (its input
hash), not as its file: the steps that take it are reused by a resume as by a re-run in the same
process, and by a fork (which writes the input to a file of its own).

A resume (``zart resume``, a control action, ``zart serve`` taking over) loads the input from the
journal. The loaded frame does not pickle to the bytes the caller's frame did (its columns are one
block each, Arrow's memory), so its hash is not recomputed: the value is remembered, weakly, with the
hash journaled for it (:func:`journaled_hash`), for as long as it is the file's content unchanged. A
polars frame, whose changes in place cannot be told (``_tables.layout``), is remembered until its first
:func:`journaled_hash`: the resume's own fingerprint, before any code has seen it (its nulls' slots pickle
to other bytes once read back, so hashed again it would read as another input).
"""
from __future__ import annotations

import dataclasses
import functools
import threading
import weakref
from typing import TYPE_CHECKING, Any

from . import _byref as byref
from . import _stores as stores
from . import _tables as tables
from . import _values as values

if TYPE_CHECKING:
    from ._journal.journal import Journal

# id -> (a weak reference to the loaded input, its file (None: remembered for one look), its journaled input hash)
_loaded: dict[int, tuple[weakref.ref[Any], byref.Held | None, str]] = {}
_lock = threading.Lock()


def is_table(blob: bytes | None) -> bool:
    """Whether a journaled input is a reference to a Parquet file (not a pickle, not a value file)."""
    return blob is not None and values.is_ref(blob) and values.decode_ref(blob).name.endswith(tables.SUFFIX)


def load(journal: Journal, execution_id: str, blob: bytes, input_hash: str) -> Any:
    """The journaled input of ``execution_id`` (what a resume or a control action runs it with): a table
    read from its Parquet file and remembered with ``input_hash``, anything else as ``_stores.load``."""
    if not is_table(blob):
        return stores.load(journal, execution_id, blob)
    folder = stores.folder(journal.path, stores.of(journal, execution_id))
    value, held = byref.load_tracked(blob, journal.path, folder)
    if isinstance(held, byref.Held) or tables.kind_of(value) == "polars.DataFrame":
        key = id(value)
        with _lock:
            _loaded[key] = (weakref.ref(value, functools.partial(_forget, key)),
                            held if isinstance(held, byref.Held) else None, input_hash)
    return value


def _forget(key: int, gone: weakref.ref[Any]) -> None:
    with _lock:
        entry = _loaded.get(key)
        if entry is not None and entry[0] is gone:
            del _loaded[key]


def _entry(value: Any, *, look: bool = False) -> tuple[byref.Held | None, str] | None:
    """What :func:`load` remembered for ``value``; ``look``: a fingerprint's look, which takes a value
    remembered for one look (any other caller finds nothing for it)."""
    with _lock:
        entry = _loaded.get(id(value))
        if entry is not None and entry[1] is None and entry[0]() is value:
            if not look:
                return None
            del _loaded[id(value)]  # one look only: later changes to it could not be seen
            return None, entry[2]
    if entry is None or entry[0]() is not value or entry[1] is None or not byref.unchanged(value, entry[1]):
        return None
    return entry[1], entry[2]


def journaled_hash(value: Any) -> str | None:
    """The input hash journaled for ``value`` when it is an input :func:`load` read and it is still its
    file's content (a pandas frame not written to since); None otherwise (hash the value itself)."""
    if type(value).__name__ not in tables.NAMES:  # the hot path of every run: one name test
        return None
    found = _entry(value, look=True)
    return None if found is None else found[1]


def held(tracked: byref.Held, input_hash: str) -> byref.Held:
    """``tracked`` (the input's file) hashing as the input it holds, not as its file: a step that took it
    is reused by every run of the same input (a fork's, which writes a file of its own, too)."""
    return dataclasses.replace(tracked, key=byref.StoredKey(f"{values.INPUT_KEY}\t{input_hash}"))


def loaded(value: Any, blob: bytes) -> byref.Held | None:
    """The file ``value`` was read from when it is the input :func:`load` read from ``blob``'s file and
    is unchanged (a run then gives the body this value rather than reading the file a second time)."""
    found = _entry(value)
    return None if found is None or found[0] is None or found[0].ref != values.decode_ref(blob) else found[0]

