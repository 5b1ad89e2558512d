"""zart.sql, `zart sql` and zart.stored beside another process's engine that holds the journal: the list
of tables comes through its monitor (or, when it serves none, from the store's files), never by waiting
for the journal's lock (real engine processes)."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

from conftest import wait_until  # noqa: E402

import zart_nb as zart  # noqa: E402
from zart_nb import _values as values  # noqa: E402
from zart_nb._monitor import endpoint as endpoint_file  # noqa: E402

DRIVER = Path(__file__).parent / "scripts" / "tables_driver.py"
VIEW = "held/frame:sales-3"


def _driver(journal: Path, workdir: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(DRIVER), str(journal), str(workdir)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=workdir, env={**os.environ, **(env or {})})


def _finish(driver: subprocess.Popen[str], workdir: Path) -> str:
    (workdir / "go").touch()
    out, err = driver.communicate(timeout=60)
    assert "DONE completed" in out, err
    return out


def _views(journal: Path) -> list[str]:
    return zart.sql("select view from zart_tables order by view", journal=journal)["view"].tolist()


def _held(journal: Path) -> bool:
    """Whether another process holds the journal (a read without waiting is refused)."""
    reader = zart.journal(journal, live=False, lock_timeout=0)
    try:
        reader.list_executions()
        return False
    except zart.JournalLocked:
        return True
    finally:
        reader.close()


def test_sql_and_stored_read_through_the_monitor_of_the_engine_holding_the_journal(tmp_path):
    journal = tmp_path / "j.duckdb"
    driver = _driver(journal, tmp_path)
    try:
        wait_until(lambda: endpoint_file.read(journal), what="the driver's endpoint")
        wait_until(lambda: _views(journal) == [VIEW], timeout=60, what="the table step, through the monitor")
        assert _held(journal)  # the engine holds the file all along: the list came through its monitor
        got = zart.sql(f'select cat, sum(x) as total from "{VIEW}" group by cat order by cat', journal=journal)
        assert got.to_dict("list") == {"cat": ["a", "b"], "total": [6.0, 9.0]}
        by_step = zart.sql('select step_key, count(*) as n from "held/frame:sales-{n}" group by 1', journal=journal)
        assert by_step.values.tolist() == [["frame:sales-3", 6]]  # the step's name came through the monitor too

        (found,) = zart.stored("held", journal=journal)
        assert (found.step_key, found.kind, found.rows) == ("frame:sales-3", "pandas.DataFrame", 6)
        assert found.columns == (("cat", "dictionary<values=string, indices=int8, ordered=0>"), ("x", "double"))
        assert found.head[:2] == (("a", "0.0"), ("b", "1.0")) and found.note is None

        cli = subprocess.run([sys.executable, "-m", "zart_nb", "sql", "--journal", str(journal), "--json",
                              f'select count(*) as n from "{VIEW}"'], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "ZART_LOCK_TIMEOUT": "1"})
        assert cli.returncode == 0, cli.stderr
        assert json.loads(cli.stdout)["rows"] == [{"n": 6}]
        assert driver.poll() is None  # still running, still holding the journal
    finally:
        if driver.poll() is None:
            _finish(driver, tmp_path)
    assert _views(journal) == [VIEW]  # and from the file, once the engine let it go


def test_sql_beside_an_engine_serving_no_monitor_lists_the_store_files(tmp_path, caplog):
    journal = tmp_path / "j.duckdb"
    driver = _driver(journal, tmp_path, {"ZART_MONITOR": "0"})
    table = values.folder_for(journal) / "tables" / "held" / "frame:sales-3.parquet"
    try:
        wait_until(table.exists, timeout=60, what="the table step's file")
        wait_until(lambda: _held(journal), what="the engine to hold the journal")
        with caplog.at_level(logging.WARNING, logger="zart_nb"):
            got = zart.sql(f'select count(*) as n from "{VIEW}"', journal=journal)
        assert got["n"].tolist() == [6]
        assert any("serves no monitor" in r.getMessage() for r in caplog.records)
        with pytest.raises(zart.JournalLocked, match="no monitor"):
            zart.stored("held", journal=journal)  # the journaled list cannot be read: its holder is named
        assert driver.poll() is None
    finally:
        if driver.poll() is None:
            _finish(driver, tmp_path)
