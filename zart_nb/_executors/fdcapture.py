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
  callgrind);
- a file is emptied (``ROTATE_BYTES``) only in ``end``, between steps: a writer appends while the poll
  thread reads, and ``ftruncate`` would drop whatever was appended after the read. While a step runs,
  the disk space of what was read is given back instead (``fallocate`` punching a hole: the size stays,
  appends go on at the end, nothing unread is touched), every ``PUNCH_BYTES``.

Bounded on disk and in memory, whatever a step writes: files are read ``READ_BYTES`` at a time; a backlog
of more than ``BACKLOG_BYTES`` (a writer faster than the reader) is read only at its two ends, the count
of bytes between handed to the capture (``Capture.skipped``); the poll comes every ``BUSY_POLL_SECONDS``
while a step writes a lot. A file holds about ``BACKLOG_BYTES`` plus what the step writes between two
polls: 51 MiB at most for a step writing 4 GiB at 3 GB/s (page cache), once the first poll found it
busy; before that, up to ``POLL_SECONDS`` of writing (444 MiB in that run). (Before these bounds, a
step writing 1 GiB took 1 GiB of disk, 1.9 GB of memory in the worker and 3.7 GB in the driver; now
0.4 GiB for a moment, 63 MB and 84 MB.) What the capture keeps is bounded in ``capture``.

A step's child process can outlive the step (``subprocess.Popen`` of something slow, ``cmd &``) and
keeps writing to the descriptors it inherited. Those bytes are never the next step's: a step that
started a process (seen by an audit hook: ``subprocess``, ``os.system``, ``os.popen``,
``os.posix_spawn``, ``os.fork``; one flag, no cost to a step that starts none) has its files *retired*
when it ends: descriptors 1 and 2 get fresh files, and what arrives in the old ones afterwards is that
step's late output. Its record cannot take it (the step's outcome and output were journaled when it
returned), so it goes to the worker's own descriptors (the driver's terminal, or the Jupyter
server's log), each line labelled ``[key of execution, after it ended]``. A retired file is closed once no
process holds it open for writing: a read lease on it (held by nobody else, it is opened a second
time read-only) is granted only then. Not covered: processes started from C code (``fork`` called by
an extension) and threads a step leaves running, whose later writes land where the descriptors point
then.
"""
from __future__ import annotations

import codecs
import fcntl
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, cast

from . import capture
from .capture import Capture

POLL_SECONDS = 0.1
BUSY_POLL_SECONDS = 0.002  # while a step writes READ_BYTES or more between two polls
_CURRENT = object()  # _collect's target: whichever step runs once the bytes are read
ROTATE_BYTES = 1 << 20  # a file is emptied once this much was read from it
READ_BYTES = 1 << 20  # read at most this much at once
BACKLOG_BYTES = 8 << 20  # more than this unread: only its first HEAD_BYTES and last TAIL_BYTES are read
HEAD_BYTES = 64 << 10
TAIL_BYTES = 256 << 10
CATCH_UP_SECONDS = 0.001  # a print looks for what the step's processes wrote before it at most this often
PUNCH_BYTES = 1 << 20  # while a step runs, the disk space of what was read is freed by this much
RETIRED_FILES = 64  # retired files kept open at most where leases are not available (then: the oldest closed)
# Audit events of a process being started: the step's files are retired when it ends.
_SPAWNS = frozenset(("subprocess.Popen", "os.system", "os.posix_spawn", "os.fork", "os.forkpty", "os.spawn"))
_F_SETLEASE = getattr(fcntl, "F_SETLEASE", 1024)  # Linux's values: Python 3.11's fcntl lacks the names
_F_RDLCK = getattr(fcntl, "F_RDLCK", 0)
_F_UNLCK = getattr(fcntl, "F_UNLCK", 2)


class _Stream:
    """One descriptor's file: ``write`` (``O_APPEND``; what descriptor ``fd`` points at) and ``read``, a
    read-only description of the same file (see the module docstring on leases)."""

    __slots__ = ("name", "fd", "write", "read", "saved", "offset", "punched", "decoder")

    def __init__(self, name: str, fd: int, saved: int) -> None:
        self.name = name
        self.fd = fd
        self.write, self.read = _private_file(name)
        # Appending: every process that shares the descriptor (a step's children) writes at the end.
        fcntl.fcntl(self.write, fcntl.F_SETFL, fcntl.fcntl(self.write, fcntl.F_GETFL) | os.O_APPEND)
        self.saved = saved
        self.offset = 0
        self.punched = 0  # the disk space before this offset was given back
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def size(self) -> int:
        return os.lseek(self.read, 0, os.SEEK_END)  # O_APPEND writes ignore the offset

    def pieces(self, size: int) -> Iterator[bytes | int]:
        """What was appended up to ``size``, in pieces of at most ``READ_BYTES``; past a backlog of
        ``BACKLOG_BYTES``, its first and last bytes with the count of those between (an ``int``)."""
        if size < self.offset:  # emptied under us (cannot happen: only this code truncates)
            self.offset = 0
        if size - self.offset > BACKLOG_BYTES:
            yield self._read(HEAD_BYTES)
            skipped = size - TAIL_BYTES - self.offset
            self.offset = size - TAIL_BYTES
            self.decoder.reset()
            yield skipped
        while self.offset < size:
            data = self._read(min(READ_BYTES, size - self.offset))
            if not data:
                return
            yield data

    def _read(self, count: int) -> bytes:
        data = os.pread(self.read, count, self.offset)
        self.offset += len(data)
        return data

    def punch(self, write: int | None = None) -> None:
        """Give back the disk space of what was read (a file keeps its size: appends go on at its end)."""
        upto = self.offset & ~0xFFFF
        if upto - self.punched < PUNCH_BYTES:
            return
        fd = self.write if write is None else write
        if _punch_hole(fd, self.punched, upto - self.punched):
            self.punched = upto


class _Retired:
    """A step's files after it ended (it started a process, which may still write to them)."""

    __slots__ = ("stream", "label", "partial", "leases")

    def __init__(self, stream: _Stream, label: str) -> None:
        self.stream = stream
        self.label = label
        self.partial = ""
        self.leases = True  # False: the file system grants none (kept until RETIRED_FILES pushes it out)

    def collect(self, final: bool = False) -> None:
        """Pass on its complete new lines, labelled, to the worker's own descriptor (all of it: ``final``)."""
        stream = self.stream
        size = stream.size()
        if size != stream.offset:
            for piece in stream.pieces(size):
                self._labelled(stream.decoder.decode(piece) if isinstance(piece, bytes) else
                               "\n" + _skip_note(piece))
            if size - stream.punched >= PUNCH_BYTES:  # its writers may go on: free what was read
                try:
                    write = os.open(f"/proc/self/fd/{stream.read}", os.O_WRONLY)
                except OSError:
                    pass
                else:
                    stream.punch(write)
                    os.close(write)
        if final:
            self._labelled(stream.decoder.decode(b"", True) + ("\n" if self.partial else ""))

    def _labelled(self, text: str) -> None:
        text = self.partial + text
        end = text.rfind("\n") + 1
        self.partial = text[end:][-HEAD_BYTES:]
        if end:
            lines = "".join(f"{self.label} {line}\n" for line in text[:end].splitlines())
            _write_all(self.stream.saved, lines.encode("utf-8", "replace"))

    def unwritten(self) -> bool:
        """No process holds the file open for writing any more (a read lease is granted only then)."""
        if not self.leases:
            return False
        try:
            fcntl.fcntl(self.stream.read, _F_SETLEASE, _F_RDLCK)
        except OSError as exc:
            if exc.errno not in (11, 16):  # EAGAIN, EBUSY: a writer still holds it
                self.leases = False
            return False
        fcntl.fcntl(self.stream.read, _F_SETLEASE, _F_UNLCK)
        return True

    def close(self) -> None:
        self.collect(final=True)
        os.close(self.stream.read)


