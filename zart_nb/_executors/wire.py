"""Both ends of a worker's socket and revoke pipe: ``multiprocessing.connection.Connection``'s framing
(a signed 4-byte big-endian length, ``-1`` then an 8-byte length above 2 GiB) on a raw descriptor, and
``wait`` for the driver's I/O thread (many connections at once).

Importing ``multiprocessing.connection`` costs ~10 ms (it pulls in ``multiprocessing``, ``tempfile``,
``shutil``...): on a worker, time the first step of a resumed run waits for; on the driver, time before
the first worker process of a fresh process can start.
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
        """Close the descriptor (once): a later call reads and writes ``-1`` (``OSError``), never a
        descriptor number the process reused meanwhile."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

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


def wait(objects: list[FdConnection | int], timeout: float | None) -> list[FdConnection | int]:
    """The connections (or raw descriptors) of ``objects`` with something to read, their end of stream
    or an error, within ``timeout`` seconds (None: no limit), as ``multiprocessing.connection.wait``.
    A connection closed meanwhile is left out, or reported (and its read fails): never waited on."""
    poller = select.poll()
    by_fd: dict[int, FdConnection | int] = {}
    for item in objects:
        fd = item if isinstance(item, int) else item.fileno()
        if fd >= 0:
            by_fd[fd] = item
            poller.register(fd, select.POLLIN)
    events = poller.poll(None if timeout is None else max(0.0, timeout) * 1000)
    return [by_fd[fd] for fd, _ in events if fd in by_fd]
