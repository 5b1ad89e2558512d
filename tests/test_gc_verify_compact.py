"""`zart gc --verify` (a full scrub of the stored values, nothing unpickled) and `zart gc --compact` (the
journal file rewritten with its live data only), on journals made by real runs."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

from conftest import wait_until  # noqa: E402
from tables_lib import table_and_array  # noqa: E402

import zart_nb as zart  # noqa: E402
from zart_nb import _values as values  # noqa: E402
from zart_nb._monitor import endpoint as endpoint_file  # noqa: E402
from zart_nb._runtime import runtime  # noqa: E402
from zart_nb._stored import ref_of  # noqa: E402

DRIVER = Path(__file__).parent / "scripts" / "tables_driver.py"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "zart_nb", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "ZART_LOCK_TIMEOUT": "1"})


@pytest.fixture
def ran(journal, monkeypatch):
    monkeypatch.setenv("ZART_VALUE_THRESHOLD", "500")
    zart.run(table_and_array, 100_000, execution_id="ex", journal=journal, display=False)
    runtime.journal(journal).close()
    return journal


def _files(journal: Path) -> tuple[Path, Path]:
    table, array = zart.stored("ex", journal=journal)
    folder = values.folder_for(journal)
    return folder / table.file, folder / array.file


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def test_verify_passes_an_intact_store(ran):
    report = zart.scrub(ran)
    assert report.ok and report.checked == 2
    table, array = _files(ran)
    assert report.bytes == table.stat().st_size + array.stat().st_size
    cli = _cli("gc", "--verify", "--journal", str(ran))
    assert cli.returncode == 0, cli.stderr
    assert "verified 2 stored file(s)" in cli.stdout and "damaged" not in cli.stdout


def test_verify_finds_a_damaged_parquet_page_the_load_check_does_not_see(ran):
    table, _ = _files(ran)
    _flip(table, 200)  # inside the first column's data: the footer and the crc of the last 64 KiB are intact
    assert table.stat().st_size > values.TAIL + 200
    (listed,) = zart.stored("ex", "fetch:raw-data#0", journal=ran, rows=0)
    fd, _ = values.open_table(values.folder_for(ran), ref_of(listed))  # the cheap check on load passes
    os.close(fd)
    report = zart.scrub(ran)
    assert [name for name, _ in report.damaged] == [listed.file] and report.checked == 1
    cli = _cli("gc", "--verify", "--journal", str(ran))
    assert cli.returncode == 1 and f"damaged {listed.file}" in cli.stdout
    assert table.exists()  # reported, never removed


@pytest.mark.parametrize("damage", ["pickle", "truncate"])
def test_verify_finds_a_damaged_value_file(ran, damage):
    _, array = _files(ran)
    head = array.read_bytes()[:4096]
    if damage == "pickle":  # the pickle's STOP opcode, just before the first buffer's padding
        pickle_at = 64
        stop = head.index(b".", pickle_at)
        _flip(array, stop)
    else:
        os.truncate(array, array.stat().st_size - 1)
    (found,) = zart.scrub(ran).damaged
    assert found[0] == array.name


def test_compact_gives_the_space_of_deleted_executions_back(journal, monkeypatch):
    monkeypatch.setenv("ZART_VALUE_THRESHOLD", str(1 << 20))
    blob = os.urandom(900_000)  # under this threshold: journaled inline, in DuckDB's file
    for i in range(12):
        zart.run(lambda data: len(data), blob + bytes([i]), execution_id=f"big-{i}", journal=journal,
                 display=False)
    zart.run(lambda x: x + 1, 1, execution_id="kept", journal=journal, display=False)
    runtime.journal(journal).close()  # checkpointed: the blobs are in the file's blocks, not in its WAL
    for i in range(12):
        zart.delete(f"big-{i}", journal=journal)
    runtime.journal(journal).close()
    before = journal.stat().st_size
    cli = _cli("gc", "--compact", "--journal", str(journal))
    assert cli.returncode == 0, cli.stderr
    after = journal.stat().st_size
    assert after < before / 2, (before, after)  # measured: 6.3 MB -> 2.4 MB (the empty schema's blocks)
    assert "compacted from" in cli.stdout
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600
    assert not [p for p in journal.parent.iterdir() if p.name.startswith(".zart-compact-")]
    reader = zart.journal(journal, live=False)
    assert [r.execution_id for r in reader.list_executions()] == ["kept"]
    reader.close()
    assert zart.run(lambda x: x + 1, 1, execution_id="kept", journal=journal, display=False) == 2  # reused
    assert zart.run(lambda x: x * 3, 2, execution_id="after", journal=journal, display=False) == 6


def test_compact_is_refused_while_another_process_holds_the_journal(tmp_path):
    journal = tmp_path / "j.duckdb"
    driver = subprocess.Popen([sys.executable, str(DRIVER), str(journal), str(tmp_path)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        wait_until(lambda: endpoint_file.read(journal), what="the driver's endpoint")
        size = journal.stat().st_size
        cli = _cli("gc", "--compact", "--journal", str(journal))
        assert cli.returncode == 1 and f"in use by process {driver.pid}" in cli.stderr, cli
        assert journal.stat().st_size == size
    finally:
        (tmp_path / "go").touch()
        out, err = driver.communicate(timeout=60)
    assert "DONE completed" in out, err


def test_compact_is_refused_while_this_process_runs_on_the_journal(journal, tmp_path):
    gate = tmp_path / "gate"

    def body(path: str) -> int:
        wait_until(lambda: os.path.exists(path), timeout=60, what="the gate")
        return 1

    execution = zart.start(body, str(gate), execution_id="busy", journal=journal)
    try:
        wait_until(lambda: runtime.journal(journal).is_open, what="the run to open the journal")
        with pytest.raises(zart.JournalLocked, match="running on it"):
            zart.compact(journal)
    finally:
        gate.touch()
    assert execution.result(timeout=60) == 1
