"""What a step prints, captured where it runs: kept for the journal and passed on line by line.

``sys.stdout``/``sys.stderr`` are replaced once per process by a router that writes to the capture of
the step running in the *calling* context (a contextvar), and to the original stream otherwise. So a
process that runs several steps at once on threads (the inline executor, a Dask worker) keeps each
step's output apart, and code that is not a step prints as before. Output written to the file
descriptors directly (C extensions, child processes) is captured in the local pool's workers only
(``fdcapture``), which run one step at a time.
"""
from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TextIO

LIMIT = 64 * 1024  # characters kept per attempt: the last ones
CUT_NOTE = "[zart: output cut; only the last 64 KiB are kept]\n"

LineSink = Callable[[str, str], None]  # (stream name, complete lines) as they are printed

_current: ContextVar[Capture | None] = ContextVar("zart_capture", default=None)
_first_write = threading.Lock()  # makes a capture's buffers once (most captures never get any)


class Capture:
    """One attempt's output: both streams interleaved, bounded to the last ``LIMIT`` characters.
    Costs next to nothing until the step writes (most steps print nothing)."""

    __slots__ = ("_chunks", "_size", "_cut", "_partial", "_sink", "_lock")

    def __init__(self, sink: LineSink | None) -> None:
        self._chunks: list[str] | None = None
        self._sink = sink

    def write(self, stream: str, text: str) -> None:
        if self._chunks is None:
            with _first_write:  # a step's print and the descriptor thread may both write first
                if self._chunks is None:
                    self._cut, self._size = False, 0
                    self._partial = {"stdout": "", "stderr": ""}
                    self._lock = threading.Lock()
                    self._chunks = []  # last: a thread that sees it sees the rest
        with self._lock:
            self._chunks.append(text)
            self._size += len(text)
            if self._size > 2 * LIMIT:
                kept = "".join(self._chunks)[-LIMIT:]
                self._chunks, self._size, self._cut = [kept], len(kept), True
            if self._sink is None:
                return
            pending = self._partial[stream] + text
            end = pending.rfind("\n") + 1
            self._partial[stream] = pending[end:]
            lines = pending[:end]
        if lines:
            self._sink(stream, lines)

    def close(self) -> str | None:
        """The text to journal (None when nothing was printed); passes on unterminated last lines."""
        if self._chunks is None:
            return None
        with self._lock:
            partial = [(stream, text) for stream, text in self._partial.items() if text]
            self._partial = {"stdout": "", "stderr": ""}
            text = "".join(self._chunks)
        if self._sink is not None:
            for stream, rest in partial:
                self._sink(stream, rest + "\n")
        if not text:
            return None
        if self._cut or len(text) > LIMIT:
            return CUT_NOTE + text[-LIMIT:]
        return text


class _Router:
    """Stands in for ``sys.stdout``/``sys.stderr``: a step's writes go to its capture."""

    def __init__(self, name: str, inner: TextIO) -> None:
        self._name = name
        self._inner = inner

    def write(self, text: str) -> int:
        capture = _current.get()
        if capture is None:
            return self._inner.write(text)
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


def prefix_lines(step_key: str, attempt: int, text: str) -> str:
    """``[step-key] line`` for every line (``[step-key attempt 2]`` for retries)."""
    label = f"[{step_key}]" if attempt <= 1 else f"[{step_key} attempt {attempt}]"
    return "".join(f"{label} {line}\n" for line in text.splitlines())
