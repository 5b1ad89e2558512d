"""`zart stats` counts every value store folder of a journal (its own `<journal>.values` and each
`value_store=` folder its executions were run with), and `zart.sql` / `zart sql` see the tables of
executions run with `value_store=` in every path: from the file, through the monitor of the engine
holding the journal, and beside an engine that serves no monitor (the list of folders kept beside the
journal, `_storefolders`). Each folder passes the store's checks first. Real worker and engine
processes, a real DuckDB file, the CLI in subprocesses."""
from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

from conftest import wait_until  # noqa: E402
from tables_lib import tables_for_sql  # noqa: E402

import zart_nb as zart  # noqa: E402
from zart_nb import _storefolders as storefolders  # noqa: E402
from zart_nb import _values as values  # noqa: E402
from zart_nb._monitor import endpoint as endpoint_file  # noqa: E402

TESTS = Path(__file__).parent
DRIVER = TESTS / "scripts" / "tables_driver.py"
VIEW = "held/frame:sales-3"


def _disk(folder: Path) -> tuple[int, int]:
    """``(files, bytes)`` of a folder as found on disk."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "zart_nb", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "ZART_LOCK_TIMEOUT": "1", **(env or {})})


@pytest.fixture
def two_stores(journal, tmp_path, monkeypatch):
    """Execution ``own`` keeps its tables in ``<journal>.values``, ``away`` in ``tmp_path/store``."""
    monkeypatch.delenv("ZART_VALUE_STORE", raising=False)
    store = tmp_path / "store"
    assert zart.run(tables_for_sql, 3, execution_id="own", journal=journal, display=False) == 9
    assert zart.run(tables_for_sql, 4, execution_id="away", journal=journal, display=False, value_store=store) == 12
    zart.journal(journal).close()
    return store


def test_stats_counts_each_value_store_folder_and_their_total(journal, two_stores):
    own = values.folder_for(journal)
    listing = own / storefolders.LISTING
    assert stat.S_IMODE(listing.stat().st_mode) == 0o600  # the list of the journal's other stores
    assert listing.read_text().split("\t")[1] == f"{two_stores}\n"
    (own_files, own_bytes), (away_files, away_bytes) = _disk(own), _disk(two_stores)
    assert away_files == 3  # two tables and the folder's claim (.zart-journal)

    as_json = json.loads(_cli("stats", "--journal", str(journal), "--json").stdout)
    (one,) = as_json["journals"]
    assert [(f["path"], f["files"], f["bytes"], f["own"], f["error"]) for f in one["stores"]] == [
        (str(own.resolve()), own_files, own_bytes, True, None), (str(two_stores), away_files, away_bytes, False, None)]
    assert one["store"] == {"path": str(own.resolve()), "files": own_files, "bytes": own_bytes}
    assert as_json["store_bytes"] == one["store_bytes"] == own_bytes + away_bytes
    assert as_json["store_files"] == own_files + away_files

    text = _cli("stats", "--journal", str(journal))
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[1].endswith(f"{values.size_text(own_bytes + away_bytes)} ({own_files + away_files} files)")
    section = lines[lines.index("") + 1:]
    assert section[0].split() == ["VALUE", "STORE", "JOURNAL", "FILES", "SIZE", "NOTE"]
    rows = {line.split()[0]: line.split()[1:] for line in section[1:]}
    assert rows[str(own.resolve())] == ["journal", str(own_files), *values.size_text(own_bytes).split()]
    assert rows[str(two_stores)] == ["journal", str(away_files), *values.size_text(away_bytes).split()]
    assert rows["all"] == [str(own_files + away_files), *values.size_text(own_bytes + away_bytes).split()]


def test_sql_from_the_file_sees_the_tables_of_both_stores(journal, two_stores):
    views = zart.sql("select view, path from zart_tables order by view", journal=journal)
    assert views["view"].tolist() == ["away/fetch:raw-data#0", "away/load#0", "own/fetch:raw-data#0", "own/load#0"]
    assert all(p.startswith(str(two_stores)) for p in views["path"][:2])
    got = zart.sql('select count(*) as n from "away/fetch:raw-data#0"', journal=journal)
    assert got["n"].tolist() == [8]


def test_a_store_folder_others_can_write_is_not_counted_and_says_why(journal, two_stores):
    two_stores.chmod(0o777)
    try:
        as_json = json.loads(_cli("stats", "--journal", str(journal), "--json").stdout)
        away = as_json["journals"][0]["stores"][1]
        assert (away["files"], away["bytes"]) == (0, 0) and "writable by others" in away["error"]
        text = _cli("stats", "--journal", str(journal)).stdout
        assert "writable by others" in text
    finally:
        two_stores.chmod(0o700)


def test_a_listing_others_can_write_is_refused(journal, two_stores):
    listing = values.folder_for(journal) / storefolders.LISTING
    listing.chmod(0o622)
    with pytest.raises(zart.ValueStoreError, match="others can write it"):
        storefolders.remembered(journal)
    listing.chmod(0o600)
    assert storefolders.remembered(journal) == [str(two_stores)]


def test_a_folder_claimed_since_by_another_journal_is_not_listed(journal, two_stores):
    (two_stores / ".zart-journal").write_text("another-journal-id")
    assert storefolders.remembered(journal) == []
    assert zart.journal(journal).value_stores() == []
    zart.journal(journal).close()


# --- beside a running engine -------------------------------------------------------------------------


def _driver(journal: Path, workdir: Path, store: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(DRIVER), str(journal), str(workdir)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=workdir,
                            env={**os.environ, "ZART_VALUE_STORE": str(store), **(env or {})})


def _finish(driver: subprocess.Popen[str], workdir: Path) -> None:
    (workdir / "go").touch()
    out, err = driver.communicate(timeout=60)
    assert "DONE completed" in out, err


def _views(journal: Path) -> list[str]:
    return zart.sql("select view from zart_tables order by view", journal=journal)["view"].tolist()


def _store_row(journal: Path) -> tuple[str, dict]:
    """How ``zart stats --json`` read the journal, and its ``value_store=`` folder's row."""
    listed = _cli("stats", "--journal", str(journal), "--json")
    assert listed.returncode == 0, listed.stderr
    (one,) = json.loads(listed.stdout)["journals"]
    return one["state"], one["stores"][-1]


