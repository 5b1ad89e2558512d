"""What a surface knows of a stored value without loading it.

A completed step whose output went to the value store (``_values``) is journaled as a small reference:
its file, size and kind. :class:`StoredValue` is that reference as a typed record, read like any other
record (from the journal file, or through a live engine's monitor: never the journal's pickles), and
:func:`peek` adds what its file says: for a table, the Parquet footer's schema and row count and its
first rows, read with pyarrow from the file itself (data, never a pickle), after the store's checks
(owner, mode, size, the crc32 of its end). An array's dtype and shape are in the step's output preview,
made by the worker that stored it (the value file's pickle is never opened to read them).
"""
from __future__ import annotations

import mmap
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

HEAD_ROWS = 5  # rows a peek reads by default
CELL_CHARS = 40  # a first-rows cell's text is cut here


@dataclass(frozen=True, slots=True)
class StoredValue:
    """A completed step's output kept in the value store (``<journal>.values/``, or ``store``), or an
    execution's table input or output (``step_key`` ``workflow:input``, ``workflow:output``).

    ``file`` is relative to the store (``store``: its execution's ``value_store=`` folder; None: the
    journal's own) (``tables/<execution>/<key>.parquet`` for a table, a ``.zv`` file
    otherwise), ``size`` its bytes, ``kind`` the value's type (``pandas.DataFrame``, ``numpy.ndarray``,
    ...). ``rows``, ``columns`` (``(name, type)`` pairs) and ``head`` (the first rows, each cell as text)
    are filled by :func:`zart.stored <zart_nb.stored>` for a table; ``note`` says why they are not (the
    file is missing or fails its check). ``step`` is the step's name (``load-{region}`` for the key
    ``load-eu``; None for a workflow's own input and output, and when only the store's files were read)."""

    execution_id: str
    step_key: str
    file: str
    size: int
    kind: str
    check: str = ""
    rows: int | None = None
    columns: tuple[tuple[str, str], ...] = ()
    head: tuple[tuple[str, ...], ...] = ()
    note: str | None = None
    store: str | None = None
    step: str | None = None  # the step's name (``load-{region}``, ``fetch``); None for a workflow's own value

    @property
    def is_table(self) -> bool:
        """Whether the value is stored as Parquet (a DataFrame or a pyarrow Table)."""
        return self.file.endswith(".parquet")

    @property
    def size_text(self) -> str:
        """The file's size for people (``"12.0 MiB"``)."""
        from ._values import size_text

        return size_text(self.size)

    def peek(self, journal: str | os.PathLike[str], rows: int = HEAD_ROWS) -> StoredValue:
        """This record with its table's schema, row count and first ``rows`` rows, read from its Parquet
        file in the store of ``journal`` (the journal file's path); nothing is unpickled. A value that is
        not a table comes back as it is; a missing or damaged file, with ``note`` saying so."""
        return peek(self, journal, rows)

    def summary(self) -> str:
        """One line: ``pandas.DataFrame, 1.2 MB Parquet, 5,000,000 rows x 5 columns``."""
        if not self.is_table:
            return f"{self.kind}, {self.size_text} ({self.file})"
        shape = f", {self.rows:,} rows x {len(self.columns)} columns" if self.rows is not None else ""
        return f"{self.kind}, {self.size_text} Parquet{shape}" + (f" ({self.note})" if self.note else "")

    def describe(self, preview: str | None = None) -> list[str]:
        """Text lines: the summary, then a table's schema and first rows (after :meth:`peek`), or an
        array's dtype and shape (its step's output ``preview``)."""
        return lines(self, preview)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready object of the fields (``zart show --json``)."""
        return {"execution_id": self.execution_id, "step_key": self.step_key, "file": self.file, "size": self.size,
                "kind": self.kind, "table": self.is_table, "rows": self.rows,
                "columns": [list(column) for column in self.columns], "head": [list(row) for row in self.head],
                "note": self.note, "store": self.store, "step": self.step}


def from_blob(execution_id: str, step_key: str, blob: bytes, store: str | None = None,
              step: str | None = None) -> StoredValue | None:
    """The record of a journaled output blob when it is a value store reference (else None); ``store``:
    its execution's value store, when not the journal's own; ``step``: the step's name."""
    from . import _values as values

    if not values.is_ref(blob):
        return None
    ref = values.decode_ref(blob)
    return StoredValue(execution_id, step_key, ref.name, ref.size, ref.kind, ref.check, store=store, step=step)


