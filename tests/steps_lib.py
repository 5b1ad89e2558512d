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


@zart.step("forker")
def forker(x: int) -> tuple:
    """Forks, and the child returns from the step too (as careless code in a step may do)."""
    child = os.fork() == 0
    return (x, child)


class BadStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ is broken too")


@zart.step("bad-str")
def raise_bad_str() -> None:
    raise BadStr()


def _refuse_to_load() -> None:
    raise RuntimeError("this value only loads where it was made")


class LoadsOnlyInTheWorker:
    def __reduce__(self):
        return (_refuse_to_load, ())


@zart.step("unloadable")
def unloadable(marker: str) -> object:
    return LoadsOnlyInTheWorker() if not os.path.exists(marker) else "loadable now"


@zart.step("shout")
def shout(size: int) -> None:
    raise ValueError("x" * size)


@zart.step("spawner")
def spawner(pid_file: str) -> None:
    """Starts a child process, records its pid, then waits forever (killed by timeout or cancel)."""
    import subprocess
    import time

    child = subprocess.Popen(["sleep", "600"])
    with open(pid_file + ".tmp", "w") as handle:
        handle.write(str(child.pid))
    os.rename(pid_file + ".tmp", pid_file)
    while True:
        time.sleep(0.05)


@zart.step("read-it")
def read_it(handle) -> str:
    return handle.read()


SHARED: list = []  # for tests that pass objects between workflows of one process


@zart.step("announce-then-wait")
def announce_then_wait(started: str, gate: str) -> str:
    with open(started, "w") as handle:
        handle.write(str(os.getpid()))
    return wait_for_file(gate)


@zart.step("nap")
def nap(x: int, seconds: float, counter_dir: str) -> int:
    """A step that takes ``seconds`` (its work is the duration), counting each execution."""
    import time

    _count(counter_dir, f"nap:{x}")
    time.sleep(seconds)
    return -x
