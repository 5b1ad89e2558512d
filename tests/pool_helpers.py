"""The driver's side of the pool's race tests (test_pool_cancel, test_pool_revoke_race, test_pool_timeout):
attempts of race_steps' gated steps, the worker that started one, what the pool holds. (A fresh pool:
conftest's ``pool`` fixture.)"""
from __future__ import annotations

from pathlib import Path

from conftest import wait_until


class UnusedConsumer:
    """An execution's stand-in for attempts submitted to a pool by hand: its outcomes go to the pool's sink."""

    def on_outcomes(self, outcomes):  # pragma: no cover - the pool's sink receives them in these tests
        raise AssertionError("not used")

    def fail_outcomes(self, outcomes, exc):  # pragma: no cover
        raise AssertionError("not used")


def gated_task(workdir: Path, execution_id: str, fn, tag: str, *, consumer=None, timeout=None, task_id=None):
    """An attempt of the race step ``fn`` (its key ``tag``) for ``execution_id``; its id the next of the
    process unless ``task_id`` is given (tests of ids two executions share)."""
    from zart_nb import _serialization as ser
    from zart_nb._executors.base import TASK_IDS, Task

    return Task(next(TASK_IDS) if task_id is None else task_id, fn.name, ser.dumps_by_value(fn.fn),
                ser.dumps(((tag, str(workdir)), {})), execution_id, tag, 1, timeout=timeout, consumer=consumer)


def started_pid(workdir: Path, tag: str) -> int:
    """The pid of the worker that started the gated step ``tag`` (waits for it)."""
    started = workdir / f"{tag}.started"
    return int(wait_until(lambda: started.exists() and started.read_text(), what=f"step {tag} to start"))


def held(pool) -> int:
    """Attempts sent to the pool's workers and not answered (read only)."""
    return sum(len(worker.inflight) for worker in list(pool._workers))