def folder_of(stored: StoredValue, journal_path: str | os.PathLike[str]) -> Path:
    """The folder of the store ``stored`` is in: its execution's ``value_store=``, else the journal's own."""
    from . import _values as values

    return Path(stored.store) if stored.store else values.folder_for(Path(journal_path).resolve())


def ref_of(stored: StoredValue) -> Any:
    """The store's own reference (``_values.Ref``) of a record."""
    from . import _values as values

    return values.Ref(stored.file, stored.size, stored.kind, stored.check)


def read(reader: Any, execution_id: str | None = None, step_key: str | None = None, *,
         tables_only: bool = False) -> list[StoredValue]:
    """``reader.stored_values(...)``, or ``[]`` from a reader that cannot list them (an engine of an
    older zart_nb answering through its monitor): the surfaces then show the previews alone."""
    from ._errors import MonitorError

    try:
        found: list[StoredValue] = reader.stored_values(execution_id, step_key, tables_only=tables_only)
    except (NotImplementedError, MonitorError):
        return []
    return found


def quote_name(name: str) -> str:
    """A view's name (``<execution id>/<step key>``) as SQL writes it: in double quotes, a double quote
    doubled (``zart.sql``'s views are made with it)."""
    return '"' + name.replace('"', '""') + '"'


def by_step(stored: list[StoredValue], order: list[str] | None = None) -> list[list[StoredValue]]:
    """``stored`` (in ``order`` of step keys when given: the steps' call order; an execution's input first,
    its output last) grouped by step: the keys of one step (a fan-out's) together, where the first of them
    stands; a value of no known step (a workflow's own, a listing from the files) alone. The surfaces show
    each group's first value whole and the others in one line (:func:`others_line`)."""
    from ._values import INPUT_KEY

    if order is not None:
        at = {key: index for index, key in enumerate(order)}
        stored = sorted(stored, key=lambda value: at.get(value.step_key, -1 if value.step_key == INPUT_KEY
                                                         else len(at)))
    groups: list[list[StoredValue]] = []
    of_step: dict[tuple[str, str], list[StoredValue]] = {}
    for value in stored:
        if value.step is None:
            groups.append([value])
            continue
        group = of_step.get((value.execution_id, value.step))
        if group is None:
            group = of_step[(value.execution_id, value.step)] = []
            groups.append(group)
        group.append(value)
    return groups


def others_line(group: list[StoredValue], *, python: bool = False, in_all: int | None = None) -> str:
    """One line for the values of a step after its first: how many, their keys (the first and the last),
    their size, and for tables the SQL view that unites them all (a ``zart sql`` command, or with
    ``python`` a ``zart.sql`` call). ``in_all``: how many values the step has in the execution when
    ``group`` is a page's part of them (the view unites them all)."""
    from ._values import size_text

    rest = group[1:]
    total = max(in_all or 0, len(group))
    keys = rest[0].step_key if len(rest) == 1 else f"{rest[0].step_key} ... {rest[-1].step_key}"
    here = " on this page" if total > len(group) else ""
    line = (f"... and {len(rest)} more of step {group[0].step or ''!r}{here} ({keys}): "
            f"{', '.join(sorted({value.kind for value in rest}))}, {size_text(sum(value.size for value in rest))}")
    if all(value.is_table for value in group):
        view = quote_name(f"{group[0].execution_id}/{group[0].step}")
        query = f"select * from {view}"
        line += f"; all {total} in SQL: " + (f"zart.sql('{query}')" if python else f"zart sql '{query}'")
    return line


