"""Steps and workflows importable by worker processes (tests import them by reference)."""
from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

import zart_nb as zart


def _count(counter_dir: str | None, key: str) -> None:
    if counter_dir:
        fd = os.open(os.path.join(counter_dir, "calls.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.write(fd, f"{key}\n".encode())
        os.close(fd)


def calls(counter_dir) -> list[str]:
    path = os.path.join(str(counter_dir), "calls.log")
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        return handle.read().split()


@dataclass
class Point:
    x: int
    y: int


@zart.step("square")
def square(x: int, counter_dir: str | None = None) -> int:
    _count(counter_dir, f"square:{x}")
    return x * x


@zart.step("add")
def add(a: int, b: int, counter_dir: str | None = None) -> int:
    _count(counter_dir, f"add:{a}+{b}")
    return a + b


@zart.step("fetch-{region}")
def fetch(region: str) -> str:
    return region.upper()


@zart.step("async-double")
async def async_double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


@zart.step("whereami")
def whereami() -> tuple:
    ctx = zart.context()
    return (ctx.execution_id, ctx.step_key, ctx.attempt, os.getpid())


@zart.step("fail-if")
def fail_if(x: int, bad: int) -> int:
    if x == bad:
        raise ValueError(f"bad value {x}")
    return x


@zart.step("make-point")
def make_point(x: int) -> Point:
    return Point(x, -x)


@zart.workflow("squares")
def squares(data: dict) -> int:
    handles = [zart.schedule(square, x, data.get("counter_dir")) for x in data["xs"]]
    values = zart.wait(handles)
    return add(sum(values), 0, data.get("counter_dir"))


class SumSquares(zart.DurableExecution):
    def run(self, data: list[int]) -> list[int]:
        return zart.wait([zart.schedule(square, x) for x in data])


@zart.step("flaky")
def flaky(x: int, marker: str, counter_dir: str | None = None) -> int:
    _count(counter_dir, f"flaky:{x}")
    if x == 3 and os.path.exists(marker):
        raise RuntimeError("marker present")
    return x * 10


@zart.workflow("flaky-flow")
def flaky_flow(data: dict) -> list[int]:
    return zart.wait([zart.schedule(flaky, x, data["marker"], data["counter_dir"]) for x in data["xs"]])


@zart.step("wait-for-file")
def wait_for_file(path: str, timeout: float = 60.0) -> str:
    import time

    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(path)
        time.sleep(0.01)
    return "released"


@zart.step("pid")
def pid_step(tag: str, pid_dir: str) -> int:
    with open(os.path.join(pid_dir, f"{tag}.pid"), "w") as handle:
        handle.write(str(os.getpid()))
    return os.getpid()


@zart.step("quick")
def quick(x: int) -> int:
    return x + 1


@zart.step("slow-forever", timeout=1.0)
def slow_forever(path: str) -> str:
    import time

    while not os.path.exists(path):
        time.sleep(0.01)
    return "never"


@zart.step("echo-bytes")
def echo_bytes(data: bytes) -> bytes:
    return data[::-1]
