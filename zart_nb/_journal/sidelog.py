"""An append-only, fsynced log of finished steps, folded into the DuckDB journal in batches.

A DuckDB commit costs 1-2 ms; a sequential workflow would pay it once per step. Appending a framed
record to this file and ``fdatasync``-ing it costs ~0.25 ms and is just as durable, so results are
made durable here first and folded into DuckDB by a background writer. Each record carries a sequence
number and the journal stores the last folded one in the same transaction as the rows, so folding a
log again after a crash never duplicates a row.

Frame: ``u32 length | u32 crc32 | pickle([(seq, kind, row), ...])``, one frame per append. A torn
tail (the process died mid-write) fails its length or CRC check and is ignored: its steps had not
been reported as finished.
"""
from __future__ import annotations

import os
import pickle
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

_HEADER = struct.Struct("<II")


class SideLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def append(self, records: list[tuple[int, str, tuple]], header: tuple | None = None) -> None:
        """Append and fsync ``(seq, kind, row)`` records; durable when this returns.

        ``header`` is written first when the file is empty (it names the journal the log is for)."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if header is not None and os.fstat(self._fd).st_size == 0:
            records = [header, *records]
        body = pickle.dumps(records, 5)
        data = _HEADER.pack(len(body), zlib.crc32(body)) + body
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        (getattr(os, "fdatasync", None) or os.fsync)(self._fd)

    def read(self) -> Iterator[tuple[int, str, tuple]]:
        """The intact records of the file, in order (stops at a torn tail)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        offset = 0
        while offset + _HEADER.size <= len(data):
            length, crc = _HEADER.unpack_from(data, offset)
            body = data[offset + _HEADER.size : offset + _HEADER.size + length]
            if len(body) != length or zlib.crc32(body) != crc:
                return
            yield from pickle.loads(body)
            offset += _HEADER.size + length

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
