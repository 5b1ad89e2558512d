"""Steps and workflows for tests/test_waiting.py (importable by worker processes)."""
from __future__ import annotations

import os
import time

import zart_nb as zart


@zart.step("racer")
def racer(marker: str) -> str:
    """Fails at once the first time (it finishes first); the next time it is slow to finish."""
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("racer fails the first time")
    time.sleep(0.5)  # a replay's reused steps are done at once; this one is still running then
    return "racer done"


@zart.step("gated")
def gated(gate: str) -> str:
    deadline = time.monotonic() + 60
    while not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise TimeoutError(gate)
        time.sleep(0.01)
    return os.path.basename(gate)


@zart.workflow("race")
def race(p: dict) -> dict:
    a = zart.schedule(racer, p["marker"])
    b = zart.schedule(gated, p["gate"])
    first = zart.wait_first([a, b])
    open(p["gate"], "w").close()
    b.result()
    if os.path.exists(p["flag"]):
        raise RuntimeError("flag is set")
    return {"first": first.key, "error": repr(first.exception())}


@zart.workflow("chain")
def chain(p: dict) -> list[str]:
    """Three steps that finish in the order the body opens their gates: s2 (open at once), s1, s0."""
    gates = [os.path.join(p["dir"], f"gate{i}") for i in range(3)]
    open(gates[2], "w").close()
    handles = [zart.schedule(gated.named(f"s{i}"), gates[i]) for i in range(3)]
    order = []
    for handle in zart.as_completed(handles):
        order.append(handle.key)
        index = int(handle.key[1:])
        if index > 0:
            open(gates[index - 1], "w").close()
    if os.path.exists(p["flag"]):
        raise RuntimeError("flag is set")
    return order


@zart.step("count")
def count(x: int, counter_dir: str) -> int:
    with open(os.path.join(counter_dir, f"count-{x}"), "a") as handle:
        handle.write("x")
    return x * 10


@zart.workflow("child")
def child(p: dict) -> int:
    return zart.schedule(count, p["x"], p["dir"]).result()


@zart.workflow("parent")
def parent(p: dict) -> list:
    first = zart.run(child, {"x": 1, "dir": p["dir"]}, display=False)
    second = zart.start(child, {"x": 2, "dir": p["dir"]}, display=False)
    named = zart.run(child, {"x": 3, "dir": p["dir"]}, execution_id=f"{p['dir']}-named", display=False)
    outputs = [first, second.result(), named]  # the started child has finished before the body fails
    if os.path.exists(p["flag"]):
        raise RuntimeError("flag is set")
    return outputs


@zart.workflow("gated-child")
def gated_child(gate: str) -> str:
    return zart.schedule(gated, gate).result()


@zart.workflow("waiting-parent")
def waiting_parent(gate: str) -> str:
    return zart.start(gated_child, gate, display=False).result()


@zart.step("meet")
async def meet(me: str, other: str, folder: str) -> str:
    """Says it has started, then waits for ``other`` to have started: two calls of it finish only when
    they run at the same time."""
    import asyncio

    open(os.path.join(folder, f"{me}.started"), "w").close()
    with open(os.path.join(folder, f"calls-{me}"), "a") as handle:
        handle.write("x")
    deadline = time.monotonic() + 30
    while not os.path.exists(os.path.join(folder, f"{other}.started")):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{me} never met {other}")
        await asyncio.sleep(0.01)
    return f"{me} met {other}"


@zart.step("plus-one")
def plus_one(x: int) -> int:
    return x + 1


@zart.workflow("async-flow")
async def async_flow(p: dict) -> dict:
    import asyncio

    met = await asyncio.gather(meet("a", "b", p["dir"]), meet("b", "a", p["dir"]))
    called = await zart.call(plus_one, 1)
    awaited = await zart.schedule(plus_one, 10)
    plain = plus_one(100)  # a plain step called in an async body returns its value
    if os.path.exists(p["flag"]):
        raise RuntimeError("flag is set")
    return {"met": met, "called": called, "awaited": awaited, "plain": plain}


@zart.workflow("sync-calls-async")
def sync_calls_async(p: dict) -> str:
    return meet("solo", "solo", p["dir"])  # an async step in a plain body: its value, as before


@zart.workflow("plus-one-flow")
def plus_one_flow(x: int) -> int:
    return plus_one(x)


@zart.workflow("two-children")
def two_children(p: dict) -> list[str]:
    """Child #1's gate is open at once; child #0's opens when the first child is taken."""
    gates = [os.path.join(p["dir"], f"child-gate{i}") for i in range(2)]
    open(gates[1], "w").close()
    started = [zart.start(gated_child, gate, display=False) for gate in gates]
    order = []
    for execution in zart.as_completed(started, timeout=60):
        order.append(execution.execution_id)
        open(gates[0], "w").close()
    if os.path.exists(p["flag"]):
        raise RuntimeError("flag is set")
    return order
