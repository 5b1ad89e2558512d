"""Tabular values as Parquet: a pandas or polars DataFrame, or a pyarrow Table, returned by a step.

Every such output (whatever its size: so every table a workflow makes can be queried with SQL, at the
cost of one small fsynced file per table) is written by the worker that made it as one zstd-compressed
Parquet file in the value store (``_values`` names and checks it), and read back as the same kind of
value: pandas through the schema's pandas metadata (index, categoricals, time zones, nullable ints),
polars through ``polars.from_arrow``. Nothing here unpickles: Parquet is data. A large frame is
converted and written a slice of rows at a time, and read a column at a time (``_parquet``), so neither
side holds a second whole copy of it.

A value Parquet cannot hold (a column of mixed objects, column names that are not unique strings, a
MultiIndex of columns) or a process without pyarrow keeps the pickle; its preview says why. pyarrow,
pandas and polars are imported only when a table is met.
"""
from __future__ import annotations

import mmap
import os
from typing import Any

SUFFIX = ".parquet"
SCHEMA_CHARS = 600  # the schema's share of a preview
_KINDS = {("pandas", "DataFrame"): "pandas.DataFrame", ("polars", "DataFrame"): "polars.DataFrame",
          ("pyarrow", "Table"): "pyarrow.Table"}
KINDS = frozenset(_KINDS.values())
NAMES = frozenset(("DataFrame", "Table"))  # the worker's hot path tests a type's name against these first


def kind_of(value: Any) -> str | None:
    """``"pandas.DataFrame"``, ``"polars.DataFrame"``, ``"pyarrow.Table"`` or None (nothing imported)."""
    kind = type(value)
    return _KINDS.get((kind.__module__.partition(".")[0], kind.__name__))


def to_arrow(value: Any, kind: str) -> tuple[Any, str | None]:
    """``(pyarrow Table or _parquet.FrameSlices, None)``, or ``(None, why it stays a pickle)``."""
    try:
        import pyarrow  # noqa: F401  (whether it is installed; _parquet converts)
    except ImportError:
        return None, "pyarrow is not installed"
    from . import _parquet
    try:
        if kind == "pandas.DataFrame":
            columns = value.columns
            if columns.nlevels > 1:
                return None, "its columns are a MultiIndex"
            if not all(isinstance(name, str) for name in columns) or not columns.is_unique:
                return None, "its column names are not unique strings"
            return _parquet.frame_to_arrow(value), None  # a large frame: converted a slice at a time
        if kind == "polars.DataFrame":
            return value.to_arrow(), None
        return value, None
    except _parquet.Unconvertible as exc:
        return None, str(exc)[:200]
    except Exception as exc:  # a column of mixed objects: ArrowTypeError, ArrowInvalid, polars' errors
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]


