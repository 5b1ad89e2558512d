"""The worker's end of its socket and revoke pipe: ``multiprocessing.connection.Connection``'s framing
(a signed 4-byte big-endian length, ``-1`` then an 8-byte length above 2 GiB) on a raw descriptor.

The driver keeps using ``multiprocessing.connection`` (it waits on many connections at once). A worker
needs only send, receive and poll, and importing ``multiprocessing.connection`` costs a starting worker
~10 ms (it pulls in ``multiprocessing``, ``tempfile``, ``subprocess``...): time the first step of a
resumed run waits for.
"""
from __future__ import annotations

import os
import select
import struct

_SIZE = struct.Struct("!i")
_LONG_SIZE = struct.Struct("!Q")
_ONE_WRITE = 16384  # header and body in one write up to this size, as multiprocessing does


class FdConnection:
    """``send_bytes``/``recv_bytes``/``poll``/``close`` on descriptor ``fd``, wire-compatible with
    ``multiprocessing.connection.Connection``."""

    __slots__ = ("_fd", "_poller")

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._poller = select.poll()
        self._poller.register(fd, select.POLLIN)

    def fileno(self) -> int:
        return self._fd

    def send_bytes(self, data: bytes) -> None:
        size = len(data)
        if size > 0x7FFFFFFF:
            self._write(_SIZE.pack(-1) + _LONG_SIZE.pack(size))
            self._write(data)
        elif size > _ONE_WRITE:
            self._write(_SIZE.pack(size))
            self._write(data)
        else:
            self._write(_SIZE.pack(size) + data)

    def recv_bytes(self) -> bytes:
        """The next message; ``EOFError`` when the other end closed before one began."""
        (size,) = _SIZE.unpack(self._read(4, first=True))
        if size == -1:
            (size,) = _LONG_SIZE.unpack(self._read(8))
        return self._read(size)

    def poll(self, timeout: float = 0.0) -> bool:
        """Whether a message (or the end of the stream) is waiting, within ``timeout`` seconds."""
        return bool(self._poller.poll(timeout * 1000))

    def close(self) -> None:
        os.close(self._fd)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]

    def _read(self, size: int, first: bool = False) -> bytes:
        chunk = os.read(self._fd, size)
        if len(chunk) == size:
            return chunk
        chunks = [chunk]
        received = len(chunk)
        while received < size:
            if not chunk:
                if first and received == 0:
                    raise EOFError
                raise OSError("got end of file during message")
            chunk = os.read(self._fd, size - received)
            chunks.append(chunk)
            received += len(chunk)
        return b"".join(chunks)
