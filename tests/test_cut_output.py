"""A step whose output was cut (past its first 16 KiB and last 64 KiB, one ``[zart: ...]`` line counts what
lies between) says so where a person reads it: ``StepRecord.log_skipped`` / ``AttemptRecord.log_skipped``
count it, and ``zart show --output``'s heading names it (the TUI: tests/tui/test_tui_cut_output.py).
Real worker processes, a real DuckDB file, the CLI in a subprocess."""
from __future__ import annotations

import subprocess
import sys

from cut_output_lib import make
from output_helpers import parts


def test_a_cut_output_counts_what_it_skipped_and_show_says_so_in_its_heading(journal):
    steps = make(journal)
    cut, whole = steps["loud#0"], steps["quiet#0"]
    head, skipped, tail = parts(cut.log or "")
    assert head.startswith("line 000000 ") and tail.endswith("line 019999 " + "x" * 40 + "\ndone\n")
    assert cut.log_skipped == skipped > 900_000
    assert whole.log == "one line\n" and whole.log_skipped == 0

    shown = subprocess.run([sys.executable, "-m", "zart_nb", "--journal", str(journal), "show", "cut-1", "--output"],
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    headings = [line for line in shown.stdout.splitlines() if line.startswith("Output of ")]
    assert headings == [
        "Output of quiet#0 (run 1, attempt 1):",
        f"Output of loud#0 (run 1, attempt 1; {skipped:,} characters skipped in the middle, at the [zart: ...] line):",
    ]
    notes = [line for line in shown.stdout.splitlines() if line.startswith("[zart: ")]
    assert notes == [f"[zart: {skipped:,} characters of output skipped; the first 16 KiB and the last 64 KiB are kept]"]
