"""What a step prints, captured where it runs: kept for the journal and passed on line by line.

``sys.stdout``/``sys.stderr`` are replaced once per process by a router that writes to the capture of
the step running in the *calling* context (a contextvar), and to the original stream otherwise. So a
process that runs several steps at once on threads (the inline executor, a Dask worker) keeps each
step's output apart, and code that is not a step prints as before. Output written to the file
descriptors directly (C extensions, child processes) is captured in the local pool's workers only
(``fdcapture``), which run one step at a time.

Bounded whatever a step prints: an attempt keeps its first ``HEAD`` and its last ``TAIL`` characters (both
streams interleaved in the order written; whole lines) and one line counting what lies between
(``skip_note``), so at most ``HEAD + 2 * TAIL`` characters and one unfinished line per stream (cut at
``TAIL``) are held. Lines are passed on live up to ``LIVE_BURST`` characters, then at ``LIVE_RATE`` a
second; those beyond are counted in a note with the next lines passed on (a step printing gigabytes in a
loop neither floods the driver's I/O thread nor a notebook). A killed attempt is journaled from what the
driver received, so an unfinished line is passed on too once it waited ``PARTIAL_SECONDS`` (``tick``);
what is passed on is shown as a terminal shows it (a line rewritten with carriage returns, a progress
bar, in its last state). ``unseen`` keeps a follower's place in a text that is not only appended to.
"""
from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TextIO, cast

HEAD = 16 * 1024  # characters kept per attempt from the start of its output...
TAIL = 64 * 1024  # ...and from its end; what lies between is counted in one line (``skip_note``)
LIVE_BURST = 4 * 1024 * 1024  # characters of complete lines passed on live before the rate applies
LIVE_RATE = 128 * 1024  # then characters a second (lines beyond it are counted, not passed on)
PARTIAL_SECONDS = 0.5  # an unfinished line is passed on once it waited this long (``tick``)

LineSink = Callable[[str, str], None]  # (stream name, complete lines; or a line's start, see tick) as printed

_current: ContextVar[Capture | None] = ContextVar("zart_capture", default=None)
# Set by ``fdcapture`` while the running step has started a process: called before a step's print is
# captured, it hands on first what reached the descriptors before it (the process's output), in order.
catch_up: Callable[[], None] | None = None
# Reentrant, as a capture's own lock: a collection run while one is held may call a finalizer that prints
# to the same capture from the same thread (with a plain lock the step would wait forever).
_first_write = threading.RLock()  # makes a capture's buffers once (most captures never get any)


def skip_note(skipped: int) -> str:
    """The line that stands for what an attempt's kept output leaves out."""
    return (f"[zart: {skipped:,} characters of output skipped; the first {HEAD // 1024} KiB and the last "
            f"{TAIL // 1024} KiB are kept]\n")


_SKIP_NOTE = re.compile(r"^\[zart: ([\d,]+) characters of output skipped; the first \d+ KiB and the last \d+ KiB "
                        r"are kept\]$", re.MULTILINE)


def skipped_in(log: str | None) -> int:
    """The characters a kept output leaves out, as its skip notes count them (0: it is whole)."""
    if not log or "characters of output skipped" not in log:
        return 0
    return sum(int(match.group(1).replace(",", "")) for match in _SKIP_NOTE.finditer(log))


def _as_shown(text: str) -> str:
    """``text`` as a terminal shows it: of a line rewritten with carriage returns (a progress bar), the
    last state only."""
    if "\r" not in text:
        return text
    lines = []
    for line in text.split("\n"):
        line = line.rstrip("\r")
        lines.append(line[line.rfind("\r") + 1:])
    return "\n".join(lines)


def _dropped_note(lines: int) -> str:
    return f"[zart: {lines:,} lines not shown live (printed too fast); the journal keeps the output's ends]\n"


