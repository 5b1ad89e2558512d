"""DataFrames and pyarrow Tables as by-reference arguments (real worker processes): a frame passed to ten
steps is stored once and travels as its reference; a frame the body changed after loading it travels by
value (never a stale reference); the body and the workers can write to a loaded frame as to any other."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

from steps_lib import calls  # noqa: E402
from tables_lib import arrow_to_three, frame, frame_to_ten  # noqa: E402

import zart_nb as zart  # noqa: E402
from zart_nb import _values as values  # noqa: E402
from zart_nb._runtime import runtime  # noqa: E402

N = 2000


def _params(tmp_path: Path, change: str | None = None) -> dict:
    return {"n": N, "counter_dir": str(tmp_path), "flag": str(tmp_path / "fail"), "change": change}


def _args_sizes(journal: Path, execution_id: str) -> dict[str, int]:
    import duckdb

    runtime.journal(journal).close()
    with duckdb.connect(str(journal), read_only=True) as conn:
        rows = conn.execute("SELECT step_key, octet_length(args) FROM steps WHERE execution_id = ? AND current",
                            [execution_id]).fetchall()
    return dict(rows)


def _want(df: pd.DataFrame) -> list[float]:
    return [float(df["x"].iloc[1:].sum()) + i for i in range(10)]


def test_a_frame_passed_to_ten_steps_is_stored_once_and_travels_by_reference(journal, tmp_path):
    params = _params(tmp_path)
    Path(params["flag"]).touch()
    with pytest.raises(zart.TaskError, match="failing after the totals"):
        zart.run(frame_to_ten, params, execution_id="r", journal=journal, display=False)
    sizes = _args_sizes(journal, "r")
    assert all(sizes[f"x-total#{i}"] < 1000 for i in range(10)), sizes  # a reference, not the frame's pickle
    tables = sorted(p.name for p in (values.folder_for(journal) / "tables" / "r").iterdir())
    assert tables == ["load#0.parquet"]  # stored once, by the step that made it
    os.unlink(params["flag"])
    out = zart.run(frame_to_ten, params, execution_id="r", journal=journal, display=False)
    assert out == [*_want(frame(N)), 0.0]  # the workers' writes stayed theirs
    assert calls(tmp_path) == ["load"] + ["x-total"] * 10  # the replay's hashes matched: all reused


@pytest.mark.parametrize("change", ["df.iloc[0, 0] = 7.0", "df['x'] = df['x'] * 2", "df.loc['r5', 'x'] = 0.0",
                                    "df.index = pd.Index([f's{i}' for i in range(len(df))], name='row')"])
def test_a_frame_the_body_changed_travels_by_value(journal, tmp_path, change):
    out = zart.run(frame_to_ten, _params(tmp_path, change), execution_id="w", journal=journal, display=False)
    want = frame(N)
    exec(change, {"pd": pd}, {"df": want})
    assert out == [*_want(want), float(want["x"].iloc[0])]  # the steps saw the body's change
    sizes = _args_sizes(journal, "w")
    assert all(sizes[f"x-total#{i}"] > 5 * N for i in range(10)), sizes  # the frame's pickle, not a reference


def test_a_write_through_a_loaded_columns_own_array_is_refused(journal, tmp_path):
    change = "df['x'].to_numpy()[0] = 1.0"
    with pytest.raises(zart.TaskError, match="read-only"):  # never a silent change behind the reference
        zart.run(frame_to_ten, _params(tmp_path, change), execution_id="n", journal=journal, display=False)


def test_a_pyarrow_table_travels_by_reference(journal, tmp_path):
    assert zart.run(arrow_to_three, str(tmp_path), execution_id="a", journal=journal, display=False) == [2, 2, 2]
    sizes = _args_sizes(journal, "a")
    assert all(sizes[f"arrow-rows#{i}"] < 1000 for i in range(3)), sizes


def test_a_rewritten_tables_new_record_is_not_taken_for_the_old_one(journal, tmp_path):
    """A table's file is rewritten in place when its step runs again: the argument's key follows the
    record (size and check), so a later step is not reused with the old frame's output."""
    params = _params(tmp_path)
    first = zart.run(frame_to_ten, params, execution_id="k", journal=journal, display=False)
    runtime.journal(journal).close()
    zart.delete("k", journal=journal)
    params["n"] = N + 1
    second = zart.run(frame_to_ten, params, execution_id="k", journal=journal, display=False)
    assert second[:10] == _want(frame(N + 1)) != first[:10]


def test_by_reference_frames_on_the_inline_executor(journal, tmp_path, inline):
    out = zart.run(frame_to_ten, _params(tmp_path), execution_id="i", journal=journal, display=False)
    assert out == [*_want(frame(N)), 0.0]
    assert all(size < 1000 for key, size in _args_sizes(journal, "i").items() if key.startswith("x-total"))
