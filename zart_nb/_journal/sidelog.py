"""An append-only, fsynced log of finished steps, folded into the DuckDB journal in batches.

A DuckDB commit costs 1-2 ms; a sequential workflow would pay it once per step. Appending a framed
record to this file and ``fdatasync``-ing it costs ~0.25 ms and is just as durable, so results are
made durable here first and folded into DuckDB by a background writer. Each record carries a sequence
number and the journal stores the last folded one in the same transaction as the rows, so folding a
log again after a crash never duplicates a row.

Frame: ``u32 length | u32 crc32 | body``, one frame per append; the body is a list of
``(seq, kind, row)`` whose values are only bytes, str, int, float, bool and None. It is written by a
pickler that refuses anything else and read by an unpickler that refuses every class, so a crafted log
can never run code (nor build any object but those plain values). The first record of the file names
the journal it belongs to and is checked before any later frame is decoded.

A torn tail (the process died mid-write), an empty frame or a zero-filled tail (what delayed allocation
can leave after a power cut) ends the log silently: its steps had not been reported as finished. A
damaged frame with an intact frame after it (bit rot) is not a tail: frames have no sync marker, so the
reader resynchronises on the next offset where a frame's checksum holds and its body decodes (a body
always begins with pickle's protocol-5 opcode, so only those offsets are tried) and keeps reading,
dropping any record whose sequence it has already passed. When only the length field was hit, the
damaged frame itself is recovered too: its body is the bytes up to the next intact frame, checked
against its stored checksum. The reader reports every damage with its offset, so the journal warns and
keeps the file aside as evidence.
"""
from __future__ import annotations

import contextlib
import io
import os
import pickle
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

_HEADER = struct.Struct("<II")


class Tag(StrEnum):
    """What a record of the log is (its ``kind``). Written as the plain one-letter value (the log holds
    only plain values) and read back as that str, which a member is equal to."""

    HEADER = "h"  # the first record: ``(journal_id,)``, the journal the log belongs to
    DEFINITION = "d"  # a ``DefinitionRow``: a step's or workflow's code, once per code hash
    SUPERSEDE = "x"  # ``(execution_id, step_key)``: its older records stop being current
    ATTEMPT = "a"  # an ``AttemptRow``: an attempt that failed (a retry follows, or the step failed)
    STEP = "s"  # a ``StepRow``: a step's record (completed, failed, ...)


Record = tuple[int, str, tuple[Any, ...]]  # (seq, kind: a Tag's value, row)


class _PlainPickler(pickle.Pickler):
    # Called only for objects that are not plain (None, bool, int, float, bytes, str, tuple, list,
    # dict, ...): those never reach the log.
    def reducer_override(self, obj: Any) -> Any:
        raise pickle.PicklingError(f"side-log records hold only plain values, not {type(obj).__name__}")


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"the side log holds only plain values; it names {module}.{name}")


def _dump(records: Sequence[Record]) -> bytes:
    buffer = io.BytesIO()
    _PlainPickler(buffer, 5).dump(records)
    return buffer.getvalue()


def _plain(value: Any) -> Any:
    """The plain value behind a subclass (a ``StrEnum`` member, a ``bytearray``, ...)."""
    if value is None or type(value) in (str, bytes, int, float, bool):
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass").decode("utf-8", "surrogatepass")
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise pickle.PicklingError(f"side-log records hold only plain values, not {type(value).__name__}")


def encode(records: Sequence[Record]) -> bytes:
    """The frame body of ``records``; values that subclass a plain type are written as that type."""
    try:
        return _dump(records)
    except pickle.PicklingError:  # rare: converted only then, the common path pays nothing
        return _dump([(int(seq), str(kind), tuple(_plain(value) for value in row))
                      for seq, kind, row in records])


def decode(body: bytes) -> list[Record]:
    """Plain values only; raises ``ValueError`` for anything else (never runs code)."""
    try:
        records = _PlainUnpickler(io.BytesIO(body)).load()
    except Exception as exc:  # UnpicklingError, EOFError, ... : all mean "not a frame we wrote"
        raise ValueError(f"undecodable frame: {exc}") from None
    if not isinstance(records, list) or not all(
            isinstance(r, tuple) and len(r) == 3 and isinstance(r[0], int) and isinstance(r[1], str)
            and isinstance(r[2], tuple) for r in records):
        raise ValueError("a frame that is not a list of (seq, kind, row) records")
    return records


def _frame_at(data: bytes, offset: int) -> tuple[int, list[Record]] | str:
    """``(end, records)`` of the intact frame at ``offset``, or what is wrong with it."""
    length, crc = _HEADER.unpack_from(data, offset)
    end = offset + _HEADER.size + length
    body = data[offset + _HEADER.size : end]
    if length == 0:
        return "an empty frame"
    if len(body) != length:
        return "a frame cut short"
    if zlib.crc32(body) != crc:
        return "a frame failing its checksum"
    try:
        return end, decode(body)
    except ValueError as exc:
        return str(exc)


