"""Where the pool sends a short queue: long steps submitted together on idle workers start on as many
workers at once, none taken back later by a steal (a revoke). Real worker processes, steps gated on
files (race_steps); a pool starting up is held before its workers are ready by a ``sitecustomize``
that waits for a file."""
import contextlib
import os
import signal
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import wait_until
from pool_helpers import UnusedConsumer, gated_task, held, started_pid
from race_steps import Outcomes, gated


def _run_gated(pool, workdir, tags: list[str]) -> list[int]:
    """Submit a gated attempt per tag in one call; the pids of the workers that started them."""
    tasks = [gated_task(workdir, "e-spread", gated, tag, consumer=UnusedConsumer()) for tag in tags]
    pool.submit(tasks)
    return [started_pid(workdir, tag) for tag in tags]


def _let_go(pool, sink, workdir, tags: list[str]) -> None:
    for tag in tags:
        (workdir / f"{tag}.go").touch()
    wait_until(lambda: pool.idle and len(sink.outcomes) == len(tags), what="the gated steps to end")


@pytest.mark.parametrize("workers", [2, 4])
def test_long_steps_submitted_together_start_on_as_many_ready_workers(tmp_path, workers):
    """N long steps submitted at once on N idle, ready workers: one each, so they run side by side
    from the start. (Before, the first worker was sent two, the depth's minimum, and the last worker
    none: an idle worker took one back with a revoke once the head had run ``STEAL_AFTER``; with the
    steps submitted from a thread, not the I/O thread, that steal waited for the next reply.)"""
    from zart_nb._executors.local import LocalPool

    sink = Outcomes()
    pool = LocalPool(workers, sink)
    tags = [f"s{i}" for i in range(workers)]
    try:
        wait_until(lambda: all(worker.ready for worker in pool._workers), what="the workers to start")
        pids = _run_gated(pool, tmp_path, tags)
        assert sorted(pids) == sorted(pool.pids)  # one step on each worker
        assert (pool.revokes, pool.taken_back) == (0, 0)
        _let_go(pool, sink, tmp_path, tags)
        assert (pool.revokes, pool.taken_back) == (0, 0)
    finally:
        pool.shutdown()


@pytest.fixture
def held_starts(tmp_path, monkeypatch):
    """Worker processes started while ``$HOLD_START`` is set wait, as they start (before they say they
    are ready), for the file this returns to exist."""
    site = tmp_path / "site"
    site.mkdir()
    gate = tmp_path / "workers.go"
    (site / "sitecustomize.py").write_text(textwrap.dedent(f"""
        import os, time
        if "ZART_WORKER_SYS_PATH" in os.environ and os.environ.get("HOLD_START"):
            deadline = time.monotonic() + 60
            while not os.path.exists({str(gate)!r}) and time.monotonic() < deadline:
                time.sleep(0.01)
    """))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    yield gate
    gate.touch()


def _replace_held(pool, monkeypatch, count: int) -> None:
    """Kill the first ``count`` workers of a ready pool; their replacements are held as they start."""
    monkeypatch.setenv("HOLD_START", "1")
    killed = pool.pids[:count]
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not set(killed) & set(pool.pids), what="the workers replaced")


def _load(pool) -> list[int]:
    with pool._lock:
        return [len(worker.inflight) for worker in pool._workers]


def test_a_pool_still_starting_deals_a_short_queue_one_to_each_worker(tmp_path, monkeypatch, held_starts):
    """No worker is ready yet (each waits for a file as it starts): two long steps submitted together
    go one to each starting worker, not both to the first (which could not be stolen from before it is
    ready, and then only by a revoke). Each starts on its own worker once the workers are ready."""
    from zart_nb._executors.local import LocalPool

    monkeypatch.setenv("HOLD_START", "1")
    sink = Outcomes()
    pool = LocalPool(2, sink)
    tags = ["a", "b"]
    try:
        tasks = [gated_task(tmp_path, "e-spread", gated, tag, consumer=UnusedConsumer()) for tag in tags]
        pool.submit(tasks)
        wait_until(lambda: held(pool) == 2, what="both sent")  # (by the I/O thread if it held the lock)
        with pool._lock:  # the driver's view: nothing ready, one attempt sent to each
            assert not any(worker.ready for worker in pool._workers)
            assert [[task.step_key for task in worker.inflight] for worker in pool._workers] == [["a"], ["b"]]
        held_starts.touch()
        pids = [started_pid(tmp_path, tag) for tag in tags]
        assert sorted(pids) == sorted(pool.pids) and pids[0] != pids[1]
        _let_go(pool, sink, tmp_path, tags)
        assert (pool.revokes, pool.taken_back) == (0, 0)
    finally:
        pool.shutdown()


