"""A journal whose creation was killed (a 0-byte file, or a creation marker whose process is gone) reads as a
journal with no executions yet, for every reader (the read API, `zart ls`, the TUI's source), not as
``JournalCorrupt``; readers leave it as it is, and the next run on it starts it over."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

import zart_nb as zart


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _partial(path, size: int) -> None:
    import duckdb

    duckdb.connect(str(path)).close()
    path.write_bytes(path.read_bytes()[:size])
    for leftover in (path.with_name(path.name + ".wal"),):
        if leftover.exists():
            leftover.unlink()


SHAPES = ["empty-file", "empty-file-and-marker", "partial-file-and-marker"]


def _leave(tmp_path, shape: str):
    journal = tmp_path / "j.duckdb"
    if shape == "partial-file-and-marker":
        _partial(journal, 4096)
    else:
        journal.write_bytes(b"")
    if shape != "empty-file":  # what the killed creator left: its marker, naming it
        (tmp_path / "j.duckdb.creating").write_text(f"{os.uname().nodename}:{_dead_pid()}")
    journal.chmod(0o600)
    return journal


@pytest.mark.parametrize("shape", SHAPES)
def test_a_journal_whose_creation_was_killed_reads_as_one_with_no_executions(tmp_path, shape):
    journal = _leave(tmp_path, shape)
    before = journal.read_bytes()
    reader = zart.journal(journal)
    try:
        assert reader.list_executions() == []
        assert reader.execution_record("any") is None
        assert reader.list_steps("any") == [] and reader.list_runs("any") == []
        assert sum(reader.stats().values()) == 0
    finally:
        reader.close()
    ls = subprocess.run([sys.executable, "-m", "zart_nb", "ls", "--journal", str(journal)], capture_output=True,
                        text=True, timeout=60, cwd=tmp_path)
    assert ls.returncode == 0, ls.stderr
    assert ls.stdout.strip() == f"no executions in {journal}"
    from zart_tui.source import FILE, Source

    source = Source(journal)
    assert source.read(lambda r: r.list_executions()) == [] and source.state == FILE
    # Readers left it as it was; a run starts it over.
    assert journal.read_bytes() == before
    assert (tmp_path / "j.duckdb.creating").exists() == (shape != "empty-file")
    assert zart.run(lambda x: x * 2, 21, execution_id="after", journal=journal) == 42
    assert not (tmp_path / "j.duckdb.creating").exists()
    reader = zart.journal(journal)
    try:
        assert [r.execution_id for r in reader.list_executions()] == ["after"]
    finally:
        reader.close()