class Capture:
    """One attempt's output: both streams interleaved, bounded to its first ``HEAD`` and last ``TAIL``
    characters, and passed on line by line to ``sink`` (at most ``LIVE_BURST`` characters, then
    ``LIVE_RATE`` a second: a step printing gigabytes cannot flood the driver or a notebook). Costs
    next to nothing until the step writes (most steps print nothing)."""

    __slots__ = ("_head", "_room", "_chunks", "_size", "_skipped", "_mid_line", "_partial", "_since", "_sink",
                 "_lock", "_budget", "_refilled", "_dropped")

    def __init__(self, sink: LineSink | None) -> None:
        self._chunks: list[str] | None = None
        self._sink = sink

    def _start(self) -> None:
        with _first_write:  # a step's print and the descriptor thread may both write first
            if self._chunks is None:
                self._head: list[str] = []
                self._room = HEAD
                self._size = self._skipped = self._dropped = 0
                self._mid_line = False  # the kept tail starts inside a line (what came before is skipped)
                self._partial = {"stdout": "", "stderr": ""}
                self._since: dict[str, float] = {}  # stream -> when ``tick`` first saw its unfinished line
                self._budget = float(LIVE_BURST)
                self._refilled = 0.0
                self._lock = threading.RLock()
                self._chunks = []  # last: a thread that sees it sees the rest

    def write(self, stream: str, text: str) -> None:
        if self._chunks is None:
            self._start()
        with self._lock:
            if self._room:
                kept = text[:self._room]
                self._head.append(kept)
                self._room -= len(kept)
                rest = text[len(kept):]
            else:
                rest = text
            if rest:
                chunks = cast(list[str], self._chunks)
                chunks.append(rest)
                self._size += len(rest)
                if self._size > 2 * TAIL:
                    joined = "".join(chunks)
                    kept = joined[-TAIL:]
                    self._mid_line = joined[-TAIL - 1] != "\n"
                    self._skipped += self._size - len(kept)
                    self._chunks, self._size = [kept], len(kept)
            if self._sink is None:
                return
            pending = self._partial[stream] + text
            end = pending.rfind("\n") + 1
            if len(pending) - end > TAIL:  # a "line" that never ends: passed on in pieces
                pending, end = pending + "\n", len(pending) + 1
            if end and self._since:
                self._since.pop(stream, None)
            self._partial[stream] = pending[end:]
            lines = self._allowed(pending[:end])
        if lines:
            self._sink(stream, _as_shown(lines))

    def _allowed(self, lines: str) -> str:
        """``lines`` if the live budget allows them, else "" (counted; lock held)."""
        if not lines:
            return lines
        if len(lines) > self._budget:
            now = time.monotonic()
            if self._refilled:
                self._budget = min(float(LIVE_BURST), self._budget + (now - self._refilled) * LIVE_RATE)
            self._refilled = now
            if len(lines) > self._budget:
                self._dropped += lines.count("\n")
                return ""
        self._budget -= len(lines)
        if self._dropped:
            note = _dropped_note(self._dropped)
            self._dropped = 0
            return note + lines
        return lines

    def tick(self, now: float) -> None:
        """Pass on unfinished lines that waited ``PARTIAL_SECONDS`` (a worker calls this every ~0.1 s):
        a step killed mid-line (``print("waiting for the server...", end="")``) keeps that line in the
        output journaled from what the driver received, and it is seen live. The rest of the line
        follows as a line of its own."""
        if self._chunks is None or self._sink is None:
            return
        ready = []
        with self._lock:
            for stream, text in self._partial.items():
                if text:
                    since = self._since.setdefault(stream, now)
                    if now - since >= PARTIAL_SECONDS:
                        ready.append((stream, text))
                        self._partial[stream] = ""
                        del self._since[stream]
        for stream, text in ready:
            shown = _as_shown(text)
            if shown:
                self._sink(stream, shown)

    def skipped(self, stream: str, count: int) -> None:
        """``count`` bytes of ``stream`` were left out unread (the descriptors' backlog; counted as
        characters in the note): what is kept of the tail so far came before them, so it is left out
        too."""
        if self._chunks is None:
            self._start()
        with self._lock:
            self._skipped += count + self._size
            self._chunks, self._size = [], 0
            self._room = 0  # what follows the gap is the tail's, never the head's
            self._mid_line = True
            partial = self._partial[stream]
            self._partial[stream] = ""
        if self._sink is not None:
            self._sink(stream, _as_shown(partial + "\n" if partial else "") + f"[zart: {count:,} bytes skipped]\n")

    def close(self) -> str | None:
        """The text to journal (None when nothing was printed); passes on unterminated last lines."""
        if self._chunks is None:
            return None
        with self._lock:
            partial = [(stream, text) for stream, text in self._partial.items() if text]
            self._partial = {"stdout": "", "stderr": ""}
            dropped, self._dropped = self._dropped, 0
            head = "".join(self._head)
            tail = "".join(self._chunks)
            skipped = self._skipped
            mid_line = self._mid_line
        if self._sink is not None:
            for stream, rest in partial:
                self._sink(stream, _as_shown(rest + "\n"))
            if dropped:
                self._sink("stderr", _dropped_note(dropped))
        if len(tail) > TAIL:
            skipped += len(tail) - TAIL
            mid_line = tail[-TAIL - 1] != "\n"
            tail = tail[-TAIL:]
        if not skipped:
            return (head + tail) or None
        # Whole lines on both sides of the note (the pieces of lines cut are counted as skipped)
        end = head.rfind("\n") + 1
        if end >= len(head) // 2:
            skipped += len(head) - end
            head = head[:end]
        elif not head.endswith("\n"):
            head += "\n"
        start = tail.find("\n") + 1 if mid_line else 0
        if start <= len(tail) // 2:
            skipped += start
            tail = tail[start:]
        return head + skip_note(skipped) + tail


