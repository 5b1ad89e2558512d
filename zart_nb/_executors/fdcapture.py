"""What a step writes to file descriptors 1 and 2 in a worker process: C code, ``os.write``, child
processes (``subprocess.run(["make"])``, ``os.system``). Python-level ``print`` is captured by
``capture`` before it reaches a descriptor; this catches the rest.

Installed once by the local pool's worker process, which runs one step at a time, so whatever reaches
its descriptors while a step runs is that step's. (The inline executor and Dask workers run several
steps at once in one process: there a descriptor's bytes could not be told apart, so they are left
alone.)

Descriptors 1 and 2 are pointed at two private (0600), nameless files opened ``O_APPEND``, not at pipes: a
write never blocks, so C code that writes a lot while holding the GIL cannot deadlock against the
thread that reads. The worker reads what is new when a step ends (two ``lseek`` calls when nothing
was written) and every ``POLL_SECONDS`` while it runs, so lines still stream live. Bytes written when
no step runs (the worker's own warnings) go on to the original descriptors.

Two rules keep every byte with its step (both were races, seen as a flaky test under load):
- the poll thread decides whose bytes it read *after* reading them (``self._target`` then): ``begin``
  sets the target before the step writes anything, in the same thread, so bytes a read finds that the
  step wrote are the step's, never handed to no one. ``begin`` takes no lock (a lock and a look for
  what came before the step cost ~7,000 instructions a step, 11% of a no-op step in the worker,
  callgrind), so bytes written between two steps (the worker's own warnings; a step's child still
  writing) that no poll collected go to the next step;
- a file is emptied (``ROTATE_BYTES``) only in ``end``, between steps: a writer appends while the poll
  thread reads, and ``ftruncate`` would drop whatever was appended after the read. So while one step
  runs its file grows by what it writes, and is emptied when it ends.
"""
from __future__ import annotations

import codecs
import fcntl
import os
import sys
import threading
from typing import cast

from .capture import Capture

POLL_SECONDS = 0.1
_CURRENT = object()  # _collect's target: whichever step runs once the bytes are read
ROTATE_BYTES = 1 << 20  # a file is emptied once this much was read from it


class _Stream:
    __slots__ = ("name", "fd", "file", "saved", "offset", "decoder")

    def __init__(self, name: str, fd: int) -> None:
        self.name = name
        self.fd = fd
        self.file = _private_file(name)
        # Appending: every process that shares the descriptor (a step's children) writes at the end.
        fcntl.fcntl(self.file, fcntl.F_SETFL, fcntl.fcntl(self.file, fcntl.F_GETFL) | os.O_APPEND)
        self.saved = os.dup(fd)
        self.offset = 0
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")


class FdCapture:
    """Routes descriptors 1 and 2 to the running step's :class:`Capture` (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._target: Capture | None = None
        self._streams: tuple[_Stream, ...] = ()

    def install(self) -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (AttributeError, OSError, ValueError):
                pass
        streams = []
        for name, fd in (("stdout", 1), ("stderr", 2)):
            stream = _Stream(name, fd)
            os.dup2(stream.file, fd)
            streams.append(stream)
        self._streams = tuple(streams)
        threading.Thread(target=self._poll, name="zart-worker-fds", daemon=True).start()

    def begin(self, capture: Capture) -> None:
        self._target = capture  # before the step writes: see the module docstring

    def end(self) -> None:
        """Hand what the step wrote to its capture; called before the capture closes."""
        with self._lock:
            self._collect(self._target)
            self._target = None
            self._rotate()

    def _poll(self) -> None:
        wake = threading.Event()
        while not wake.wait(POLL_SECONDS):
            with self._lock:
                self._collect(_CURRENT)

    def _rotate(self) -> None:
        """Empty a file that grew past ``ROTATE_BYTES`` (lock held, no step running, all of it read)."""
        for stream in self._streams:
            if stream.offset >= ROTATE_BYTES:
                os.ftruncate(stream.file, 0)
                stream.offset = 0

    def _collect(self, target: Capture | None | object) -> None:
        """Hand what is new in the files on: to ``target``, or (``_CURRENT``) to the step running once
        it was read (``None``: the original descriptors)."""
        for stream in self._streams:
            size = os.lseek(stream.file, 0, os.SEEK_END)  # the size; O_APPEND writes ignore the offset
            if size == stream.offset:
                continue
            if size < stream.offset:  # emptied under us (cannot happen: only this code truncates)
                stream.offset = 0
            data = os.pread(stream.file, size - stream.offset, stream.offset)
            stream.offset += len(data)
            to = self._target if target is _CURRENT else target
            if to is None:
                _write_all(stream.saved, data)
            else:
                text = stream.decoder.decode(data)
                if text:
                    cast(Capture, to).write(stream.name, text)


def _private_file(name: str) -> int:
    """A new 0600 file with no name: ``O_TMPFILE`` where the system has it (no ``tempfile`` import,
    ~4 ms of a worker's start), else ``mkstemp`` and unlink."""
    folder = os.environ.get("TMPDIR") or "/tmp"
    flags = getattr(os, "O_TMPFILE", 0)
    if flags:
        try:
            return os.open(folder, flags | os.O_RDWR, 0o600)
        except OSError:
            pass
    import tempfile

    handle, path = tempfile.mkstemp(prefix=f"zart-{name}-")  # 0600, created exclusively
    os.unlink(path)
    return handle


def _write_all(fd: int, data: bytes) -> None:
    try:
        while data:
            data = data[os.write(fd, data):]
    except OSError:
        pass


active: FdCapture | None = None


def install() -> FdCapture:
    """Capture this process's descriptors 1 and 2 from now on (a worker process calls this once)."""
    global active
    if active is None:
        active = FdCapture()
        active.install()
    return active
