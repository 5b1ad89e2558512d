"""Reading an attempt's kept output back in tests: its first lines, the count of what was skipped, its
last lines (``capture.skip_note`` between them)."""
import re

NOTE = re.compile(r"\[zart: ([\d,]+) characters of output skipped; the first 16 KiB and the last 64 KiB are kept\]\n")


def parts(log: str) -> tuple[str, int, str]:
    """``(head, skipped, tail)`` of a log with one skip note, each side whole lines."""
    (match,) = NOTE.finditer(log)
    head, tail = log[:match.start()], log[match.end():]
    assert head.endswith("\n") and (not tail or tail.endswith("\n"))
    return head, int(match.group(1).replace(",", "")), tail
