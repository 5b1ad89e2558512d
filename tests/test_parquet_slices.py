"""Large frames written to Parquet a slice of rows at a time and read back a column (and a row group) at a
time (``_parquet``): real worker processes, a real DuckDB file, the Parquet files themselves."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

pd = pytest.importorskip("pandas")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from slices_lib import SLICE_BYTES, ranged_frame, sliced_frame, sliced_then_fail  # noqa: E402
from steps_lib import calls  # noqa: E402

import zart_nb as zart  # noqa: E402
from zart_nb import _parquet  # noqa: E402
from zart_nb import _values as values  # noqa: E402

N = 3000


def _params(tmp_path: Path) -> dict:
    return {"n": N, "counter_dir": str(tmp_path), "flag": str(tmp_path / "fail")}


def _fail_then_resume(journal: Path, params: dict) -> dict:
    Path(params["flag"]).touch()
    with pytest.raises(zart.TaskError, match="failing after the sliced frames"):
        zart.run(sliced_then_fail, params, execution_id="big", journal=journal, display=False)
    os.unlink(params["flag"])
    return zart.run(sliced_then_fail, params, execution_id="big", journal=journal, display=False)


def _check(got: pd.DataFrame, want: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    for name in want.columns:
        if isinstance(want[name].dtype, pd.CategoricalDtype):
            assert list(got[name].cat.categories) == list(want[name].cat.categories)
            assert got[name].cat.ordered == want[name].cat.ordered
    assert got.index.equals(want.index) and type(got.index) is type(want.index)


def test_a_frame_spanning_several_slices_round_trips_dtypes_categories_and_index(journal, tmp_path, monkeypatch):
    params = _params(tmp_path)
    out = _fail_then_resume(journal, params)
    assert sorted(calls(tmp_path)) == ["mixed-large", "ranged", "sliced"]  # the re-run reused them
    want = sliced_frame(N)
    _check(out["df"], want)
    _check(zart.load("big", "sliced#0", journal=journal), want)
    _check(out["ranged"], ranged_frame(N))
    assert list(out["ranged"].index[:2]) == [10, 13]

    path = values.folder_for(journal) / "tables" / "big" / "sliced#0.parquet"
    parquet = pq.ParquetFile(path)
    monkeypatch.setattr(_parquet, "SLICE_BYTES", SLICE_BYTES)  # as the worker that wrote it had it
    rows = _parquet.slice_rows(want)
    assert 100 < rows < N // 4  # several slices
    assert parquet.metadata.num_row_groups == -(-N // rows)  # one row group per slice
    assert parquet.metadata.row_group(0).num_rows == rows
    # the file's schema and pandas metadata are those a whole-frame conversion writes
    whole = tmp_path / "whole.parquet"
    pq.write_table(pa.Table.from_pandas(want), whole)
    assert parquet.schema_arrow.equals(pq.ParquetFile(whole).schema_arrow, check_metadata=True)
    assert parquet.schema_arrow.pandas_metadata == pa.Table.from_pandas(want).schema.pandas_metadata
    assert parquet.read(columns=["code"]).column(0).null_count == 0
    assert parquet.metadata.row_group(0).column(0).compression == "ZSTD"
    ranged_path = values.folder_for(journal) / "tables" / "big" / "ranged#0.parquet"
    index = pq.ParquetFile(ranged_path).schema_arrow.pandas_metadata["index_columns"]
    assert index == [{"kind": "range", "name": None, "start": 10, "stop": 10 + 3 * N, "step": 3}]


def test_a_large_frame_arrow_cannot_convert_stays_a_pickle_naming_the_column(journal, tmp_path):
    out = _fail_then_resume(journal, _params(tmp_path))
    assert list(out["odd"]["m"][N - 1:N + 1]) == [1, "a"]
    steps = {step.step_key: step.output_preview for step in zart.journal(journal, live=False).list_steps("big")}
    assert steps["mixed-large#0"].startswith(f"<pandas.DataFrame rows={2 * N:,} columns=2> [a pickle, not Parquet: ")
    assert "(column m)" in steps["mixed-large#0"]
    assert not (values.folder_for(journal) / "tables" / "big" / "mixed-large#0.parquet").exists()


def test_reading_a_column_at_a_time_gives_what_pyarrow_reads_whole(tmp_path):
    """Columns with and without nulls, fixed width or not, over many row groups, and statistics-less files."""
    frame = sliced_frame(N)
    for statistics in (True, False):
        path = tmp_path / f"t{statistics}.parquet"
        pq.write_table(pa.Table.from_pandas(frame), path, row_group_size=400, write_statistics=statistics)
        parquet = pq.ParquetFile(path)
        assert parquet.metadata.num_row_groups == 8
        got = _parquet.read(parquet)
        assert got.equals(pq.read_table(path)) and got.schema.equals(pq.read_table(path).schema)
        _check(got.to_pandas(split_blocks=True, self_destruct=True), frame)
    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.Table.from_pandas(frame.iloc[:0]), empty)
    assert _parquet.read(pq.ParquetFile(empty)).num_rows == 0