def counts_by_step(stored: list[StoredValue]) -> dict[tuple[str, str | None], int]:
    """How many stored values each step (``(execution id, step name)``) has: what a page of them is part of."""
    return {(group[0].execution_id, group[0].step): len(group) for group in by_step(stored)
            if group[0].step is not None}


def lines(stored: StoredValue, preview: str | None = None) -> list[str]:
    """A stored value as text lines (``zart show``, zart-tui): its summary, then a table's schema and
    first rows, or an array's dtype and shape (its step's ``preview``)."""
    out = [stored.summary()]
    if stored.is_table and stored.columns:
        out += head_lines(stored)
    elif preview:
        out.append(preview)
    return out


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    text = text.replace("\n", " ")
    return text if len(text) <= CELL_CHARS else text[:CELL_CHARS - 3] + "..."


def peek(stored: StoredValue, journal_path: str | os.PathLike[str], rows: int = HEAD_ROWS) -> StoredValue:
    """``stored`` with its table's schema, row count and first ``rows`` rows read from its Parquet file
    (checked first); a value that is not a table is returned as it is. Never unpickles. A missing,
    refused or damaged file gives the record back with ``note`` saying why."""
    if not stored.is_table:
        return stored
    from . import _values as values
    from ._errors import ValueLost, ValueStoreError

    folder = folder_of(stored, journal_path)
    try:
        fd, path = values.open_table(folder, ref_of(stored))
    except (ValueLost, ValueStoreError) as exc:
        return replace(stored, note=str(exc))
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        os.close(fd)
        return replace(stored, note="pyarrow is not installed: its schema cannot be read")
    try:
        proc = f"/proc/self/fd/{fd}"  # the checked file itself (as _tables.read)
        with pa.OSFile(proc) if os.path.exists(proc) else \
                pa.BufferReader(pa.py_buffer(mmap.mmap(fd, stored.size, access=mmap.ACCESS_READ))) as source:
            parquet = pq.ParquetFile(source)
            schema = parquet.schema_arrow
            index = _index_columns(schema)
            columns = tuple((field.name, str(field.type)) for field in schema if field.name not in index)
            head: tuple[tuple[str, ...], ...] = ()
            if rows > 0 and parquet.metadata.num_row_groups:
                names = [name for name, _ in columns]
                batch = next(parquet.iter_batches(batch_size=rows, columns=names), None)
                if batch is not None:
                    cells = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
                    head = tuple(tuple(_cell(column[r]) for column in cells) for r in range(batch.num_rows))
            return replace(stored, rows=parquet.metadata.num_rows, columns=columns, head=head)
    except Exception as exc:  # a file that passed the checks but pyarrow cannot read
        return replace(stored, note=f"the stored table {path} cannot be read: {type(exc).__name__}: {exc}")
    finally:
        os.close(fd)


def _index_columns(schema: Any) -> set[str]:
    """pandas' index columns kept as data (``__index_level_0__``): left out of what a peek shows."""
    return {field.name for field in schema if field.name.startswith("__index_level_")}


def head_lines(stored: StoredValue) -> list[str]:
    """A table's schema and first rows as aligned text lines (the CLI's and the TUI's)."""
    lines = [f"schema: {', '.join(f'{name}: {kind}' for name, kind in stored.columns)}"]
    if stored.head:
        names = [name for name, _ in stored.columns]
        widths = [max(len(name), *(len(row[i]) for row in stored.head)) for i, name in enumerate(names)]
        lines.append("  ".join(name.ljust(width) for name, width in zip(names, widths, strict=True)).rstrip())
        lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                  for row in stored.head]
        if stored.rows is not None and stored.rows > len(stored.head):
            lines.append(f"... {stored.rows - len(stored.head):,} more rows")
    return lines
