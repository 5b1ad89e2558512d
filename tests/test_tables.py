"""Tables as Parquet in the value store (real worker processes, a real DuckDB file, pandas and pyarrow)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pd = pytest.importorskip("pandas")
pa = pytest.importorskip("pyarrow")

from steps_lib import calls  # noqa: E402
from tables_lib import frame, tables_then_fail  # noqa: E402

import zart_nb as zart  # noqa: E402
from zart_nb import _serialization as ser  # noqa: E402
from zart_nb import _values as values  # noqa: E402
from zart_nb._runtime import runtime  # noqa: E402


def _params(tmp_path: Path, n: int = 100) -> dict:
    return {"n": n, "counter_dir": str(tmp_path), "flag": str(tmp_path / "fail")}


def _fail_then_resume(journal: Path, params: dict) -> dict:
    Path(params["flag"]).touch()
    with pytest.raises(zart.TaskError, match="failing after the table steps"):
        zart.run(tables_then_fail, params, execution_id="exec-1", journal=journal, display=False)
    os.unlink(params["flag"])
    return zart.run(tables_then_fail, params, execution_id="exec-1", journal=journal, display=False)


def _check_frame(got, n: int) -> None:
    want = frame(n)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert str(got.dtypes["cat"]) == "category" and list(got["cat"].cat.categories) == ["a", "b", "c"]
    assert str(got["ts"].dt.tz) == "Europe/Paris"
    assert str(got.dtypes["count"]) == "Int64" and got["count"].isna().sum() == want["count"].isna().sum()
    assert got.index.name == "row" and list(got.index[:2]) == ["r0", "r1"]


def test_a_dataframe_is_stored_as_parquet_and_round_trips_its_dtypes_on_replay_and_through_load(journal, tmp_path):
    params = _params(tmp_path)
    out = _fail_then_resume(journal, params)
    assert sorted(calls(tmp_path)) == ["arrow", "load", "mixed"]  # the re-run reused all three
    _check_frame(out["df"], params["n"])
    _check_frame(zart.load("exec-1", "load#0", journal=journal), params["n"])
    assert out["table"].equals(pa.table({"k": ["p", "q"], "v": [1, 2]}))  # a pyarrow Table stays one
    stored = runtime.journal(journal).pickled_steps("exec-1")
    ref = values.decode_ref(stored["load#0"].output)
    assert ref.name == "tables/exec-1/load#0.parquet" and ref.kind == "pandas.DataFrame"
    path = values.folder_for(journal) / ref.name
    assert path.read_bytes()[:4] == b"PAR1" and os.stat(path).st_mode & 0o777 == 0o600
    import pyarrow.parquet as pq

    assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"


def test_previews_show_kind_rows_columns_and_schema_and_a_pickled_frame_says_why(journal, tmp_path):
    zart.run(tables_then_fail, _params(tmp_path), execution_id="exec-1", journal=journal, display=False)
    steps = {step.step_key: step.output_preview for step in zart.journal(journal, live=False).list_steps("exec-1")}
    assert steps["load#0"].startswith("<pandas.DataFrame rows=100 columns=4> [stored as Parquet: ")
    assert "cat: category" in steps["load#0"] and "ts: datetime64[" in steps["load#0"]
    assert "Europe/Paris" in steps["load#0"] and "count: Int64" in steps["load#0"]
    assert steps["arrow#0"].startswith("<pyarrow.Table rows=2 columns=2>") and "v: int64" in steps["arrow#0"]
    assert steps["mixed#0"].startswith("<pandas.DataFrame rows=3 columns=1> [a pickle, not Parquet: ")
    assert "column m" in steps["mixed#0"]
    stored = runtime.journal(journal).pickled_steps("exec-1")
    assert not values.is_ref(stored["mixed#0"].output)  # small: its pickle is in the row


def test_a_large_mixed_frame_goes_to_the_store_as_a_pickle_and_says_so(journal, tmp_path, monkeypatch):
    monkeypatch.setenv("ZART_VALUE_THRESHOLD", "10")
    zart.run(tables_then_fail, _params(tmp_path), execution_id="exec-1", journal=journal, display=False)
    stored = runtime.journal(journal).pickled_steps("exec-1")
    assert values.decode_ref(stored["mixed#0"].output).name.endswith(".zv")
    steps = {step.step_key: step for step in zart.journal(journal, live=False).list_steps("exec-1")}
    preview = steps["mixed#0"].output_preview
    assert "[a pickle, not Parquet: " in preview and "[stored: " in preview, preview


def test_the_inline_executor_stores_tables_as_parquet_too(journal, tmp_path, inline):
    params = _params(tmp_path)
    out = _fail_then_resume(journal, params)
    _check_frame(out["df"], params["n"])
    assert (values.folder_for(journal) / "tables" / "exec-1" / "load#0.parquet").exists()


def test_a_changed_parquet_file_makes_its_step_run_again(journal, tmp_path):
    params = _params(tmp_path)
    Path(params["flag"]).touch()
    with pytest.raises(zart.TaskError):
        zart.run(tables_then_fail, params, execution_id="exec-1", journal=journal, display=False)
    os.unlink(params["flag"])
    path = values.folder_for(journal) / "tables" / "exec-1" / "load#0.parquet"
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF  # same size, a damaged footer
    path.write_bytes(bytes(data))
    out = zart.run(tables_then_fail, params, execution_id="exec-1", journal=journal, display=False)
    assert sorted(calls(tmp_path)) == ["arrow", "load", "load", "mixed"]
    _check_frame(out["df"], params["n"])


def test_a_table_file_writable_by_others_is_refused_before_it_is_read(journal, tmp_path):
    zart.run(tables_then_fail, _params(tmp_path), execution_id="exec-1", journal=journal, display=False)
    path = values.folder_for(journal) / "tables" / "exec-1" / "load#0.parquet"
    os.chmod(path, 0o666)
    with pytest.raises(zart.ValueStoreError, match="writable by others"):
        zart.load("exec-1", "load#0", journal=journal)


def test_a_stored_file_is_durable_through_each_folder_made_for_it_and_no_more(tmp_path, monkeypatch):
    """A value's file and the folder entry naming it are fsynced before its record is journaled, and so is
    each folder made for it (in its parent), once: a second value in the same folders syncs only its own."""
    synced: list[Path] = []
    sync = values.sync_folder
    monkeypatch.setattr(values, "sync_folder", lambda folder: (synced.append(Path(folder)), sync(folder))[1])
    store = tmp_path / "j.duckdb.values"
    frame_ = pd.DataFrame({"x": [1.0, 2.0]})
    kind = "pandas.DataFrame"
    values.encode_table(frame_, kind, (str(store), 1 << 18), "e", "a")
    assert synced == [tmp_path, store, store / "tables", store / "tables" / "e"]  # each made, then the file's
    synced.clear()
    values.encode_table(frame_, kind, (str(store), 1 << 18), "e", "b")
    assert synced == [store / "tables" / "e"]
    synced.clear()
    array_store = tmp_path / "k.duckdb.values"
    data, buffers = ser.dumps_out_of_band(bytes(100))
    values.write(array_store, data, buffers, "bytes")
    assert synced == [tmp_path, array_store]
    synced.clear()
    values.write(array_store, data, buffers, "bytes")
    assert synced == [array_store]


@pytest.mark.parametrize(("text", "part"), [("exec-1", "exec-1"), ("load#0", "load#0"), ("a:b", "a:b"),
                                            ("a/b", "a%2Fb"), (".hidden", "%2Ehidden"), ("x*[y]?", "x%2A%5By%5D%3F"),
                                            ("é", "%C3%A9")])
def test_file_names_of_ids_and_keys(text, part):
    assert values.file_part(text) == part


def test_a_long_key_is_cut_with_a_hash_of_the_whole():
    long, other = "k" * 300, "k" * 299 + "j"
    assert len(values.file_part(long)) == values.NAME_CHARS and values.file_part(long) != values.file_part(other)
    assert values.file_part(long).startswith("k" * 150) and "~" in values.file_part(long)


def test_a_delete_frees_its_tables_and_gc_keeps_the_others(journal, tmp_path):
    zart.run(tables_then_fail, _params(tmp_path), execution_id="exec-1", journal=journal, display=False)
    zart.run(tables_then_fail, _params(tmp_path), execution_id="exec-2", journal=journal, display=False)
    leftover = values.folder_for(journal) / "tables" / "exec-1" / ".0123.tmp"  # a writer killed mid-file
    leftover.write_bytes(b"PAR1")
    report = zart.gc(journal, min_age=0)
    assert report.removed == ("tables/exec-1/.0123.tmp",) and report.referenced == 4
    zart.delete("exec-2", journal=journal)  # frees its tables at once, and their folder
    assert not (values.folder_for(journal) / "tables" / "exec-2").exists()
    assert zart.gc(journal, min_age=0).removed == ()
    _check_frame(zart.load("exec-1", "load#0", journal=journal), 100)


def test_a_polars_frame_round_trips_as_polars(journal, inline):
    pl = pytest.importorskip("polars")
    want = pl.DataFrame({"k": ["a", "b", None], "v": [1, None, 3],
                         "c": pl.Series(["x", "y", "x"], dtype=pl.Categorical)})
    step = zart.step("polars-frame")(lambda: want)
    flow = zart.workflow("polars-flow")(lambda _: zart.wait([zart.schedule(step)])[0])
    got = zart.run(flow, None, execution_id="p", journal=journal, display=False)
    assert isinstance(got, pl.DataFrame) and got.equals(want) and got.schema == want.schema
    loaded = zart.load("p", "polars-frame#0", journal=journal)
    assert isinstance(loaded, pl.DataFrame) and loaded.equals(want)
    ref = values.decode_ref(runtime.journal(journal).pickled_steps("p")["polars-frame#0"].output)
    assert ref.name == "tables/p/polars-frame#0.parquet" and ref.kind == "polars.DataFrame"


def test_without_pyarrow_a_frame_stays_a_pickle_and_says_so(journal):
    script = textwrap.dedent(f"""
        import sys
        sys.modules["pyarrow"] = None  # as if not installed: `import pyarrow` raises ImportError
        import pandas as pd
        import zart_nb as zart
        from zart_nb._executors.inline import InlineExecutor
        from zart_nb._runtime import runtime
        runtime.executor_factory = InlineExecutor
        step = zart.step("no-arrow")(lambda: pd.DataFrame({{"a": [1, 2]}}))
        flow = zart.workflow("no-arrow-flow")(lambda _: zart.wait([zart.schedule(step)])[0])
        got = zart.run(flow, None, execution_id="n", journal={str(journal)!r}, display=False)
        again = zart.run(flow, None, execution_id="n", journal={str(journal)!r}, display=False)
        print(got["a"].tolist(), again["a"].tolist())
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "ZART_MONITOR": "0"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "[1, 2] [1, 2]"
    assert not values.is_ref(runtime.journal(journal).pickled_steps("n")["no-arrow#0"].output)
    steps = zart.journal(journal, live=False).list_steps("n")
    assert steps[0].output_preview == "<pandas.DataFrame rows=2 columns=1> [a pickle, not Parquet: " \
                                      "pyarrow is not installed]"


def test_zart_show_lists_a_tables_schema_without_unpickling(journal, tmp_path):
    zart.run(tables_then_fail, _params(tmp_path), execution_id="exec-1", journal=journal, display=False)
    runtime.journal(journal).close()
    out = subprocess.run([sys.executable, "-m", "zart_nb", "show", "exec-1", "--journal", str(journal), "--json"],
                         capture_output=True, text=True, timeout=60, env={**os.environ, "ZART_MONITOR": "0"})
    assert out.returncode == 0, out.stderr
    steps = {step["step_key"]: step["output_preview"] for step in __import__("json").loads(out.stdout)["steps"]}
    assert steps["load#0"].startswith("<pandas.DataFrame rows=100 columns=4> [stored as Parquet: ")
    assert "cat: category" in steps["load#0"] and "[a pickle, not Parquet: " in steps["mixed#0"]
