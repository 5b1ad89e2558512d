"""zart.sql and `zart sql` over stored tables, and the store's layout read by plain duckdb (real processes)."""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

from tables_lib import regions_for_sql, tables_for_sql, three_regions  # noqa: E402

import zart_nb as zart  # noqa: E402
from zart_nb import _values as values  # noqa: E402

HERE = Path(__file__).parent


def _run(journal: Path, execution_id: str = "exec-1", n: int = 10) -> None:
    assert zart.run(tables_for_sql, n, execution_id=execution_id, journal=journal, display=False) == 3 * n


def test_sql_has_a_view_per_table_named_by_execution_and_key_and_a_listing(journal):
    _run(journal)
    _run(journal, "exec-2", n=5)
    got = zart.sql('select cat, avg(x) as mean, count(*) as n from "exec-1/fetch:raw-data#0" group by cat '
                   "order by cat", journal=journal)
    assert isinstance(got, pd.DataFrame)
    assert got.to_dict("list") == {"cat": ["a", "b"], "mean": [9.0, 10.0], "n": [10, 10]}
    listing = zart.sql("select view, execution_id, step_key, kind from zart_tables order by view", journal=journal)
    assert listing.values.tolist() == [
        ["exec-1/fetch:raw-data#0", "exec-1", "fetch:raw-data#0", "pandas.DataFrame"],
        ["exec-1/load#0", "exec-1", "load#0", "pandas.DataFrame"],
        ["exec-2/fetch:raw-data#0", "exec-2", "fetch:raw-data#0", "pandas.DataFrame"],
        ["exec-2/load#0", "exec-2", "load#0", "pandas.DataFrame"]]
    joined = zart.sql('select count(*) as n from "exec-1/load#0" a join "exec-2/load#0" b using (ts)',
                      journal=journal)
    assert joined["n"][0] == 5


def test_a_steps_view_unions_the_tables_of_all_its_keys_with_their_key(journal):
    """A fan-out's outputs in one view, ``"<execution id>/<step name>"``: each row with its step's key, the
    tables' columns united by name; each key keeps its own view, and the listing names each file's step."""
    assert zart.run(regions_for_sql, 3, execution_id="exec-1", journal=journal, display=False) == 3 + 3 + 6 + 12
    got = zart.sql('select step_key, region, count(*) as n, sum(x) as x, count(extra) as extra '
                   'from "exec-1/region-{name}" group by all order by step_key', journal=journal)
    assert got.values.tolist() == [["region-eu", "eu", 3, 3.0, 0], ["region-us", "us", 3, 3.0, 3]]
    fetched = zart.sql('select step_key, count(*) as n from "exec-1/fetch:raw-data" group by 1 order by 1',
                       journal=journal)
    assert fetched.values.tolist() == [["fetch:raw-data#0", 6], ["fetch:raw-data#1", 12]]
    assert zart.sql('select count(*) as n from "exec-1/region-us"', journal=journal)["n"].tolist() == [3]
    listing = zart.sql("select step_key, step from zart_tables order by view", journal=journal)
    assert listing.values.tolist() == [["fetch:raw-data#0", "fetch:raw-data"], ["fetch:raw-data#1", "fetch:raw-data"],
                                       ["region-eu", "region-{name}"], ["region-us", "region-{name}"]]
    assert [s.step for s in zart.stored("exec-1", journal=journal)] == \
        ["fetch:raw-data", "fetch:raw-data", "region-{name}", "region-{name}"]


def test_zart_show_prints_one_key_of_a_steps_tables_and_a_line_for_the_others(journal):
    """A fan-out's stored tables in ``zart show``: the first key of each step with its schema and first rows,
    the others of that step in one line naming the step's SQL view (it printed every table's first rows); the
    JSON keeps every table with its rows."""
    assert zart.run(regions_for_sql, 3, execution_id="exec-1", journal=journal, display=False) == 24
    env = {**os.environ, "ZART_MONITOR": "0"}
    show = subprocess.run([sys.executable, "-m", "zart_nb", "show", "exec-1", "--journal", str(journal)],
                          capture_output=True, text=True, env=env, timeout=60)
    assert show.returncode == 0, show.stderr
    stored = show.stdout[show.stdout.index("Stored values (4)"):].splitlines()
    tops = [re.sub(r"\d+\.\d kB", "N kB", line) for line in stored if re.match(r"  \S", line)]
    assert tops == [
        "  region-eu: pandas.DataFrame, N kB Parquet, 3 rows x 2 columns",
        "  ... and 1 more of step 'region-{name}' (region-us): pandas.DataFrame, N kB; all 2 in SQL: "
        """zart sql 'select * from "exec-1/region-{name}"'""",
        "  fetch:raw-data#0: pandas.DataFrame, N kB Parquet, 6 rows x 2 columns",
        "  ... and 1 more of step 'fetch:raw-data' (fetch:raw-data#1): pandas.DataFrame, N kB; all 2 in SQL: "
        """zart sql 'select * from "exec-1/fetch:raw-data"'"""]
    assert sum(line.split() == ["region", "x"] for line in stored) == 1  # one table's rows, not each one's
    document = json.loads(subprocess.run([sys.executable, "-m", "zart_nb", "show", "exec-1", "--journal",
                                          str(journal), "--json"], capture_output=True, text=True, env=env,
                                         timeout=60).stdout)
    assert [(s["step_key"], s["step"], s["rows"]) for s in document["stored"]] == [
        ("fetch:raw-data#0", "fetch:raw-data", 6), ("fetch:raw-data#1", "fetch:raw-data", 12),
        ("region-eu", "region-{name}", 3), ("region-us", "region-{name}", 3)]