def test_a_short_queue_goes_to_a_ready_worker_not_one_still_starting(tmp_path, monkeypatch, held_starts):
    """The first worker is a replacement still starting (held as it starts), the second is ready and
    idle: a step submitted now goes to the ready one, which runs it at once, not to the starting one
    (first by the least-loaded order), where it would wait for the start and could not be taken back."""
    from zart_nb._executors.local import LocalPool

    sink = Outcomes()
    pool = LocalPool(2, sink)
    try:
        wait_until(lambda: all(worker.ready for worker in pool._workers), what="the workers to start")
        second = pool.pids[1]
        _replace_held(pool, monkeypatch, 1)
        assert _run_gated(pool, tmp_path, ["a"]) == [second]
        assert _load(pool) == [0, 1] and not pool._workers[0].ready
        held_starts.touch()
        _let_go(pool, sink, tmp_path, ["a"])
    finally:
        pool.shutdown()


def test_a_longer_queue_fills_a_ready_worker_and_waits_for_the_ones_still_starting(tmp_path, monkeypatch,
                                                                                    held_starts):
    """Two replacements still starting, one worker ready and idle, and more long steps than the ready
    one's room (2): the ready worker is filled, so it does not sit idle while they start (before stop 25,
    the first two, starting, took all four), and the rest wait in the pool's queue for the first worker
    with room, not on the starting workers' sockets (where a step waited for its worker's start however
    soon a ready worker was free: P11's third sum). Once the replacements are ready, each runs one (the
    first one ready takes both, and the second takes one back from a worker holding two)."""
    from zart_nb._executors.local import LocalPool

    sink = Outcomes()
    pool = LocalPool(3, sink)
    tags = ["a", "b", "c", "d"]
    try:
        wait_until(lambda: all(worker.ready for worker in pool._workers), what="the workers to start")
        third = pool.pids[2]
        _replace_held(pool, monkeypatch, 2)
        tasks = [gated_task(tmp_path, "e-spread", gated, tag, consumer=UnusedConsumer()) for tag in tags]
        pool.submit(tasks)
        wait_until(lambda: held(pool) == 2, what="the ready worker's two sent")
        with pool._lock:
            assert [len(worker.inflight) for worker in pool._workers] == [0, 0, 2]
            assert [task.step_key for task in pool._tasks.ready] == ["c", "d"]  # queued, not on a start
        assert started_pid(tmp_path, "a") == third
        held_starts.touch()  # the replacements start: three of the four steps run, one on each worker

        def running() -> list[str] | None:
            found = [tag for tag in tags if (tmp_path / f"{tag}.started").exists()]
            return found if len(found) == 3 else None

        started = wait_until(running, what="three steps running")
        assert sorted(started_pid(tmp_path, tag) for tag in started) == sorted(pool.pids)
        _let_go(pool, sink, tmp_path, tags)
    finally:
        pool.shutdown()


def test_a_pool_started_ahead_starts_more_workers_only_for_queued_attempts(tmp_path):
    """A pool started ahead of need with one of its three workers (as a run starts it, ``start=``):
    one attempt at a time never starts another process (a sequential workflow keeps one); an attempt
    queued while that worker is busy starts a second; a fan-out starts the third, and each long step
    runs on a worker of its own. (Before, the first attempt started them all: on a machine with as
    many cores as workers, a process starting beside the first step slowed it.)"""
    from zart_nb._executors.local import LocalPool

    sink = Outcomes()
    pool = LocalPool(3, sink, start=1)
    try:
        first = pool.pids
        assert len(first) == 1
        for round_ in range(2):  # sequential: submitted, run, answered, then the next
            tag = f"seq{round_}"
            pids = _run_gated(pool, tmp_path, [tag])
            _let_go(pool, sink, tmp_path, [tag])
            assert pids == first and pool.pids == first
            sink.outcomes.clear()
        busy = _run_gated(pool, tmp_path, ["a"])  # the one worker now holds a long step
        assert pool.pids == first
        second = _run_gated(pool, tmp_path, ["b"])  # queued behind it: a second process starts for it
        assert len(pool.pids) == 2 and second != busy
        third = _run_gated(pool, tmp_path, ["c"])
        assert sorted(busy + second + third) == sorted(pool.pids) and len(pool.pids) == 3
        _let_go(pool, sink, tmp_path, ["a", "b", "c"])
        assert sorted(outcome.task.step_key for outcome in sink.outcomes) == ["a", "b", "c"]
    finally:
        pool.shutdown()