class FdCapture:
    """Routes descriptors 1 and 2 to the running step's :class:`Capture` (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._target: Capture | None = None
        self._streams: tuple[_Stream, ...] = ()
        self._spawned = False  # the running step started a process: retire its files when it ends
        self._retired: list[_Retired] = []
        self._busy = False  # the last read found a lot: read again sooner
        self._catching = False  # in _catch_up (the step's thread)
        self._caught = 0.0  # when _catch_up last looked

    def install(self) -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (AttributeError, OSError, ValueError):
                pass
        self._streams = tuple(self._attach(_Stream(name, fd, os.dup(fd))) for name, fd in (("stdout", 1),
                                                                                            ("stderr", 2)))
        sys.addaudithook(self._audit)
        threading.Thread(target=self._poll, name="zart-worker-fds", daemon=True).start()

    def _audit(self, event: str, _args: tuple[Any, ...]) -> None:
        if event in _SPAWNS:
            self._spawned = True
            self._caught = 0.0  # the first print after it looks, whenever the last look was
            capture.catch_up = self._catch_up

    def _catch_up(self) -> None:
        """A step that started a process prints: what the process wrote before is passed on first
        (a print after ``subprocess.run`` comes after the run's output, live and in the journal). At
        most every ``CATCH_UP_SECONDS`` (a look costs ~5 µs: 200,000 prints took 2.1 s instead of
        1.1 s), except the first print after a process starts; and not again from inside (a finalizer
        run by a collection while the lock is held may print)."""
        now = time.monotonic()
        if now - self._caught >= CATCH_UP_SECONDS and self._target is not None and not self._catching:
            self._caught = now
            self._catching = True
            try:
                with self._lock:
                    self._collect(_CURRENT)
            finally:
                self._catching = False

    def begin(self, capture: Capture) -> None:
        self._target = capture  # before the step writes: see the module docstring

    def end(self, task: tuple[Any, ...] | None = None) -> None:
        """Hand what the step wrote to its capture; called before the capture closes. ``task`` (its
        ``WireTask``) labels what its processes write after it ended."""
        with self._lock:
            self._collect(self._target)
            self._target = None
            if self._spawned:
                self._spawned = False
                capture.catch_up = None
                self._retire(task)
            self._rotate()

    def _retire(self, task: tuple[Any, ...] | None) -> None:
        """Give descriptors 1 and 2 fresh files; the old ones keep what the step's processes write
        from now on (lock held)."""
        if task is None:
            label = "[a step, after it ended]"
        else:
            attempt = "" if task[6] <= 1 else f" attempt {task[6]}"
            label = f"[{task[5]}{attempt} of {task[4]}, after it ended]"
        streams = []
        for old in self._streams:
            try:
                stream = self._attach(_Stream(old.name, old.fd, old.saved))
            except OSError:  # no file for it (a full /tmp): its late bytes may reach the next step
                streams.append(old)
                continue
            os.close(old.write)  # the step's processes hold the only writers left
            streams.append(stream)
            self._retired.append(_Retired(old, label))
        self._streams = tuple(streams)
        while len(self._retired) > RETIRED_FILES:
            self._retired.pop(0).close()

    @staticmethod
    def _attach(stream: _Stream) -> _Stream:
        os.dup2(stream.write, stream.fd)
        return stream

    def _poll(self) -> None:
        wake = threading.Event()
        while not wake.wait(BUSY_POLL_SECONDS if self._busy else POLL_SECONDS):
            with self._lock:
                self._busy = False
                self._collect(_CURRENT)
                if self._target is not None:
                    self._target.tick(time.monotonic())
                if self._retired:
                    self._collect_retired()

    def _collect_retired(self) -> None:
        kept = []
        for retired in self._retired:
            retired.collect()
            if retired.unwritten():
                retired.close()  # what was written before the last writer closed it is read here
            else:
                kept.append(retired)
        self._retired = kept

    def _rotate(self) -> None:
        """Empty a file that grew past ``ROTATE_BYTES`` (lock held, no step running, all of it read)."""
        for stream in self._streams:
            if stream.offset >= ROTATE_BYTES:
                os.ftruncate(stream.write, 0)
                stream.offset = stream.punched = 0

    def _collect(self, target: Capture | None | object) -> None:
        """Hand what is new in the files on: to ``target``, or (``_CURRENT``) to the step running once
        it was read (``None``: the original descriptors)."""
        for stream in self._streams:
            size = os.lseek(stream.read, 0, os.SEEK_END)  # stream.size(), inline: every step ends here
            if size != stream.offset:
                self._drain(stream, size, target)

    def _drain(self, stream: _Stream, size: int, target: Capture | None | object) -> None:
        if size - stream.offset >= READ_BYTES:
            self._busy = True
        for piece in stream.pieces(size):
            to = self._target if target is _CURRENT else target  # decided after the read
            if to is None:
                _write_all(stream.saved, piece if isinstance(piece, bytes) else _skip_note(piece).encode())
            elif isinstance(piece, bytes):
                text = stream.decoder.decode(piece)
                if text:
                    cast(Capture, to).write(stream.name, text)
            else:
                cast(Capture, to).skipped(stream.name, piece)
        stream.punch()


def _skip_note(count: int) -> str:
    return f"[zart: {count:,} bytes skipped]\n"


_punch: Any = None  # libc's fallocate, loaded when first needed (False: not available)


def _punch_hole(fd: int, offset: int, length: int) -> bool:
    """Free the disk space of a file's range, keeping its size (``fallocate`` ``PUNCH_HOLE``)."""
    global _punch
    if _punch is None:
        try:
            import ctypes

            function = ctypes.CDLL(None, use_errno=True).fallocate
            function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
            _punch = function
        except (OSError, AttributeError):
            _punch = False
    if _punch is False:
        return False
    return bool(_punch(fd, 0x01 | 0x02, offset, length) == 0)  # FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE


def _private_file(name: str) -> tuple[int, int]:
    """A new 0600 file with no name, opened twice: for writing and (another description) read-only.
    ``O_TMPFILE`` where the system has it (no ``tempfile`` import, ~4 ms of a worker's start), else
    ``mkstemp`` and unlink."""
    folder = os.environ.get("TMPDIR") or "/tmp"
    flags = getattr(os, "O_TMPFILE", 0)
    if flags:
        try:
            write = os.open(folder, flags | os.O_RDWR, 0o600)
        except OSError:
            pass
        else:
            try:
                return write, os.open(f"/proc/self/fd/{write}", os.O_RDONLY)
            except OSError:  # no /proc
                os.close(write)
    import tempfile

    write, path = tempfile.mkstemp(prefix=f"zart-{name}-")  # 0600, created exclusively
    try:
        read = os.open(path, os.O_RDONLY)
    finally:
        os.unlink(path)
    return write, read


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
