"""By reference: a stored array or table passed to another step travels as its reference.

A step's output loaded from the value store (``_values``) and passed, unchanged, as another step's
argument travels as a ``StoredArg``: the worker loads the file itself (maps an array, reads a Parquet
table) as it unpickles the task's arguments, and the argument hashes as a ``StoredKey`` (its file's name,
and for a table its size and check: one per record that produced it), so a 200 MB argument is neither
pickled, sent, journaled nor hashed again, and a DataFrame passed to 10 steps is stored once.

"Unchanged" is checked, not assumed. An array is still its file's mapping with the same shape, dtype,
strides and address, and no page of that mapping was written: a written page of a private file mapping is
a copy, an anonymous page, which ``/proc/self/pagemap`` tells apart from the file's own (8 bytes a page of
this mapping alone, so a check costs the same however many other values the process has mapped; reading
/proc/self/smaps instead, as before, read every mapping's 20-odd lines for each argument: scheduling 600
stored arrays took 3.9 s, quadratic). Whether this kernel's pagemap says so is checked once, on a page
written for the purpose; where it does not, arrays travel by value. A pandas frame still has the manager,
axes and column arrays it was loaded with: its columns are Arrow's read-only memory shared with a hidden
origin (``_tables.shielded``), so pandas copies a column on its first write (a new array: seen here) and a
write through a column's own numpy array raises. A pyarrow Table is immutable. Anything else (another kind
of value, a polars frame, an array written to or reshaped in place, a system without /proc) travels by
value, as before.
"""
from __future__ import annotations

import functools
import mmap
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import _tables as tables
from . import _values as values

_PAGEMAP = "/proc/self/pagemap"
_ENTRY = 8  # bytes of a pagemap entry, one a page: its top byte says present (0x80), swapped (0x40), file page (0x20)
# The top bytes of a page not written: not present, or present as the file's own page (never swapped:
# only an anonymous page, a written copy, goes to swap).
_UNWRITTEN = bytes(top for top in range(256) if not top & 0x40 and (not top & 0x80 or top & 0x20))


@dataclass(frozen=True, slots=True)
class Mapped:
    """Where a loaded array lives: its file (``ref`` in ``folder``) mapped at ``[start, end)``."""

    folder: str
    ref: values.Ref
    start: int
    end: int
    layout: tuple[Any, ...]  # (shape, dtype, strides, data address) as loaded


@dataclass(frozen=True, slots=True)
class Held:
    """A loaded table (a pandas frame, a pyarrow Table) and its file (``ref`` in ``folder``); ``key``:
    what it hashes as when not its file (a workflow's table input: its input hash, ``_tableinput``)."""

    folder: str
    ref: values.Ref
    layout: tuple[Any, ...]  # tables.layout() as loaded
    key: StoredKey | None = None


Tracked = Mapped | Held


def _array_layout(value: Any) -> tuple[Any, ...]:
    return value.shape, value.dtype, value.strides, value.__array_interface__["data"][0]


def load_tracked(blob: bytes, journal_path: str | os.PathLike[str], folder: Path | None = None) -> \
        tuple[Any, Tracked | None]:
    """A journaled value (as ``_values.load``; ``folder``: its execution's store), with its origin when it
    may travel by reference: a numpy array that is its file's one buffer, a pandas frame or pyarrow Table
    read from Parquet."""
    loaded = values.load_with_origin(blob, journal_path, folder)
    value = loaded.value
    if loaded.ref is not None and loaded.ref.name.endswith(tables.SUFFIX):
        layout = tables.layout(value)
        return value, None if layout is None else Held(str(loaded.folder), loaded.ref, layout)
    kind = type(value)
    if loaded.ref is None or kind.__name__ != "ndarray" or kind.__module__ != "numpy" or len(loaded.buffers) != 1:
        return value, None
    if not _pagemap_tells_writes():
        return value, None  # a write could not be told: it travels by value
    offset, size = loaded.buffers[0]
    layout = _array_layout(value)
    start = layout[3] - offset
    if start % mmap.PAGESIZE or value.nbytes != size:
        return value, None
    return value, Mapped(str(loaded.folder), loaded.ref, start, start + loaded.size, layout)


def _written(mapped: Mapped) -> bool:
    """Whether a page of the mapping was written (copy-on-write made it an anonymous page). The caller
    holds the array, so the mapping is still there (its buffer keeps it)."""
    return _any_written(mapped.start, mapped.end)


