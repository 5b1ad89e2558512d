"""Workflows whose input is a table (tests/test_table_input.py): a pandas DataFrame or a pyarrow Table given
to ``zart.run``, passed to a step run by a worker process, the body failing while a flag file exists."""
from __future__ import annotations

import os
from typing import Any

import pandas as pd

import zart_nb as zart

FLAG = "ZART_TEST_INPUT_FLAG"  # the body fails while the file this names exists (read in the driver)


@zart.step("total")
def total(frame: Any) -> float:
    """The sum of the input's ``x`` column (a pandas frame or a pyarrow Table)."""
    column = frame["x"]
    return float(column.sum() if isinstance(frame, pd.DataFrame) else column.to_numpy().sum())


def _seen(frame: Any) -> dict[str, Any]:
    kind = type(frame)
    return {"kind": f"{kind.__module__.partition('.')[0]}.{kind.__name__}", "frame": frame}


@zart.workflow("frame-in")
def frame_in(frame: Any) -> dict[str, Any]:
    """The input as the body saw it (its kind and the value itself) and a step's sum of its ``x``."""
    summed = total(frame)
    flag = os.environ.get(FLAG)
    if flag and os.path.exists(flag):
        raise RuntimeError("failing after the step")
    return {**_seen(frame), "total": summed}


@zart.workflow("frame-in-writes")
def frame_in_writes(frame: pd.DataFrame) -> dict[str, Any]:
    """Writes to its input before passing it on: the step must get the written frame, not the file's."""
    frame.iloc[0, 0] = -1000.0
    return {"total": total(frame), "first": float(frame.iloc[0, 0])}


@zart.step("half")
def half(value: float) -> float:
    return value / 2


@zart.workflow("frame-in-two")
def frame_in_two(frame: Any) -> float:
    """Two steps: the input's sum, then half of it (a fork from ``half#0`` copies ``total#0``)."""
    return half(total(frame))
