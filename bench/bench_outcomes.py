"""The engine's per-step paths without processes or a journal file: settling OK outcomes
(``RunState.on_outcomes``, 2,000 in batches of 100), the replay loop (``RunState.schedule`` of 10,000
journaled steps) and scheduling new steps (``schedule``: 2,000 calls ``noop(i)`` encoded and handed
to an executor that keeps them: P1's and P2's driver work before dispatch). Prints the minimum
per-step time over ``--repeats``; under callgrind, run it with ``--repeats 1`` and ``3`` and halve the
difference of the two counts for the instructions of one repeat (fixtures included), which scatter far
less than wall time on a shared machine:

    valgrind --tool=callgrind python bench/bench_outcomes.py outcomes --repeats 1
"""
from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path
from typing import Any

import zart_nb as zart
from zart_nb import _serialization as ser
from zart_nb._engine import RunState, _Definition, _StepState
from zart_nb._executors.base import Outcome, OutcomeKind, Task
from zart_nb._handles import StepHandle
from zart_nb._journal import StoredStep
from zart_nb._status import RunReason, StepStatus

SCRATCH = Path(tempfile.mkdtemp(prefix="zart-bench-outcomes-"))


class _Keeper:
    """An executor that keeps what it is given (nothing runs)."""

    closed = False

    def __init__(self) -> None:
        self.tasks: list[Any] = []

    def submit(self, tasks: list[Any]) -> None:
        self.tasks.extend(tasks)


class _NoJournal:
    """Records nothing: only the engine's own work is measured."""

    path = SCRATCH / "j.duckdb"

    def record(self, *rows: Any) -> None:
        pass

    def has_definition(self, code_hash: str) -> bool:
        return True


def noop(i: int) -> None:
    return None


STEP = zart.step("noop")(noop)
BLOB = ser.dumps(None)
DEFINITION = _Definition("fid", b"fn", ser.code_hash(noop))


def outcomes_once() -> float:
    run = RunState(_NoJournal(), "e", 1, {}, "rerun", 1, store=(str(SCRATCH), 1 << 20))  # type: ignore[arg-type]
    batches = []
    for b in range(20):
        batch = []
        for i in range(100):
            n = b * 100 + i
            handle = StepHandle(run, f"noop#{n}", "noop")
            state = _StepState(run, handle, STEP, DEFINITION, b"args", "h", "(1,)", n, RunReason.NEW, False, None)
            task = Task(n + 1, "fid", b"fn", b"args", "e", f"noop#{n}", 1, started_at=1.0, worker="w1",
                        consumer=run, owner=state)
            run._pending[n + 1] = state
            batch.append(Outcome(task, OutcomeKind.OK, BLOB, "None", finished_at=2.0))
        batches.append(batch)
    gc.disable()
    start = time.perf_counter()
    for batch in batches:
        run.on_outcomes(batch)
    elapsed = time.perf_counter() - start
    gc.enable()
    return elapsed / 2000


def replay_once() -> float:
    code = ser.code_hash(noop)
    stored = {f"noop#{i}": StoredStep(StepStatus.COMPLETED, ser.args_hash((i,), {}), code, BLOB) for i in range(10000)}
    run = RunState(_NoJournal(), "e", 2, stored, "rerun", 1, store=(str(SCRATCH), 1 << 20))  # type: ignore[arg-type]
    run._definitions[STEP] = DEFINITION
    gc.disable()
    start = time.perf_counter()
    for i in range(10000):
        run.schedule(STEP, (i,), {})
    elapsed = time.perf_counter() - start
    gc.enable()
    assert run.reused == 10000
    return elapsed / 10000


def schedule_once() -> float:
    run = RunState(_NoJournal(), "e", 1, {}, "rerun", 1, store=(str(SCRATCH), 1 << 20))  # type: ignore[arg-type]
    run._definitions[STEP] = DEFINITION
    keeper = _Keeper()
    run._executor = keeper  # type: ignore[assignment]
    gc.disable()
    start = time.perf_counter()
    for i in range(2000):
        run.schedule(STEP, (i,), {})
    elapsed = time.perf_counter() - start
    gc.enable()
    assert len(keeper.tasks) == 2000 and run.executed == 2000
    return elapsed / 2000


PATHS = {"outcomes": outcomes_once, "replay": replay_once, "schedule": schedule_once}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", choices=tuple(PATHS))
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    once = PATHS[args.path]
    best = min(once() for _ in range(args.repeats))
    print(f"{args.path}: {best * 1e6:.3f} µs per step (minimum of {args.repeats})")


if __name__ == "__main__":
    main()