def write(table: Any, path: str) -> None:
    """Write ``table`` (what :func:`to_arrow` gave) to ``path`` (created 0600 by the caller) as zstd
    Parquet, fsynced. Raises ``_parquet.Unconvertible`` when a slice of a large frame cannot be converted."""
    import pyarrow as pa

    from . import _parquet

    # Dictionary encoding only where it pays (categoricals, strings): on 5M floats and timestamps it
    # costs 0.13 s to write and 0.3 s to read back into pandas, for a larger file (measured, P10's frame).
    dictionary = [field.name for field in table.schema
                  if pa.types.is_dictionary(field.type) or pa.types.is_string(field.type)
                  or pa.types.is_large_string(field.type)]
    # Page checksums (a crc32 of each compressed page) let `zart gc --verify` scrub the content.
    _parquet.write(table, path, compression="zstd", use_dictionary=dictionary, write_page_checksum=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read(fd: int, size: int, kind: str) -> Any:
    """The table in the open file ``fd`` (checked by the caller) as a value of ``kind``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from . import _parquet

    proc = f"/proc/self/fd/{fd}"  # the checked file itself, read natively (a map of it read 2x slower)
    if os.path.exists(proc):
        source = pa.OSFile(proc)
    else:
        source = pa.BufferReader(pa.py_buffer(mmap.mmap(fd, size, access=mmap.ACCESS_READ)))
    with source:
        table = _parquet.read(pq.ParquetFile(source, pre_buffer=False, buffer_size=1 << 20))
    if kind == "pandas.DataFrame":  # column by column, freeing each (a peak of one frame, not two)
        return shielded(table.to_pandas(split_blocks=True, self_destruct=True))
    if kind == "polars.DataFrame":
        import polars as pl

        return pl.from_arrow(table)
    return table


def scrub(fd: int) -> None:
    """Decode every page of every column of the Parquet file open as ``fd`` (checked by the caller),
    verifying the pages' checksums where they have them; raises on damage."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    proc = f"/proc/self/fd/{fd}"
    source = pa.OSFile(proc) if os.path.exists(proc) else \
        pa.BufferReader(pa.py_buffer(mmap.mmap(fd, 0, access=mmap.ACCESS_READ)))
    with source:
        parquet = pq.ParquetFile(source, page_checksum_verification=True)
        for group in range(parquet.num_row_groups):
            parquet.read_row_group(group)


def shielded(frame: Any) -> Any:
    """A pandas frame the body can write to as to any other, though its columns are Arrow's read-only
    memory (zero-copy): a shallow copy sharing them with ``frame``, which it keeps alive. pandas'
    copy-on-write then copies a column on its first write (a new array, which ``_byref`` sees) instead
    of raising "assignment destination is read-only"; a write through a column's own numpy array
    (``df["x"].to_numpy()[0] = 1``) still raises: a stored table never changes unseen."""
    view = frame.copy(deep=False)
    object.__setattr__(view, "_zart_origin", frame)  # not a column: pandas' own setattr would warn
    return view


def _read_only(value: Any) -> bool:
    return kind_of(value) == "pandas.DataFrame" and any(
        not getattr(getattr(block.values, "flags", None), "writeable", True) for block in value._mgr.blocks)


def writable(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """A step's arguments with each pandas frame whose columns arrived read-only (a loaded table sent by
    value: numpy's pickle keeps the flag) :func:`shielded`, so the step writes to it as to any frame."""
    for value in args:  # the worker's hot path: one type name test per argument, no generator
        if type(value).__name__ == "DataFrame":
            break
    else:
        if not kwargs or all(type(value).__name__ != "DataFrame" for value in kwargs.values()):
            return args, kwargs
    return (tuple(shielded(a) if _read_only(a) else a for a in args),
            {k: shielded(a) if _read_only(a) else a for k, a in kwargs.items()})


def layout(value: Any) -> tuple[Any, ...] | None:
    """What changes whenever a loaded table does (``_byref``'s check that it is still its file): a pandas
    frame's manager, axes and column arrays (a write copies a column: see :func:`shielded`); a pyarrow
    Table is immutable. ``None`` for a kind this cannot tell (polars: it travels by value)."""
    kind = kind_of(value)
    if kind == "pandas.DataFrame":
        manager = value._mgr
        return (id(manager), tuple(id(axis) for axis in manager.axes),
                tuple(id(block.values) for block in manager.blocks))
    if kind == "pyarrow.Table":
        return ()
    return None


def _schema(value: Any, kind: str, table: Any) -> str:
    if kind == "pandas.DataFrame":
        fields = [f"{name}: {dtype}" for name, dtype in value.dtypes.items()]
    else:
        fields = [f"{field.name}: {field.type}" for field in table.schema]
    text = ", ".join(fields)
    return text if len(text) <= SCHEMA_CHARS else text[:SCHEMA_CHARS - 3] + "..."


def shape(value: Any) -> tuple[int, int]:
    if hasattr(value, "num_rows"):
        return value.num_rows, value.num_columns
    rows, columns = value.shape
    return int(rows), int(columns)


def sized(value: Any, kind: str) -> str:
    """A table named by kind and size: ``<pandas.DataFrame rows=5 columns=2>``."""
    rows, columns = shape(value)
    return f"<{kind} rows={rows:,} columns={columns}>"


def describe(value: Any, kind: str, table: Any, stored: str) -> str:
    """A table's preview: ``<pandas.DataFrame rows=5 columns=2> [stored as Parquet: 1.2 kB] a: int64, ...``."""
    return f"{sized(value, kind)} [{stored}] {_schema(value, kind, table)}"


def pickled_note(value: Any, kind: str, why: str) -> str:
    """What a table kept as a pickle shows instead (no schema: Parquet could not hold it)."""
    return f"{sized(value, kind)} [a pickle, not Parquet: {why}]"
