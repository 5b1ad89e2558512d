"""``zart gc --verify`` and ``--compact``: a full scrub of a journal's value store, and a rewrite of the
journal file with only its live data.

Loading a stored value checks only what is cheap (owner, mode, size, the header's crc32, a Parquet file's
last 64 KiB): a crc32 of 200 MB costs 0.14 s here, as much as the whole load. The scrub does the rest,
without unpickling anything: it reads every byte of every file the journal points to (a bad sector or a
hole is an error), parses a value file's pickle opcode by opcode (``pickletools``: nothing runs) and
checks it asks for exactly the buffers the header lists, and decodes every page of every column of a
Parquet file (with their page checksums, written since this version). An array's raw bytes carry no
checksum of their own (one would cost every write 0.14 s per 200 MB): damage inside them that leaves
the file readable is not seen.
"""
from __future__ import annotations

import os
import pickletools
from dataclasses import dataclass
from pathlib import Path

from . import _tables as tables
from . import _values as values
from ._errors import JournalError, ValueLost, ValueStoreError
from ._journal import stores as sql
from ._runtime import runtime

CHUNK = 8 << 20  # bytes read at a time by the scrub


@dataclass(frozen=True, slots=True)
class ScrubReport:
    """What ``zart.scrub`` found: the referenced files it checked whole, and those that failed (with why)."""

    store: str
    checked: int
    bytes: int
    damaged: tuple[tuple[str, str], ...]  # (file relative to the store, what is wrong)

    @property
    def ok(self) -> bool:
        """True when no stored file was found damaged."""
        return not self.damaged

    def __str__(self) -> str:
        text = f"{self.store}: verified {self.checked} stored file(s), {values.size_text(self.bytes)}"
        if self.damaged:
            text += f"; {len(self.damaged)} damaged (their steps run again when next needed)"
        return text


@dataclass(frozen=True, slots=True)
class CompactReport:
    """What ``zart.compact`` did: the journal file's bytes (with its WAL) before and after."""

    journal: str
    before: int
    after: int

    def __str__(self) -> str:
        return (f"{self.journal}: compacted from {values.size_text(self.before)} to "
                f"{values.size_text(self.after)} ({values.size_text(max(0, self.before - self.after))} freed)")


def _read_all(fd: int, size: int) -> None:
    """Read every byte (an unreadable block is an OSError: EIO)."""
    buffer = bytearray(min(CHUNK, max(size, 1)))
    view = memoryview(buffer)
    at = 0
    while at < size:
        got = os.preadv(fd, [view[:min(CHUNK, size - at)]], at)
        if got <= 0:
            raise ValueLost(f"the stored file ends at {at:,} bytes, not {size:,}")
        at += got


def _scrub_value(folder: Path, ref: values.Ref) -> None:
    opened = values.open_checked(folder, ref)  # owner, mode, size, header checksum
    try:
        _read_all(opened.fd, opened.size)
        data = os.pread(opened.fd, opened.pickle_size, opened.pickle_at)
    finally:
        os.close(opened.fd)
    wanted = 0
    stopped = False
    try:
        for opcode, _, _ in pickletools.genops(data):
            if opcode.name == "NEXT_BUFFER":
                wanted += 1
            stopped = opcode.name == "STOP"
    except Exception as exc:  # genops raises ValueError and others on a damaged opcode stream
        raise ValueLost(f"the stored value {opened.path} has a damaged pickle: {exc}") from None
    if not stopped:
        raise ValueLost(f"the stored value {opened.path} has a pickle that does not end")
    if wanted != len(opened.buffers):
        raise ValueLost(f"the stored value {opened.path} has a pickle asking for {wanted} buffer(s); "
                        f"its header lists {len(opened.buffers)}")


def _scrub_table(folder: Path, ref: values.Ref) -> None:
    fd, path = values.open_table(folder, ref)  # owner, mode, size, the crc32 of its end
    try:
        _read_all(fd, ref.size)
        try:
            tables.scrub(fd)
        except Exception as exc:
            raise ValueLost(f"the stored table {path} fails its scrub: {type(exc).__name__}: {exc}") from None
    finally:
        os.close(fd)


def scrub(journal: str | os.PathLike[str] | None = None) -> ScrubReport:
    """Check every stored value ``journal`` points to, whole (see the module's docstring): nothing is
    unpickled, nothing is removed. A damaged one is listed; its step runs again when it is next needed.

    Refused (``JournalLocked``) while another process's engine holds the journal."""
    journal_ = runtime.journal(journal)
    if not journal_.path.exists():
        raise JournalError(journal_.path, "no journal file here")
    with journal_.hold():
        blobs = journal_.query(sql.reference_blobs)
    own = values.folder_for(journal_.path)
    refs = sorted({(store or "", values.decode_ref(blob)) for store, blob in blobs if values.is_ref(blob)})
    damaged: list[tuple[str, str]] = []
    total = 0
    for store, ref in refs:
        folder = Path(store) if store else own
        try:
            if ref.name.endswith(tables.SUFFIX):
                _scrub_table(folder, ref)
            else:
                _scrub_value(folder, ref)
        except (ValueLost, ValueStoreError, OSError) as exc:
            damaged.append((ref.name, str(exc)))
            continue
        total += ref.size
    others = sorted({store for store, _ in refs if store})
    return ScrubReport(", ".join([str(own), *others]), len(refs) - len(damaged), total, tuple(damaged))


def compact(journal: str | os.PathLike[str] | None = None) -> CompactReport:
    """Rewrite ``journal``'s file with only its live data: DuckDB's VACUUM does not give the space of
    deleted executions back. The copy is checked (each table's rows) and renamed over the file while the
    old one is locked. Refused (``JournalLocked``) while any engine, this process's too, holds it."""
    journal_ = runtime.journal(journal)
    if not journal_.path.exists():
        raise JournalError(journal_.path, "no journal file here")
    from ._journal import compact as rewrite

    before, after = rewrite.compact(journal_)
    return CompactReport(str(journal_.path), before, after)