def test_sql_and_stats_through_the_monitor_of_the_engine_holding_the_journal(tmp_path):
    journal, store = tmp_path / "j.duckdb", tmp_path / "store"
    driver = _driver(journal, tmp_path, store)
    try:
        wait_until(lambda: endpoint_file.read(journal), what="the driver's endpoint")
        wait_until(lambda: _views(journal) == [VIEW], timeout=60, what="the table step, through the monitor")
        got = zart.sql(f'select cat, sum(x) as total from "{VIEW}" group by cat order by cat', journal=journal)
        assert got.to_dict("list") == {"cat": ["a", "b"], "total": [6.0, 9.0]}
        path = zart.sql("select path from zart_tables", journal=journal)["path"][0]
        assert path == str(store / "tables" / "held" / "frame:sales-3.parquet")
        state, row = _store_row(journal)
        assert state == "live" and row["path"] == str(store) and row["files"] == _disk(store)[0] == 2
        assert driver.poll() is None  # still running, still holding the journal
    finally:
        if driver.poll() is None:
            _finish(driver, tmp_path)


def test_sql_and_stats_beside_an_engine_serving_no_monitor(tmp_path, caplog):
    journal, store = tmp_path / "j.duckdb", tmp_path / "store"
    driver = _driver(journal, tmp_path, store, {"ZART_MONITOR": "0"})
    table = store / "tables" / "held" / "frame:sales-3.parquet"
    try:
        wait_until(table.exists, timeout=60, what="the table step's file in the value store")
        with caplog.at_level(logging.WARNING, logger="zart_nb"):
            got = zart.sql(f'select count(*) as n from "{VIEW}"', journal=journal)
        assert got["n"].tolist() == [6]
        assert any("serves no monitor" in r.getMessage() for r in caplog.records)
        cli = _cli("sql", "--journal", str(journal), "--json", f'select count(*) as n from "{VIEW}"')
        assert cli.returncode == 0, cli.stderr
        assert json.loads(cli.stdout)["rows"] == [{"n": 6}]
        state, row = _store_row(journal)
        assert state == "locked" and row["path"] == str(store) and row["files"] == 2
        text = _cli("stats", "--journal", str(journal))  # its stores are counted; the holder is named
        assert text.returncode == 0 and "serves no monitor" in text.stderr
        assert text.stdout.splitlines()[0].split() == ["VALUE", "STORE", "JOURNAL", "FILES", "SIZE", "NOTE"]
        rows = {line.split()[0]: line.split()[1:] for line in text.stdout.splitlines()[1:]}
        assert rows[str(store)][:2] == ["j", "2"]
        assert driver.poll() is None
    finally:
        if driver.poll() is None:
            _finish(driver, tmp_path)
    assert _views(journal) == [VIEW]  # and from the file, once the engine let it go
