"""Steps and workflows returning tables, importable by worker processes (tests/test_tables.py)."""
from __future__ import annotations

import os

import pandas as pd
import pyarrow as pa
from steps_lib import _count

import zart_nb as zart


def frame(n: int) -> pd.DataFrame:
    """Every dtype Parquet must give back: categorical, tz-aware timestamps, nullable ints, an index."""
    return pd.DataFrame(
        {"x": [float(i) / 2 for i in range(n)],
         "cat": pd.Categorical(["b", "a", "c"][i % 3] for i in range(n)),
         "ts": pd.date_range("2024-03-30", periods=n, freq="h", tz="Europe/Paris"),
         "count": pd.array([i if i % 4 else None for i in range(n)], dtype="Int64")},
        index=pd.Index([f"r{i}" for i in range(n)], name="row"))


@zart.step("load")
def load(n: int, counter_dir: str) -> pd.DataFrame:
    _count(counter_dir, "load")
    return frame(n)


@zart.step("mixed")
def mixed(counter_dir: str) -> pd.DataFrame:
    _count(counter_dir, "mixed")
    return pd.DataFrame({"m": [1, "a", 2.5]})


@zart.step("arrow")
def arrow(counter_dir: str) -> pa.Table:
    _count(counter_dir, "arrow")
    return pa.table({"k": ["p", "q"], "v": [1, 2]})


@zart.workflow("tables-then-fail")
def tables_then_fail(params: dict) -> dict:
    """A frame, a pyarrow Table and a mixed-object frame; fails while ``params["flag"]`` exists."""
    d = params["counter_dir"]
    df, table, odd = zart.wait([zart.schedule(load, params["n"], d), zart.schedule(arrow, d),
                                zart.schedule(mixed, d)])
    if os.path.exists(params["flag"]):
        raise RuntimeError("failing after the table steps")
    return {"df": df, "table": table, "odd": odd, "kind": type(df).__name__}


@zart.step("fetch:raw-data")
def fetch(n: int) -> pd.DataFrame:
    return pd.DataFrame({"cat": ["a", "b"] * n, "x": [float(i) for i in range(2 * n)]})


@zart.workflow("tables-for-sql")
def tables_for_sql(n: int) -> int:
    frames = zart.wait([zart.schedule(fetch, n), zart.schedule(load, n, "")])
    return sum(len(f) for f in frames)


@zart.step("grid")
def grid(n: int) -> object:
    import numpy as np

    return np.zeros((n, 4), dtype="float32")


@zart.workflow("table-and-array")
def table_and_array(n: int) -> int:
    """A table (Parquet) and an array (a value file when above the threshold)."""
    frames = zart.wait([zart.schedule(fetch, n), zart.schedule(grid, n)])
    return len(frames[0]) + len(frames[1])


@zart.step("x-total")
def x_total(df: pd.DataFrame, i: int, counter_dir: str) -> float:
    _count(counter_dir, "x-total")
    df.iloc[0, 0] = -1000.0  # the worker's own copy (copy-on-write): neither the file nor the driver's frame
    return float(df["x"].iloc[1:].sum()) + i


@zart.workflow("frame-to-ten")
def frame_to_ten(params: dict) -> list:
    """A frame step whose output goes to ten later steps (changed by the body first with
    ``params["change"]``: a pandas statement run on it); fails while ``params["flag"]`` exists."""
    d = params["counter_dir"]
    df = zart.wait([zart.schedule(load, params["n"], d)])[0]
    if params.get("change"):
        exec(params["change"], {"pd": pd}, {"df": df})
    totals = zart.wait([zart.schedule(x_total, df, i, d) for i in range(10)])
    if os.path.exists(params["flag"]):
        raise RuntimeError("failing after the totals")
    return [*totals, float(df["x"].iloc[0])]


@zart.step("arrow-rows")
def arrow_rows(table: pa.Table) -> int:
    return table.num_rows


@zart.workflow("arrow-to-three")
def arrow_to_three(counter_dir: str) -> list:
    table = zart.wait([zart.schedule(arrow, counter_dir)])[0]
    return zart.wait([zart.schedule(arrow_rows, table) for _ in range(3)])


@zart.step("region-{name}")
def region(name: str, n: int) -> pd.DataFrame:
    """One region's rows; a region other than the first adds a column (the step's view unions by name)."""
    frame = pd.DataFrame({"region": [name] * n, "x": [float(i) for i in range(n)]})
    return frame if name == "eu" else frame.assign(extra=1)


@zart.workflow("regions-for-sql")
def regions_for_sql(n: int) -> int:
    """A fan-out of keyed steps (``region-eu``, ``region-us``) and one of numbered ones (``fetch:raw-data#0``,
    ``#1``)."""
    frames = zart.wait([zart.schedule(region, name, n) for name in ("eu", "us")]
                       + [zart.schedule(fetch, n), zart.schedule(fetch, 2 * n)])
    return sum(len(f) for f in frames)


@zart.workflow("three-regions")
def three_regions(n: int) -> int:
    """Three keys of one step (``region-eu``, ``-us``, ``-asia``): a page of two shows part of them."""
    return sum(len(f) for f in zart.wait([zart.schedule(region, name, n) for name in ("eu", "us", "asia")]))