@contextlib.contextmanager
def _one_of_two_started() -> Iterator[tuple[Any, Outcomes, list[int]]]:
    """A pool of two workers started ahead with one (as a run starts it), that one ready:
    ``(pool, its outcomes, the started worker's pid in a list)``; shut down on the way out."""
    from zart_nb._executors.local import LocalPool

    sink = Outcomes()
    pool = LocalPool(2, sink, start=1)
    try:
        wait_until(lambda: all(worker.ready for worker in pool._workers), what="the first worker to start")
        yield pool, sink, pool.pids
    finally:
        pool.shutdown()


def test_an_attempt_sent_behind_another_on_the_only_started_worker_starts_a_second(tmp_path):
    """Two submits racing (one's dispatch sends the other's attempt before that one checks the queue)
    can leave two long steps on the only worker started, the second behind the first: the pool starts
    another worker for it and moves it there (a steal) instead of leaving it to wait. Made to happen
    here by sending both to the first worker under the pool's lock, as the racing dispatch does.
    (Before, only a queued attempt started a worker: the two steps ran one after the other.)"""
    import collections

    with _one_of_two_started() as (pool, sink, first):
        tasks = [gated_task(tmp_path, "e-behind", gated, tag, consumer=UnusedConsumer()) for tag in ("a", "b")]
        with pool._lock:
            pool._send_locked(pool._workers[0], collections.deque(tasks), 2)
        pool._wake()
        a, b = started_pid(tmp_path, "a"), started_pid(tmp_path, "b")
        assert [a] == first and b != a and sorted(pool.pids) == sorted([a, b])
        assert pool.revokes == 1  # b was taken back from the first worker for the second
        _let_go(pool, sink, tmp_path, ["a", "b"])


def test_an_attempt_queued_behind_the_only_ready_worker_runs_there_when_its_step_ends_first(
        tmp_path, monkeypatch, held_starts):
    """A pool started ahead with one worker, busy with a step; an attempt submitted now starts a second
    worker (held as it starts here) but waits behind the busy one's step, not on the starting process:
    the step ends, and it runs on the first worker while the second is still starting. (Before, it was
    sent to the starting worker and waited for its start however soon the step ended: P11's second sum
    waited 60 ms for a process and ran 70 ms there, against 10 ms behind the first.)"""
    with _one_of_two_started() as (pool, sink, first):
        assert _run_gated(pool, tmp_path, ["a"]) == first
        monkeypatch.setenv("HOLD_START", "1")  # the second worker, started for b, waits as it starts
        pool.submit([gated_task(tmp_path, "e-behind", gated, "b", consumer=UnusedConsumer())])
        wait_until(lambda: len(pool._workers) == 2, what="a second worker started for b")
        assert _load(pool) == [2, 0] and not pool._workers[1].ready  # b waits behind a, not on the start
        (tmp_path / "a.go").touch()
        assert started_pid(tmp_path, "b") == first[0]  # a ended: b runs on the first worker at once
        assert not pool._workers[1].ready
        held_starts.touch()
        _let_go(pool, sink, tmp_path, ["a", "b"])


def test_an_attempt_behind_a_long_step_moves_to_the_new_worker_once_it_is_ready(tmp_path):
    """The same, with the first worker's step running on: once the second worker is ready, the attempt
    waiting behind that step is taken back and runs there (a steal), not after the step."""
    with _one_of_two_started() as (pool, sink, first):
        assert _run_gated(pool, tmp_path, ["a"]) == first
        (second,) = _run_gated(pool, tmp_path, ["b"])  # a still runs: b starts on the second worker
        assert second != first[0] and sorted(pool.pids) == sorted([first[0], second])
        assert pool.taken_back == 1
        _let_go(pool, sink, tmp_path, ["a", "b"])
