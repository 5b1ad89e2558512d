"""A ``submit`` racing the pool's give-up (worker processes that cannot start: after ``STARTUP_DEATHS``
in a row the pool closes and fails what it holds). Whatever point of ``submit`` the give-up lands on,
every attempt submitted fails once, as CRASHED with the give-up's error, and none is lost, left
queued, or waits forever. Real worker processes die as they start (test_step_faults' ``dying_workers``);
the submitting thread is held at one point of ``submit`` by a ``not_before`` whose comparison waits
until the pool has given up (the comparison is where ``submit`` decides where an attempt goes, after
its check that the pool is open)."""
import threading
import time

import pytest
from conftest import wait_until
from pool_helpers import UnusedConsumer, gated_task
from race_steps import Outcomes, counted
from steps_lib import calls
from test_step_faults import dying_workers  # noqa: F401 - a fixture


class _HeldUntilGivenUp(float):
    """A ``not_before`` whose first comparison waits until ``pool`` has given up (and its give-up,
    done under the pool's lock, has ended)."""

    def __new__(cls, value: float, pool):
        held = super().__new__(cls, value)
        held.pool = pool
        held.reached = threading.Event()
        return held

    def __gt__(self, other):
        pool, self.pool = self.pool, None
        if pool is not None:
            self.reached.set()
            wait_until(lambda: pool._gave_up is not None, timeout=60, what="the pool to give up")
            with pool._lock:
                pass
        return float(self) > other


def _attempt(tmp_path, tag: str):
    return gated_task(tmp_path, f"e-{tag}", counted, tag, consumer=UnusedConsumer())


@pytest.mark.parametrize("where", ["before-the-first", "between-two", "delayed"])
def test_attempts_submitted_while_the_pool_gives_up_fail_with_its_error(tmp_path, dying_workers, where):  # noqa: F811
    """``before-the-first``: the pool gives up after ``submit`` found it open and before it queued the
    attempt. ``between-two``: it gives up after the first of two was queued (the give-up fails that
    one) and before the second was. ``delayed``: an attempt due later (a retry's backoff) is queued
    after the give-up, on the delayed heap."""
    from zart_nb._executors.base import OutcomeKind
    from zart_nb._executors.local import STARTUP_DEATHS, LocalPool

    sink = Outcomes()
    pool = LocalPool(1, sink)
    try:
        first, second = _attempt(tmp_path, "one"), _attempt(tmp_path, "two")
        if where == "before-the-first":
            tasks, held = [first], first
        elif where == "between-two":
            tasks, held = [first, second], second
        else:
            tasks, held = [first], first
        held.not_before = _HeldUntilGivenUp(time.time() + (3600 if where == "delayed" else 0), pool)
        failures: list = []

        def submit():
            try:
                pool.submit(tasks)
            except BaseException as exc:  # noqa: BLE001 - the test reports it
                failures.append(exc)

        submitter = threading.Thread(target=submit)
        submitter.start()
        submitter.join(timeout=90)
        assert not submitter.is_alive(), "submit hung"
        assert failures == [] and held.not_before.reached.is_set()
        assert len(dying_workers.read_text()) == STARTUP_DEATHS and pool.closed and pool.pids == []
        wait_until(lambda: len(sink.outcomes) >= len(tasks), what="the attempts' outcomes")
        with sink.lock:
            outcomes = list(sink.outcomes)
        assert sorted(o.task.step_key for o in outcomes) == sorted(t.step_key for t in tasks)  # each once
        assert {o.kind for o in outcomes} == {OutcomeKind.CRASHED}
        assert {o.error for o in outcomes} == {pool._gave_up}
        assert "worker processes in a row exited while starting" in pool._gave_up
        assert pool.idle and pool.held() == [] and calls(tmp_path) == []
    finally:
        pool.shutdown()