def _any_written(start: int, end: int) -> bool:
    first = start // mmap.PAGESIZE
    size = (-(-end // mmap.PAGESIZE) - first) * _ENTRY
    entries = bytearray()
    fd = os.open(_PAGEMAP, os.O_RDONLY | os.O_CLOEXEC)
    try:
        while len(entries) < size:
            chunk = os.pread(fd, size - len(entries), first * _ENTRY + len(entries))
            if not chunk:
                return True  # the kernel said less than asked: not known unwritten
            entries += chunk
    finally:
        os.close(fd)
    return bool(entries[_ENTRY - 1::_ENTRY].translate(None, _UNWRITTEN))  # a top byte of a written page


@functools.cache
def _pagemap_tells_writes() -> bool:
    """Whether this kernel's pagemap shows a written private page as one (checked once per process, on a
    page of a private mapping of its own, before and after a write); without it an array travels by value."""
    try:
        page = mmap.mmap(-1, mmap.PAGESIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    except (OSError, ValueError, AttributeError):
        return False
    try:
        import numpy as np  # loaded already: only a numpy array is tracked

        view = np.frombuffer(page, dtype=np.uint8)
        address = view.__array_interface__["data"][0]
        before = _any_written(address, address + mmap.PAGESIZE)
        view[0] = 1
        after = _any_written(address, address + mmap.PAGESIZE)
        del view
        return not before and after
    except (OSError, ValueError):
        return False
    finally:
        page.close()


def unchanged(value: Any, mapped: Tracked) -> bool:
    """``value`` is still exactly its stored file's content."""
    try:
        if isinstance(mapped, Held):
            return tables.layout(value) == mapped.layout
        return _array_layout(value) == mapped.layout and not _written(mapped)
    except (OSError, ValueError, AttributeError):
        return False


@dataclass(frozen=True, slots=True)
class StoredKey:
    """What a by-reference argument hashes as: the name of its file (one per record that produced it;
    a table's file is rewritten in place by a new record of its step, so its size and check follow)."""

    name: str


class StoredArg:
    """A by-reference argument on its way to a worker, which loads it from the store as it unpickles
    the task's arguments (the store's absolute folder travels with it)."""

    __slots__ = ("folder", "blob")

    def __init__(self, folder: str, blob: bytes) -> None:
        self.folder = folder
        self.blob = blob

    def __reduce__(self) -> tuple[Any, ...]:
        return load_argument, (self.folder, self.blob)


def load_argument(folder: str, blob: bytes) -> Any:
    """A by-reference argument, in the worker: the stored value, mapped copy-on-write (from ``folder``,
    its execution's store: ``<journal>.values``, or its ``value_store=`` on a cluster's worker)."""
    path = Path(folder)
    return values.load(blob, path.with_name(path.name.removesuffix(".values")), path)


def key_of(ref: values.Ref) -> StoredKey:
    """What an argument loaded from ``ref`` hashes as."""
    return StoredKey(f"{ref.name}\t{ref.size}\t{ref.check}" if ref.check else ref.name)


def replace(args: tuple[Any, ...], kwargs: dict[str, Any], found: dict[int, tuple[Any, Tracked]]) -> \
        tuple[tuple[Any, ...], dict[str, Any], tuple[Any, ...], dict[str, Any]] | None:
    """``(args, kwargs)`` to send, then to hash, with each array of ``found`` (by id: a weak reference
    and its mapping) passed unchanged replaced by a ``StoredArg`` and a ``StoredKey``; ``None`` when
    no argument is one."""
    sent, hashed = list(args), list(args)
    sent_kw, hashed_kw = dict(kwargs), dict(kwargs)
    replaced = False
    for items, hashes in ((sent, hashed), (sent_kw, hashed_kw)):
        keys: Any = range(len(items)) if isinstance(items, list) else list(items)
        for index in keys:
            value = items[index]
            entry = found.get(id(value))
            if entry is None or entry[0]() is not value:
                continue
            mapped = entry[1]
            if not unchanged(value, mapped):
                continue  # written to since it was loaded: it travels by value
            items[index] = StoredArg(mapped.folder, values.encode_ref(mapped.ref))
            key = mapped.key if isinstance(mapped, Held) else None
            hashes[index] = key_of(mapped.ref) if key is None else key
            replaced = True
    return (tuple(sent), sent_kw, tuple(hashed), hashed_kw) if replaced else None
