"""Steps and workflows of the control-action tests (restart, rerun, retry, fork, recover), importable by
worker processes and by the engines of other processes (they import them by reference)."""
from __future__ import annotations

import os
import time

from steps_lib import _count

import zart_nb as zart


@zart.step("load")
def load(counter_dir: str, x: int) -> int:
    _count(counter_dir, f"load:{x}")
    return x


@zart.step("transform")
def transform(counter_dir: str, x: int) -> int:
    _count(counter_dir, f"transform:{x}")
    if os.path.exists(os.path.join(counter_dir, "fail")):
        raise ValueError("transform failed")
    return x * 10


@zart.step("report")
def report(counter_dir: str, tag: str) -> str:
    _count(counter_dir, f"report:{tag}")
    return f"report {tag}"


@zart.workflow("pipeline")
def pipeline(data: dict) -> dict:
    """load#0 -> transform#0 (fails while ``<dir>/fail`` exists) -> report#0 (does not take transform's
    output: a rerun of transform reuses it, and says it may be stale)."""
    folder = data["dir"]
    x = load(folder, data["x"])
    y = transform(folder, x)
    return {"y": y, "report": report(folder, data.get("tag", "t"))}


@zart.step("gated")
def gated(counter_dir: str) -> str:
    """Waits for ``<dir>/gate``; raises once ``<dir>/fail`` exists."""
    _count(counter_dir, "gated")
    while True:
        if os.path.exists(os.path.join(counter_dir, "fail")):
            raise RuntimeError("the gate failed")
        if os.path.exists(os.path.join(counter_dir, "gate")):
            return "through"
        time.sleep(0.02)


def recovered(data: dict, failure: BaseException) -> str:
    return f"recovered from {type(failure).__name__}"


@zart.workflow("guarded", on_failure=recovered, max_recoveries=3)
def guarded(data: dict) -> str:
    return gated(data["dir"])


@zart.workflow("two-transforms")
def two_transforms(data: dict) -> list[int]:
    """transform#0 and transform#1 at once: both fail while ``<dir>/fail`` exists."""
    folder = data["dir"]
    return zart.wait([zart.schedule(transform, folder, 1), zart.schedule(transform, folder, 2)])
