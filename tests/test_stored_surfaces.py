"""What the surfaces show of a stored value (zart.stored, zart show, zart.show, zart stats, zart-tui's step
screen): kind, size, shape; a table's schema, row count and first rows read from its Parquet file; an
array's dtype and shape. Real worker processes, nothing unpickled by the surfaces."""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import cloudpickle
import pytest

pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

from tables_lib import regions_for_sql, table_and_array  # noqa: E402

import zart_nb as zart  # noqa: E402
from zart_nb import _values as values  # noqa: E402

N = 40


@pytest.fixture
def ran(journal, monkeypatch):
    monkeypatch.setenv("ZART_VALUE_THRESHOLD", "500")  # the 40x4 float32 array (640 bytes) is stored
    assert zart.run(table_and_array, N, execution_id="ex", journal=journal, display=False) == 3 * N
    zart.journal(journal).close()
    return journal


def refuse_unpickling(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a surface unpickled something")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(cloudpickle, "loads", refuse)


def test_stored_lists_kind_size_and_a_tables_schema_rows_and_head(ran, monkeypatch):
    refuse_unpickling(monkeypatch)
    table, array = zart.stored("ex", journal=ran, rows=3)
    assert (table.step_key, table.kind, table.is_table, table.rows) == ("fetch:raw-data#0", "pandas.DataFrame",
                                                                         True, 2 * N)
    assert [name for name, _ in table.columns] == ["cat", "x"] and table.columns[1][1] == "double"
    assert table.columns[0][1] in ("string", "large_string")  # pandas 3 strings are large_string
    assert table.head == (("a", "0.0"), ("b", "1.0"), ("a", "2.0"))
    assert table.size == (values.folder_for(ran) / table.file).stat().st_size
    assert table.summary().startswith(f"pandas.DataFrame, {table.size_text} Parquet, 80 rows x 2 columns")
    assert (array.step_key, array.kind, array.is_table, array.rows) == ("grid#0", "numpy.ndarray", False, None)
    assert array.file.endswith(".zv")
    assert zart.stored("ex", "grid#0", journal=ran) == [array]
    assert zart.stored("nope", journal=ran) == []


def test_a_damaged_table_says_so_instead_of_its_rows(ran):
    (found,) = zart.stored("ex", "fetch:raw-data#0", journal=ran)
    path = values.folder_for(ran) / found.file
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    path.write_bytes(bytes(data))
    (damaged,) = zart.stored("ex", "fetch:raw-data#0", journal=ran)
    assert damaged.rows is None and damaged.head == () and "fails its check" in (damaged.note or "")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "zart_nb", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "ZART_LOCK_TIMEOUT": "1"})


@pytest.mark.parametrize("every", [[], ["--all"]], ids=["paged", "all"])
def test_zart_show_prints_stored_values_and_its_json_lists_them(ran, every):
    shown = _cli("show", "ex", "--journal", str(ran), *every)
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout[shown.stdout.index("Stored values (2)"):]
    lines = text.splitlines()
    assert lines[1].startswith("  fetch:raw-data#0: pandas.DataFrame, ") and "80 rows x 2 columns" in lines[1]
    assert lines[2] in ("    schema: cat: string, x: double", "    schema: cat: large_string, x: double")
    assert lines[3].split() == ["cat", "x"] and lines[4].split() == ["a", "0.0"]
    assert "... 75 more rows" in text
    assert "grid#0: numpy.ndarray, " in text and "dtype=float32 shape=(40, 4)" in text

    as_json = _cli("show", "ex", "--journal", str(ran), "--json", *every)
    whole = json.loads(as_json.stdout)
    assert len(whole["steps"]) == 2
    stored = {s["step_key"]: s for s in whole["stored"]}
    assert stored["fetch:raw-data#0"]["rows"] == 80 and stored["fetch:raw-data#0"]["head"][0] == ["a", "0.0"]
    assert stored["grid#0"]["kind"] == "numpy.ndarray" and stored["grid#0"]["table"] is False


def test_zart_stats_shows_the_stores_size(ran):
    folder = values.folder_for(ran)
    files = [p for p in folder.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    stats = _cli("stats", "--journal", str(ran))
    assert stats.returncode == 0, stats.stderr
    assert stats.stdout.splitlines()[0].split()[-1] == "STORE"
    assert stats.stdout.splitlines()[1].endswith(f"{values.size_text(size)} ({len(files)} files)")
    as_json = json.loads(_cli("stats", "--journal", str(ran), "--json").stdout)
    assert as_json["journals"][0]["store"]["bytes"] == size == as_json["store_bytes"]
    assert as_json["journals"][0]["store"]["files"] == len(files) == 2


def test_zart_show_in_a_notebook_has_the_stored_values(ran, monkeypatch):
    refuse_unpickling(monkeypatch)
    html = zart.show("ex", journal=ran)._repr_html_()
    section = html[html.index("<h4>Stored values</h4>"):]
    assert "<code>fetch:raw-data#0</code>: pandas.DataFrame" in section and "80 rows x 2 columns" in section
    assert "<td style='text-align:left;padding:2px 8px'>0.0</td>" in section and "double" in section
    assert "... 75 more rows" in section
    assert "numpy.ndarray" in section and "dtype=float32 shape=(40, 4)" in section


def test_a_notebook_shows_one_key_of_a_steps_tables_and_a_line_for_the_others(journal, monkeypatch):
    """A fan-out's stored tables in ``zart.show``: the first key of each step with its rows, the others of
    that step in one line naming the step's SQL view (it showed every table's rows)."""
    assert zart.run(regions_for_sql, 3, execution_id="ex", journal=journal, display=False) == 24
    zart.journal(journal).close()
    refuse_unpickling(monkeypatch)
    section = zart.show("ex", journal=journal)._repr_html_()
    section = section[section.index("<h4>Stored values</h4>"):]
    assert section.count("<table") == 2  # fetch:raw-data#0's rows and region-eu's, not #1's nor region-us's
    assert "<code>region-eu</code>" in section and "<code>region-us</code>" not in section
    assert ("... and 1 more of step &#x27;region-{name}&#x27; (region-us): pandas.DataFrame, " in section
            and "zart.sql(&#x27;select * from &quot;ex/region-{name}&quot;&#x27;)" in section)
    assert "... and 1 more of step &#x27;fetch:raw-data&#x27; (fetch:raw-data#1)" in section