def test_a_page_of_zart_show_says_how_many_tables_the_steps_view_unites(journal):
    """A page holding some keys of a step's tables: its line for the others says they are this page's, and
    counts every table the step's SQL view unites (it said "all 2" of a view of 3)."""
    assert zart.run(three_regions, 2, execution_id="exec-3", journal=journal, display=False) == 6
    env = {**os.environ, "ZART_MONITOR": "0"}
    show = subprocess.run([sys.executable, "-m", "zart_nb", "show", "exec-3", "--journal", str(journal), "--limit",
                           "2"], capture_output=True, text=True, env=env, timeout=60)
    assert show.returncode == 0, show.stderr
    others = [re.sub(r"\d+\.\d kB", "N kB", line) for line in show.stdout.splitlines() if "more of step" in line]
    assert others == ["  ... and 1 more of step 'region-{name}' on this page (region-us): pandas.DataFrame, N kB; "
                      """all 3 in SQL: zart sql 'select * from "exec-3/region-{name}"'"""]
    assert zart.sql('select count(*) as n from "exec-3/region-{name}"', journal=journal)["n"].tolist() == [6]


def test_a_bad_query_is_a_query_error(journal):
    _run(journal)
    with pytest.raises(zart.QueryError, match="nope"):
        zart.sql('select * from "exec-1/nope#0"', journal=journal)
    with pytest.raises(zart.ConfigurationError):
        zart.sql("  ", journal=journal)


def _table(journal: Path, key: str = "load#0") -> Path:
    return values.folder_for(journal) / "tables" / "exec-1" / f"{key}.parquet"


def test_the_store_checks_run_before_duckdb_reads_a_file(journal):
    _run(journal)
    os.chmod(_table(journal), 0o666)
    with pytest.raises(zart.ValueStoreError, match="writable by others"):
        zart.sql('select count(*) from "exec-1/load#0"', journal=journal)
    with pytest.raises(zart.ValueStoreError, match="writable by others"):
        zart.sql("select count(*) from zart_tables", journal=journal)
    assert zart.sql("select 1 as one", journal=journal)["one"].tolist() == [1]  # it reads no table: none checked


def test_a_damaged_table_is_left_out_with_a_warning(journal, caplog):
    _run(journal)
    data = bytearray(_table(journal).read_bytes())
    data[-20] ^= 0xFF
    _table(journal).write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="zart_nb"):
        listing = zart.sql("select view from zart_tables", journal=journal)
    assert listing["view"].tolist() == ["exec-1/fetch:raw-data#0"]
    assert any("load#0" in record.getMessage() and "fails its check" in record.getMessage()
               for record in caplog.records)


def test_a_query_reads_only_the_tables_it_names_and_a_typo_still_gets_duckdbs_suggestion(journal, caplog):
    _run(journal)
    data = bytearray(_table(journal).read_bytes())
    data[-20] ^= 0xFF  # exec-1/load#0 damaged: checked (and warned about) only by a query that may read it
    _table(journal).write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="zart_nb"):
        got = zart.sql('select count(*) as n from "exec-1/fetch:raw-data#0"', journal=journal)
        assert got["n"].tolist() == [20]
        assert not [r for r in caplog.records if "load#0" in r.getMessage()]  # never opened: no view was made
        upper = zart.sql('select count(*) as n from "EXEC-1/FETCH:RAW-DATA#0"', journal=journal)
        assert upper["n"].tolist() == [20]  # DuckDB's names ignore case, and so does the choice of views
        built = zart.sql("select count(*) as n from query_table('exec-1/fetch:raw-data#0')", journal=journal)
        assert built["n"].tolist() == [20]  # a name built as a string: every view is made
        assert any("load#0" in r.getMessage() and "fails its check" in r.getMessage() for r in caplog.records)
    with pytest.raises(zart.QueryError, match='Did you mean "exec-1/fetch:raw-data#0"'):
        zart.sql('select * from "exec-1/fetch:raw-dta#0"', journal=journal)  # names no view: run with all


def test_zart_sql_prints_a_query_and_its_json(journal):
    _run(journal)
    env = {**os.environ, "ZART_MONITOR": "0"}
    query = 'select cat, sum(x) as total from "exec-1/fetch:raw-data#0" group by cat order by cat'
    text = subprocess.run([sys.executable, "-m", "zart_nb", "sql", "--journal", str(journal), query],
                          capture_output=True, text=True, env=env, timeout=60)
    assert text.returncode == 0, text.stderr
    assert text.stdout.split() == ["cat", "total", "a", "90.0", "b", "100.0"]
    out = subprocess.run([sys.executable, "-m", "zart_nb", "sql", "--journal", str(journal), "--json", query],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    document = json.loads(out.stdout)
    assert document["columns"] == ["cat", "total"]
    assert document["rows"] == [{"cat": "a", "total": 90.0}, {"cat": "b", "total": 100.0}]
    bad = subprocess.run([sys.executable, "-m", "zart_nb", "sql", "--journal", str(journal), "select nope"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 1 and "nope" in bad.stderr


def test_plain_duckdb_reads_a_moved_store_through_the_documented_layout(journal, tmp_path):
    _run(journal)
    moved = tmp_path / "elsewhere"
    shutil.copytree(journal.parent, moved)  # the journal and its store copied together, as the README says
    script = textwrap.dedent("""
        import sys
        import duckdb
        rows = duckdb.sql("select cat, count(*) from read_parquet('journal.duckdb.values/tables/exec-1/"
                          "fetch:raw-data#0.parquet') group by cat order by cat").fetchall()
        every = duckdb.sql("select count(*) from read_parquet('journal.duckdb.values/tables/*/load#*.parquet')")
        print(rows, every.fetchall()[0][0], 'zart_nb' in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=moved, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[('a', 10), ('b', 10)] 10 False"