class _Router:
    """Stands in for ``sys.stdout``/``sys.stderr``: a step's writes go to its capture."""

    def __init__(self, name: str, inner: TextIO) -> None:
        self._name = name
        self._inner = inner

    def write(self, text: str) -> int:
        capture = _current.get()
        if capture is None:
            return self._inner.write(text)
        if catch_up is not None:
            catch_up()
        capture.write(self._name, text)
        return len(text)

    def flush(self) -> None:
        if _current.get() is None:
            self._inner.flush()

    def isatty(self) -> bool:
        return False if _current.get() is not None else self._inner.isatty()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def begin(sink: LineSink | None) -> tuple[Capture, Any]:
    """Start capturing this context's output; ``end(token)`` stops."""
    if type(sys.stdout) is not _Router:
        sys.stdout = _Router("stdout", sys.stdout)
    if type(sys.stderr) is not _Router:
        sys.stderr = _Router("stderr", sys.stderr)
    capture = Capture(sink)
    return capture, _current.set(capture)


def end(token: Any) -> None:
    _current.reset(token)


FOLLOW_KEPT = 256  # characters of what a follower showed last, to find its place in a later text


def unseen(text: str, start: int, seen: str) -> tuple[str, int, str]:
    """For a follower of a running attempt's output (``zart show --output --follow``): the whole lines
    of ``text`` (what it printed so far, as ``Capture.close`` gives it) not shown yet, and the follower's
    new place ``(start, seen)``. The text is not only appended to: past ``HEAD + TAIL`` characters its
    middle is skipped, so the place is also found by the last characters shown (``seen``); if those fell
    out of the kept tail, following resumes at its start."""
    end = text.rfind("\n") + 1
    if start > end or text[max(0, start - len(seen)):start] != seen:
        found = text.rfind(seen, 0, end) if seen else -1
        if found >= 0:
            start = found + len(seen)
        else:  # behind by more than the kept tail: from its first whole line (it may start mid-line)
            note = text.find(" characters of output skipped; ")
            first = -1 if note < 0 else text.find("\n", text.find("\n", note) + 1)
            start = 0 if note < 0 else end if first < 0 else first + 1
    if end <= start:
        return "", start, seen
    return text[start:end], end, text[max(0, end - FOLLOW_KEPT):end]


def prefix_lines(step_key: str, attempt: int, text: str, execution_id: str | None = None) -> str:
    """``[step-key] line`` for every line (``[step-key attempt 2]`` for retries; ``[step-key of
    execution-id]`` when ``execution_id`` is given)."""
    label = step_key if attempt <= 1 else f"{step_key} attempt {attempt}"
    label = f"[{label}]" if execution_id is None else f"[{label} of {execution_id}]"
    return "".join(f"{label} {line}\n" for line in text.splitlines())
