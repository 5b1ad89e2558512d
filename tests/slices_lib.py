"""Steps returning frames larger than one Parquet slice, importable by worker processes
(tests/test_parquet_slices.py). Each step makes its own process's slices small (``_parquet.SLICE_BYTES``),
so a few thousand rows span several slices, as a large frame does."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
from steps_lib import _count

import zart_nb as zart

SLICE_BYTES = 8192  # a few hundred rows of these frames: each spans several slices


def _small_slices() -> None:
    from zart_nb import _parquet

    _parquet.SLICE_BYTES = SLICE_BYTES


def sliced_frame(n: int) -> pd.DataFrame:
    """Every dtype a slice must agree on with the others: a categorical whose rows use different
    categories in each slice (and one category in none), an ordered one, tz-aware timestamps, nullable
    ints whose nulls are all in one slice, strings with missing values, object strings, booleans, floats
    of a 2-D block, and a named string index."""
    i = np.arange(n)
    block = pd.DataFrame(np.column_stack([i * 0.5, i * 0.25]), columns=["x", "y"])
    return pd.DataFrame(
        {"id": i,
         "x": block["x"].to_numpy(), "y": block["y"].to_numpy(),
         "cat": pd.Categorical(np.where(i < n // 3, "a", np.where(i < 2 * n // 3, "b", "c")),
                               categories=["unused", "c", "b", "a"]),
         "level": pd.Categorical(["lo", "hi"] * (n // 2) + ["lo"] * (n % 2), categories=["lo", "hi"],
                                 ordered=True),
         "ts": pd.date_range("2024-03-30", periods=n, freq="min", tz="Europe/Paris"),
         "count": pd.array([None if v < n // 4 else int(v) for v in i], dtype="Int64"),
         "name": pd.array([None if v % 7 == 0 else f"n{v}" for v in i], dtype="str"),
         "code": np.array([f"c{v % 11}" for v in i], dtype=object),
         "even": i % 2 == 0},
        index=pd.Index([f"r{v}" for v in i], name="row"))


def ranged_frame(n: int) -> pd.DataFrame:
    """A frame whose index is a RangeIndex that does not start at 0 (kept in the pandas metadata)."""
    return pd.DataFrame({"v": np.arange(n, dtype="float32")}, index=pd.RangeIndex(10, 10 + 3 * n, 3))


@zart.step("sliced")
def sliced(n: int, counter_dir: str) -> pd.DataFrame:
    _small_slices()
    _count(counter_dir, "sliced")
    return sliced_frame(n)


@zart.step("ranged")
def ranged(n: int, counter_dir: str) -> pd.DataFrame:
    _small_slices()
    _count(counter_dir, "ranged")
    return ranged_frame(n)


@zart.step("mixed-large")
def mixed_large(n: int, counter_dir: str) -> pd.DataFrame:
    _small_slices()
    _count(counter_dir, "mixed-large")
    return pd.DataFrame({"ok": np.arange(2 * n), "m": [1] * n + ["a"] * n})


@zart.workflow("sliced-then-fail")
def sliced_then_fail(params: dict) -> dict:
    d = params["counter_dir"]
    df, ranged_df, odd = zart.wait([zart.schedule(sliced, params["n"], d), zart.schedule(ranged, params["n"], d),
                                    zart.schedule(mixed_large, params["n"], d)])
    if os.path.exists(params["flag"]):
        raise RuntimeError("failing after the sliced frames")
    return {"df": df, "ranged": ranged_df, "odd": odd}
