"""Plain-text progress on stderr outside a kernel: one line rewritten in place (tqdm-like)."""
from __future__ import annotations

from typing import TextIO

from .progress import Snapshot
from .render import counts_text

WIDTH = 24


class TextProgress:
    """Writes a ``\\r``-rewritten line to ``stream`` (a terminal) and ends it with a newline."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._last = ""

    def update(self, snap: Snapshot) -> None:
        line = self.line(snap)
        if line != self._last:
            pad = " " * max(0, len(self._last) - len(line))
            self._stream.write(f"\r{line}{pad}")
            self._stream.flush()
            self._last = line

    def clear(self) -> None:
        """Blank the line (steps' printed lines are about to be written) ; the next update redraws it."""
        if self._last:
            self._stream.write("\r" + " " * len(self._last) + "\r")
            self._stream.flush()
            self._last = ""

    def finish(self, snap: Snapshot) -> None:
        self.update(snap)
        self._stream.write("\n")
        self._stream.flush()

    @staticmethod
    def line(snap: Snapshot) -> str:
        total = max(snap.total, 1)
        filled = WIDTH if snap.from_journal else int(WIDTH * min(snap.finished, total) / total)
        bar = "█" * filled + "·" * (WIDTH - filled)
        run = f" run {snap.run_number}" if snap.run_number else ""
        return f"zart {snap.execution_id}{run} |{bar}| {counts_text(snap)} [{snap.status.value}]"
