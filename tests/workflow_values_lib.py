"""Workflows whose own input and output are data-sized (tests/test_workflow_values.py): an array in, a
DataFrame or an array out, with one step run by a worker process."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
from steps_lib import _count

import zart_nb as zart


@zart.step("scale")
def scale(factor: float, counter_dir: str) -> float:
    _count(counter_dir, "scale")
    return factor * 2


def frame_of(array: np.ndarray, factor: float) -> pd.DataFrame:
    """Every dtype Parquet must give back: categorical, tz-aware timestamps, nullable ints, a named index."""
    n = len(array)
    return pd.DataFrame(
        {"x": array * factor,
         "cat": pd.Categorical.from_codes(np.arange(n) % 3, ["b", "a", "c"]),
         "ts": pd.date_range("2024-03-30", periods=n, freq="min", tz="Europe/Paris"),
         "count": pd.array([i if i % 4 else None for i in range(n)], dtype="Int64")},
        index=pd.Index(np.arange(n) * 10, name="row"))


@zart.workflow("frame-out")
def frame_out(params: dict) -> pd.DataFrame:
    """The input array (``params["array"]``) scaled by a step's result, as a DataFrame."""
    _count(params["counter_dir"], "body")
    return frame_of(params["array"], scale(1.5, params["counter_dir"]))


@zart.workflow("array-out")
def array_out(params: dict) -> np.ndarray:
    """The input array times a step's result: an array of the input's dtype."""
    _count(params["counter_dir"], "body")
    return params["array"] * params["array"].dtype.type(scale(0.5, params["counter_dir"]))


@zart.workflow("mixed-out")
def mixed_out(counter_dir: str) -> pd.DataFrame:
    """A frame Parquet cannot hold (a column of mixed objects): it stays a pickle."""
    _count(counter_dir, "body")
    return pd.DataFrame({"m": [1, "a", 2.5] * 100_000, "k": scale(1.0, counter_dir)})


@zart.workflow("array-in-then-fail")
def array_in_then_fail(params: dict) -> float:
    """Sums its input array after a step; fails while ``params["flag"]`` exists."""
    _count(params["counter_dir"], "body")
    factor = scale(1.0, params["counter_dir"])
    if os.path.exists(params["flag"]):
        raise RuntimeError("failing after the step")
    return float(params["array"].sum()) * factor
