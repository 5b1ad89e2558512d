"""Steps and workflows returning arrays, importable by worker processes (tests/test_values.py)."""
from __future__ import annotations

import os

import numpy as np
from steps_lib import _count

import zart_nb as zart


@zart.step("array")
def make_array(n: int, dtype: str, counter_dir: str) -> np.ndarray:
    _count(counter_dir, "array")
    return (np.arange(n) % 251).astype(dtype)


@zart.step("small")
def small(x: int, counter_dir: str) -> int:
    _count(counter_dir, "small")
    return x + 1


@zart.workflow("array-then-fail")
def array_then_fail(params: dict) -> dict:
    """Makes an array in a step, writes to it, and fails while ``params["flag"]`` exists."""
    array = zart.wait([zart.schedule(make_array, params["n"], params["dtype"], params["counter_dir"])])[0]
    writable = array.flags.writeable
    array[0] = 99  # a private copy-on-write page on replay: the stored file never changes
    one = zart.wait([zart.schedule(small, 1, params["counter_dir"])])[0]
    if os.path.exists(params["flag"]):
        raise RuntimeError("failing after the array step")
    return {"array": array, "writable": writable, "one": one}


def expected(n: int, dtype: str) -> np.ndarray:
    return (np.arange(n) % 251).astype(dtype)


@zart.step("total")
def total(array: np.ndarray, counter_dir: str) -> float:
    _count(counter_dir, "total")
    array[1] = -1  # the worker's own copy-on-write page: neither the file nor the driver's array changes
    return float(array[2:].sum())


@zart.workflow("array-by-reference")
def array_by_reference(params: dict) -> list:
    """An array step whose output goes to three later steps (written to first when ``params["write"]``)."""
    array = zart.wait([zart.schedule(make_array, params["n"], params["dtype"], params["counter_dir"])])[0]
    if params.get("write"):
        array[2] = 1000
    sums = zart.wait([zart.schedule(total, array, params["counter_dir"]) for _ in range(3)])
    if os.path.exists(params["flag"]):
        raise RuntimeError("failing after the totals")
    return [*sums, float(array[1])]


@zart.step("piece-{i}")
def piece(i: int, n: int) -> np.ndarray:
    return np.arange(n, dtype=np.float64) + i


@zart.step("piece-total")
def piece_total(array: np.ndarray) -> float:
    return float(array.sum())


@zart.workflow("pieces-by-reference")
def pieces_by_reference(params: dict) -> list:
    """``params["count"]`` stored arrays, each passed to a later step; the one at ``params["written"]`` is
    written to (its last element, so its last page) between loading and passing."""
    arrays = zart.wait([zart.schedule(piece, i, params["n"]) for i in range(params["count"])])
    arrays[params["written"]][-1] = -1.0
    return zart.wait([zart.schedule(piece_total, array) for array in arrays])


@zart.step("bytes-{size}")
def sized(size: int) -> bytes:
    return os.urandom(size)


@zart.workflow("two-sizes")
def two_sizes(sizes: list) -> int:
    return sum(len(b) for b in zart.wait([zart.schedule(sized, size) for size in sizes]))
