"""A workflow's own large input and output are stored like a step's: an array as raw out-of-band buffers
in the value store, a table (pandas DataFrame) as a Parquet file of the store whatever its size, listed
as ``workflow:output``, queryable with ``zart.sql`` as ``"<execution id>/workflow:output"`` and shown with
its schema and rows by ``zart show``. The first run and the replay give equal values with their dtypes
(real worker processes, a real DuckDB file, the CLI in a subprocess)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

from steps_lib import calls  # noqa: E402
from workflow_values_lib import (  # noqa: E402
    array_in_then_fail,
    array_out,
    frame_of,
    frame_out,
    mixed_out,
)

import zart_nb as zart  # noqa: E402
from zart_nb import _values as values  # noqa: E402
from zart_nb._runtime import runtime  # noqa: E402

N = 200_000  # 1.6 MB of float64: above the threshold set below


@pytest.fixture(autouse=True)
def threshold(monkeypatch):
    monkeypatch.setenv("ZART_VALUE_THRESHOLD", str(1 << 20))
    monkeypatch.delenv("ZART_VALUE_STORE", raising=False)


def _blobs(journal, execution_id: str) -> tuple[bytes, bytes]:
    """The journaled ``(input, output)`` of an execution (references or pickles, never unpickled)."""
    j = runtime.journal(journal)
    with j.hold():
        row = j.query(lambda conn: conn.execute("SELECT input, output FROM executions WHERE execution_id = ?",
                                                [execution_id]).fetchone())
    j.close()
    return row


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "zart_nb", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "ZART_LOCK_TIMEOUT": "1"})


def test_a_dataframe_output_is_parquet_and_round_trips_with_its_dtypes(journal, tmp_path):
    array = np.linspace(0, 1, N)
    params = {"array": array, "counter_dir": str(tmp_path)}
    first = zart.run(frame_out, params, execution_id="f", journal=journal, display=False)
    pd.testing.assert_frame_equal(first, frame_of(array, 3.0))

    given, made = _blobs(journal, "f")
    inp, out = values.decode_ref(given), values.decode_ref(made)
    assert inp.kind == "dict" and inp.name.endswith(".zv")  # the input dict, its array out of band:
    assert 0 <= inp.size - array.nbytes < 4096  # the array's bytes raw, beside a small pickle and header
    assert (out.name, out.kind) == ("tables/f/workflow:output.parquet", "pandas.DataFrame")
    assert (values.folder_for(journal) / out.name).stat().st_size == out.size

    runtime.journal(journal).close()
    again = zart.run(frame_out, params, execution_id="f", journal=journal, display=False)
    pd.testing.assert_frame_equal(again, first)  # from the Parquet file: dtypes, index and time zone kept
    assert [str(d).split("[")[0] for d in again.dtypes] == ["float64", "category", "datetime64", "Int64"]
    assert again.dtypes.equals(first.dtypes) and str(again["ts"].dtype).endswith(", Europe/Paris]")
    assert calls(tmp_path) == ["body", "scale"]  # the replay ran nothing
    again.iloc[0, 0] = -1.0  # the caller's own frame: the stored one does not change
    pd.testing.assert_frame_equal(zart.run(frame_out, params, execution_id="f", journal=journal, display=False),
                                  first)

    got = zart.sql('select cat, count(*) as n, sum("count") as c from "f/workflow:output" group by cat order by cat',
                   journal=journal)
    want = first.groupby("cat", observed=True).agg(n=("x", "size"), c=("count", "sum")).sort_index()
    assert got["cat"].tolist() == ["a", "b", "c"]
    assert got["n"].tolist() == [want.loc[c, "n"] for c in ["a", "b", "c"]]
    assert got["c"].tolist() == [want.loc[c, "c"] for c in ["a", "b", "c"]]
    listed = zart.sql("select view, step_key, kind from zart_tables", journal=journal)
    assert listed.values.tolist() == [["f/workflow:output", "workflow:output", "pandas.DataFrame"]]
    assert zart.gc(journal, min_age=0).removed == ()  # referenced by the execution's row


def test_zart_show_lists_the_outputs_schema_and_rows(journal, tmp_path):
    params = {"array": np.linspace(0, 1, N), "counter_dir": str(tmp_path)}
    zart.run(frame_out, params, execution_id="f", journal=journal, display=False)
    runtime.journal(journal).close()
    for every in ([], ["--all"]):
        shown = _cli("show", "f", "--journal", str(journal), *every)
        assert shown.returncode == 0, shown.stderr
        text = shown.stdout[shown.stdout.index("Stored values (1)"):].splitlines()
        assert text[1].startswith("  workflow:output: pandas.DataFrame, ")
        assert f"{N:,} rows x 5 columns" in text[1]  # the named index is a column
        assert text[2].startswith("    schema: x: double, cat: dictionary<") and ", tz=Europe/Paris]" in text[2]
        assert text[3].split() == ["x", "cat", "ts", "count", "row"]
        as_json = json.loads(_cli("show", "f", "--journal", str(journal), "--json", *every).stdout)
        (stored,) = as_json["stored"]
        assert (stored["step_key"], stored["rows"], stored["table"]) == ("workflow:output", N, True)
    assert [s.step_key for s in zart.stored("f", journal=journal)] == ["workflow:output"]
    assert zart.stored("f", "scale#0", journal=journal) == []
    html = zart.show("f", journal=journal)._repr_html_()  # the notebook's view: the same section
    section = html[html.index("<h4>Stored values</h4>"):]
    assert "<code>workflow:output</code>: pandas.DataFrame" in section and f"{N:,} rows x 5 columns" in section


@pytest.mark.parametrize("dtype", ["float32", "int64"])
def test_an_array_input_and_output_are_raw_buffers_and_round_trip(journal, tmp_path, dtype):
    array = (np.arange(N * 2) % 1000).astype(dtype)
    params = {"array": array, "counter_dir": str(tmp_path)}
    first = zart.run(array_out, params, execution_id="a", journal=journal, display=False)
    assert first.dtype == array.dtype and np.array_equal(first, array)
    given, made = _blobs(journal, "a")
    for blob, kind in ((given, "dict"), (made, "numpy.ndarray")):
        ref = values.decode_ref(blob)  # the array's bytes raw, beside a small pickle and header
        assert ref.kind == kind and ref.name.endswith(".zv") and 0 <= ref.size - array.nbytes < 4096
    again = zart.run(array_out, params, execution_id="a", journal=journal, display=False)
    assert again.dtype == first.dtype and np.array_equal(again, first)
    assert again.flags.writeable  # mapped copy-on-write: writable as on the first run
    again[0] = 7
    assert np.array_equal(zart.run(array_out, params, execution_id="a", journal=journal, display=False), first)
    assert calls(tmp_path) == ["body", "scale"]


def test_a_frame_parquet_cannot_hold_stays_a_pickle_and_says_why(journal, tmp_path):
    first = zart.run(mixed_out, str(tmp_path), execution_id="m", journal=journal, display=False)
    _, made = _blobs(journal, "m")
    ref = values.decode_ref(made)
    assert ref.name.endswith(".zv") and ref.kind == "pandas.DataFrame"  # large: in the store, as a pickle
    record = zart.journal(journal).execution_record("m")
    assert "[a pickle, not Parquet: ArrowInvalid" in record.output_preview and "[stored:" in record.output_preview
    zart.journal(journal).close()
    pd.testing.assert_frame_equal(zart.run(mixed_out, str(tmp_path), execution_id="m", journal=journal,
                                           display=False), first)
    assert zart.sql("select view from zart_tables", journal=journal).empty


def test_a_dataframe_output_goes_to_the_executions_value_store(journal, tmp_path):
    store = tmp_path / "store"
    params = {"array": np.linspace(0, 1, 1000), "counter_dir": str(tmp_path)}  # small: Parquet all the same
    first = zart.run(frame_out, params, execution_id="v", journal=journal, display=False, value_store=store)
    assert (store / "tables" / "v" / "workflow:output.parquet").is_file()
    assert not (values.folder_for(journal) / "tables").exists()
    (found,) = zart.stored("v", journal=journal)
    assert (found.step_key, found.store, found.rows) == ("workflow:output", str(store), 1000)
    assert zart.sql('select count(*) as n from "v/workflow:output"', journal=journal)["n"].tolist() == [1000]
    runtime.journal(journal).close()
    pd.testing.assert_frame_equal(zart.run(frame_out, params, execution_id="v", journal=journal, display=False),
                                  first)


def test_a_large_input_is_written_once_not_at_every_run(journal, tmp_path):
    array = np.arange(N, dtype=np.float64)
    params = {"array": array, "counter_dir": str(tmp_path), "flag": str(tmp_path / "flag")}
    (tmp_path / "flag").touch()
    names = []
    for _ in range(2):
        with pytest.raises(zart.TaskError, match="failing after the step"):
            zart.run(array_in_then_fail, params, execution_id="i", journal=journal, display=False)
        names.append(values.decode_ref(_blobs(journal, "i")[0]).name)
    (tmp_path / "flag").unlink()
    assert zart.run(array_in_then_fail, params, execution_id="i", journal=journal, display=False) == \
        float(array.sum()) * 2
    names.append(values.decode_ref(_blobs(journal, "i")[0]).name)
    assert names[0] == names[1] == names[2]  # the same file: journaled once, referenced by every run
    assert sorted(os.listdir(values.folder_for(journal))) == [names[0]]  # no orphan left for gc
    assert calls(tmp_path) == ["body", "scale", "body", "body"]


def test_a_lost_input_file_is_written_again_by_the_next_run(journal, tmp_path):
    array = np.arange(N, dtype=np.float64)
    params = {"array": array, "counter_dir": str(tmp_path), "flag": str(tmp_path / "flag")}
    (tmp_path / "flag").touch()
    with pytest.raises(zart.TaskError):
        zart.run(array_in_then_fail, params, execution_id="i", journal=journal, display=False)
    first = values.decode_ref(_blobs(journal, "i")[0]).name
    (values.folder_for(journal) / first).unlink()
    (tmp_path / "flag").unlink()
    assert zart.run(array_in_then_fail, params, execution_id="i", journal=journal, display=False) == \
        float(array.sum()) * 2
    again = values.decode_ref(_blobs(journal, "i")[0]).name
    assert again != first and (values.folder_for(journal) / again).is_file()
    assert np.array_equal(values.load(_blobs(journal, "i")[0], journal)["array"], array)  # what a resume loads
