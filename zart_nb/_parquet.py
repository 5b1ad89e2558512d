"""Parquet files written and read without a second copy of the table in memory (``_tables`` uses these).

Writing: a pandas frame larger than one slice (``SLICE_BYTES`` of the frame's memory, at most
``pyarrow``'s default row group of ``ROW_GROUP_ROWS`` rows) is converted to Arrow a slice of rows at a
time, each slice written as a row group and dropped before the next: a column Arrow cannot share with
pandas (strings, a column of a 2-D block of the wrong order, booleans) is copied one slice at a time,
never whole beside the frame. The schema, the file's pandas metadata included (index, categoricals,
time zones, nullable ints), is that of the whole frame (``pa.Schema.from_pandas``: it infers each
column's type over all its rows, without converting them), so the file is the one a whole-frame
``Table.from_pandas`` would have written, row group for row group.

Reading: one column at a time; a fixed-width column without nulls (ints, floats, timestamps, dates,
durations) is decoded a row group at a time into one buffer of its final size, and Arrow's allocator
gives back what each step freed, so the process peaks near the table's own size, not at twice it
(measured on P10's 165 MB frame, above the imports: 246 MB for a whole-column read, 185 MB so).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

FILL_ROWS = 65_536  # rows of a fixed-width column decoded at a time on reading
SLICE_BYTES = 64 << 20  # a slice's share of a frame's memory (pandas' own count: memory_usage(deep=False))
ROW_GROUP_ROWS = 1 << 20  # pyarrow's default row group: P10's 5M-row frame keeps today's 5 row groups


class Unconvertible(Exception):
    """A slice of a frame Arrow could not convert (the caller keeps the frame as a pickle)."""


class FrameSlices:
    """A pandas frame to write as Parquet a slice at a time: its whole schema, then its slices as Tables.

    ``schema`` has what ``pa.Table.from_pandas(frame)`` would give the whole frame (its pandas metadata
    included); :meth:`tables` yields each slice converted with that schema, so every row group agrees."""

    __slots__ = ("frame", "rows", "schema")

    def __init__(self, frame: Any, schema: Any, rows: int) -> None:
        self.frame = frame
        self.schema = schema
        self.rows = rows  # of each slice

    def tables(self) -> Iterator[Any]:
        import pyarrow as pa

        frame, total = self.frame, len(self.frame)
        for start in range(0, total, self.rows):
            try:
                table = pa.Table.from_pandas(frame.iloc[start:start + self.rows], schema=self.schema,
                                             preserve_index=None)
            except (pa.ArrowException, ValueError, TypeError) as exc:
                raise Unconvertible(f"{type(exc).__name__}: {_why(exc)}") from exc
            yield table
            del table


def slice_rows(frame: Any) -> int:
    """Rows per slice for ``frame``: ``SLICE_BYTES`` of its memory, at most ``ROW_GROUP_ROWS``."""
    rows = len(frame)
    if rows == 0:
        return ROW_GROUP_ROWS
    per_row = max(1, int(frame.memory_usage(index=True, deep=False).sum()) // rows)
    return max(1, min(ROW_GROUP_ROWS, SLICE_BYTES // per_row))


def frame_to_arrow(frame: Any) -> Any:
    """A pyarrow Table of ``frame`` when it fits in one slice (converted now, as ``Table.from_pandas``),
    else a :class:`FrameSlices` (only its schema is worked out now). A frame Arrow cannot convert (a
    column of mixed objects) raises Arrow's error when it fits one slice, else :class:`Unconvertible`
    naming the column."""
    import pyarrow as pa

    rows = slice_rows(frame)
    if len(frame) <= rows:
        return pa.Table.from_pandas(frame)
    try:
        schema = pa.Schema.from_pandas(frame, preserve_index=None)
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise Unconvertible(f"{type(exc).__name__}: {_why(exc)} (column {_bad_column(frame)})") from exc
    # pyarrow infers an object column's type by converting it (one column at a time): give that back
    pa.default_memory_pool().release_unused()
    return FrameSlices(frame, schema, rows)


def _why(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


def _bad_column(frame: Any) -> str:
    """The first column whose type Arrow cannot infer (only when inferring the whole frame's failed)."""
    import pyarrow as pa

    for name in frame.columns:
        try:
            pa.Schema.from_pandas(frame[[name]], preserve_index=False)
        except Exception:
            return str(name)
    return "?"


def write(source: Any, path: str, **options: Any) -> None:
    """Write ``source`` (a pyarrow Table or :class:`FrameSlices`) to ``path`` with ``options``
    (``pyarrow.parquet.ParquetWriter``'s): a Table whole, a frame one slice (one row group) at a time.
    Raises :class:`Unconvertible` when a slice cannot be converted."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not isinstance(source, FrameSlices):
        pq.write_table(source, path, **options)
        return
    pool = pa.default_memory_pool()
    with pq.ParquetWriter(path, source.schema, **options) as writer:
        for table in source.tables():
            writer.write_table(table, row_group_size=source.rows)
            del table
            pool.release_unused()  # the slice's copies and encoding buffers, given back before the next


def read(parquet: Any) -> Any:
    """The whole table of ``parquet`` (a ``pyarrow.parquet.ParquetFile``), one column at a time. Names a
    column path could misread (nested types, dots) and repeated names are read whole."""
    import pyarrow as pa

    schema = parquet.schema_arrow
    names = schema.names
    if not names or len(set(names)) != len(names) or any("." in name for name in names) or \
            any(pa.types.is_nested(field.type) for field in schema) or not parquet.metadata.num_row_groups:
        return parquet.read()
    pool = pa.default_memory_pool()
    columns = []
    for index, field in enumerate(schema):
        columns.append(_column(parquet, index, field, pool))
        pool.release_unused()  # what decoding freed goes back now (mimalloc keeps it otherwise: +30%)
    return pa.Table.from_arrays(columns, schema=schema)


def _fixed_width(kind: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_timestamp(kind)
                or pa.types.is_date(kind) or pa.types.is_time(kind) or pa.types.is_duration(kind))


def _no_nulls(parquet: Any, index: int) -> bool:
    """Whether the footer's statistics say column ``index`` has no null in any row group."""
    metadata = parquet.metadata
    for group in range(metadata.num_row_groups):
        statistics = metadata.row_group(group).column(index).statistics
        if statistics is None or not statistics.has_null_count or statistics.null_count:
            return False
    return True


def _column(parquet: Any, index: int, field: Any, pool: Any) -> Any:
    """Column ``index`` as one Arrow array (fixed width, no nulls: decoded a batch of rows at a time into
    one buffer of its final size) or a chunked array of its row groups."""
    import pyarrow as pa

    name, groups = field.name, parquet.metadata.num_row_groups
    if _fixed_width(field.type) and _no_nulls(parquet, index):
        filled = _fill(parquet, name, field.type, pool)
        if filled is not None:
            return filled
    chunks = []
    for group in range(groups):
        chunks.extend(parquet.read_row_group(group, columns=[name]).column(0).chunks)
        pool.release_unused()
    return pa.chunked_array(chunks, type=field.type)


def _fill(parquet: Any, name: str, kind: Any, pool: Any) -> Any:
    """The column in one buffer, or ``None`` if a row group has nulls after all (statistics can lie).

    Decoded ``FILL_ROWS`` rows at a time, each batch copied into the column's buffer and freed: beside
    the column only a batch's values exist (0.5 MiB of float64), not a whole row group's (8 MiB a
    column per 1,048,576 rows). P10's 5M-row frame: the read's peak 6-10 MiB lower, as fast."""
    try:
        import numpy as np
    except ImportError:  # pyarrow alone: read as chunks
        return None
    import pyarrow as pa

    width = kind.bit_width // 8
    rows = parquet.metadata.num_rows
    out = np.empty(rows * width, dtype=np.uint8)
    at = 0
    for batch in parquet.iter_batches(batch_size=FILL_ROWS, columns=[name], use_threads=False):
        chunk = batch.column(0)
        size = len(chunk)
        if chunk.null_count or at + size > rows:
            return None
        out[at * width:(at + size) * width] = np.frombuffer(
            chunk.buffers()[1], dtype=np.uint8, count=size * width, offset=chunk.offset * width)
        at += size
    chunk = batch = None  # the last batch goes before the allocator gives it back
    pool.release_unused()
    if at != rows:
        return None
    return pa.Array.from_buffers(kind, rows, [None, pa.py_buffer(out)])