_BODY_START = b"\x80\x05"  # pickle's PROTO 5: the first bytes of every body we write


def _next_frame(data: bytes, start: int) -> tuple[int, int, list[Record]] | None:
    """The first intact frame at or after ``start``: ``(offset, end, records)``."""
    search = start + _HEADER.size
    while True:
        found = data.find(_BODY_START, search)
        if found < 0:
            return None
        candidate = _frame_at(data, found - _HEADER.size)
        if not isinstance(candidate, str):
            return found - _HEADER.size, *candidate
        search = found + 1


def _recover(data: bytes, offset: int, cut_to: int) -> tuple[int, list[Record]] | None:
    """The frame at ``offset`` whose length field alone was damaged: its body runs up to ``cut_to``
    (the next intact frame, or the end of the file less a zero-filled tail) and its stored checksum
    holds for it."""
    crc = _HEADER.unpack_from(data, offset)[1]
    start = offset + _HEADER.size
    body = data[start:cut_to]
    for candidate in (body, body.rstrip(b"\0")):
        if candidate and zlib.crc32(candidate) == crc:
            try:
                return start + len(candidate), decode(candidate)
            except ValueError:
                return None
    return None


@dataclass
class LogContents:
    """What a read of the log found."""

    records: list[Record] = field(default_factory=list)
    header: tuple[Any, ...] | None = None  # the row of the first record (Tag.HEADER: (journal_id,))
    foreign: bool = False  # the log names another journal: nothing after the header was decoded
    damage: str | None = None  # damaged frames that were not a torn tail: what was wrong, where


class SideLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def append(self, records: Sequence[Record], header: Record | None = None) -> None:
        """Append and fsync ``(seq, kind, row)`` records; durable when this returns.

        ``header`` is written first when the file is empty (it names the journal the log is for)."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        if header is not None and os.fstat(self._fd).st_size == 0:
            records = [header, *records]
        body = encode(records)
        data = _HEADER.pack(len(body), zlib.crc32(body)) + body
        view = memoryview(data)
        written = 0
        try:
            while view:
                count = os.write(self._fd, view)
                view = view[count:]
                written += count
            (getattr(os, "fdatasync", None) or os.fsync)(self._fd)
        except OSError:
            if written:  # a partial frame (disk full) must not sit in front of the next appends
                size = os.fstat(self._fd).st_size
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, size - written)
            raise

    def read(self, header: Record | None = None) -> LogContents:
        """The intact records of the file, in order, past any damaged frame, up to a torn tail.

        With ``header``, the log must begin with that record; otherwise it is ``foreign`` and no
        other frame is decoded."""
        contents = LogContents()
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return contents
        damages: list[str] = []
        last_seq = -1
        offset = 0
        while offset + _HEADER.size <= len(data):
            found = _frame_at(data, offset)
            if isinstance(found, str):
                problem = found
                following = _next_frame(data, offset + 1)
                cut_to = following[0] if following is not None else len(data)
                recovered = _recover(data, offset, cut_to)
                where = f"at byte {offset} of {len(data)}"
                if recovered is not None:
                    end, records = recovered
                    damages.append(f"{problem} {where}: only its length field was damaged, its "
                                   f"{len(records)} records were recovered by their checksum")
                elif following is None:
                    # Nothing intact follows: a torn or zero-filled tail, unless a whole frame failed
                    # with data after it (bit rot in the last frame).
                    length = _HEADER.unpack_from(data, offset)[0]
                    after = data[offset + _HEADER.size + length:] if length else data[offset + _HEADER.size:]
                    complete = offset + _HEADER.size + length <= len(data)
                    if complete and (after.strip(b"\0") or problem.startswith(("undecodable", "a frame that"))):
                        damages.append(f"{problem} {where}; nothing intact after it")
                    break
                else:
                    damages.append(f"{problem} {where}: resynchronised at byte {cut_to}, "
                                   f"{cut_to - offset} bytes cut")
                    offset = cut_to
                    continue
            else:
                end, records = found
            if offset == 0:
                first = records[0] if records else None
                if header is not None and (first is None or first[1:] != header[1:]):
                    contents.foreign = True
                    return contents
                if first is not None and first[1] == Tag.HEADER:
                    contents.header = first[2]
                    last_seq = max(last_seq, first[0])
                    records = records[1:]
            elif header is not None and contents.header is None:
                # the first frame was lost: nothing proves the rest belongs to this journal
                damages.append("the first frame, which names the journal, is lost: nothing after it is used")
                break
            for record in records:
                if record[0] > last_seq:  # a resynchronisation never yields a record twice
                    contents.records.append(record)
                    last_seq = record[0]
            offset = end
        contents.damage = "; ".join(damages) or None
        return contents

    def truncate(self) -> None:
        """Empty the log (everything in it has been folded into the journal)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
        elif self.path.exists():
            with open(self.path, "r+b") as handle:
                handle.truncate(0)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
