"""Concurrency limits (``zart.Queue``) with real worker processes: at most N attempts of a queue at
once across executions, a rate of starts, retries kept in their queue, a cancel that drops what
waits, and the backlog in the progress snapshot, ``zart show`` and the widget's text.

Steps record when they start and end (``time.time()`` in the worker, one clock on one machine) in
files; the assertions are on those records, never on how long something took."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from conftest import wait_until
from steps_lib import wait_for_file

import zart_nb as zart
from zart_nb._definitions import limit_of
from zart_nb._executors.taskqueue import forget_limits


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"  # a queue name is process-wide: one per test


def _record(key: str, folder: str, hold: float) -> int:
    """Record an attempt's start and end in ``folder/key.attempt``; ``hold`` is the step's work."""
    import time

    attempt = zart.context().attempt
    start = time.time()
    time.sleep(hold)  # the work itself: what makes attempts overlap when nothing limits them
    with open(os.path.join(folder, f"{key}.{attempt}"), "w") as handle:
        handle.write(f"{start} {time.time()}")
    return attempt or 0


@zart.step("timed-{key}")
def timed(key: str, folder: str, hold: float) -> str:
    _record(key, folder, hold)
    return key


@zart.step("flaky-{key}", retries=1)
def flaky(key: str, folder: str, hold: float) -> str:
    """Fails its first attempt (after recording it), succeeds the next."""
    if _record(key, folder, hold) == 1:
        raise RuntimeError("first attempt fails")
    return key


TWO = zart.Queue("test-queues-two", concurrency=2)


@zart.step("limited-{key}", queue=TWO)
def limited(key: str, folder: str) -> str:
    _record(key, folder, 0.2)
    return key


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Where the steps of a test record their attempts."""
    path = tmp_path / "spans"
    path.mkdir()
    return path


def intervals(folder: Path) -> list[tuple[float, float, str]]:
    found = []
    for path in folder.iterdir():
        start, end = path.read_text().split()
        found.append((float(start), float(end), path.name))
    return sorted(found)


def most_at_once(spans: list[tuple[float, float, str]]) -> int:
    """The most attempts running at one moment (an attempt running at another's start counts)."""
    return max(sum(1 for s, e, _ in spans if s <= start < e) for start, _, _ in spans)


def test_concurrency_one_never_overlaps_across_two_executions(journal, folder):
    queue = zart.Queue(_name("one"), concurrency=1)

    @zart.workflow("one-at-a-time")
    def flow(prefix):
        return zart.wait([queue.schedule(timed, f"{prefix}{i}", str(folder), 0.15) for i in range(3)])

    first = zart.start(flow, "a", execution_id="one-a", journal=journal, workers=2)
    second = zart.start(flow, "b", execution_id="one-b", journal=journal, workers=2)
    assert first.result(timeout=120) == ["a0", "a1", "a2"]
    assert second.result(timeout=120) == ["b0", "b1", "b2"]
    spans = intervals(folder)
    assert len(spans) == 6
    for (_, end, name), (start, _, later) in zip(spans, spans[1:], strict=False):
        assert start >= end, f"{later} started before {name} ended"
    assert limit_of(queue).active == 0  # every slot was given back


def test_concurrency_two_on_a_pool_of_four_runs_at_most_two_at_once(journal, folder):

    @zart.workflow("two-at-a-time")
    def flow(_):
        return zart.wait([zart.schedule(limited, str(i), str(folder)) for i in range(8)])

    assert zart.run(flow, None, journal=journal, workers=4) == [str(i) for i in range(8)]
    spans = intervals(folder)
    assert len(spans) == 8
    assert most_at_once(spans) <= 2
    assert limit_of(TWO).active == 0


def test_a_rate_never_starts_more_than_its_calls_in_a_window(journal, folder, monkeypatch):
    # The rate counts admissions: the moment the driver hands an attempt to the executor to send (the
    # taskqueue docstring). Each starts on its worker a moment later, and on a loaded machine those
    # moments differ by more than any tolerance (a test on the workers' clocks failed 4 of 5 runs beside
    # two busy loops), so the window is checked on the admissions themselves, on the limit's own clock.
    queue = zart.Queue(_name("rate"), rate=(2, 1.0))
    limit = limit_of(queue)
    admitted: list[float] = []
    admit = type(limit)._admit

    def recording(self, now: float) -> None:
        if self is limit:
            admitted.append(now)
        admit(self, now)

    monkeypatch.setattr(type(limit), "_admit", recording)

    @zart.workflow("rated")
    def flow(_):
        return zart.wait([queue.schedule(timed, str(i), str(folder), 0.0) for i in range(6)])

    assert zart.run(flow, None, journal=journal, workers=2) == [str(i) for i in range(6)]
    assert len(intervals(folder)) == 6  # each attempt ran once, on a worker
    assert len(admitted) == 6 and admitted == sorted(admitted)
    for first, third in zip(admitted, admitted[2:], strict=False):
        assert third - first >= 1.0, admitted  # never a third admission within a second of the first
    assert admitted[-1] - admitted[0] >= 2.0  # six at two a second: three windows at least


def test_a_retry_stays_in_its_queue(inline, journal, folder):
    queue = zart.Queue(_name("retry"), concurrency=1)

    @zart.workflow("retry-in-queue")
    def flow(_):
        # The retry is due 0.5 s after the first attempt fails, while the others still run one by one
        handles = [queue.schedule(flaky, "f", str(folder), 0.1)]
        handles += [queue.schedule(timed, str(i), str(folder), 0.2) for i in range(5)]
        return zart.wait(handles)

    assert zart.run(flow, None, journal=journal, workers=4) == ["f", "0", "1", "2", "3", "4"]
    spans = intervals(folder)
    assert sorted(name for _, _, name in spans) == ["0.1", "1.1", "2.1", "3.1", "4.1", "f.1", "f.2"]
    assert most_at_once(spans) == 1  # the inline executor runs 4 threads: only the queue holds them back


def test_the_inline_executor_keeps_the_limit(inline, journal, folder):
    queue = zart.Queue(_name("inline"), concurrency=2)

    @zart.workflow("inline-limited")
    def flow(_):
        return zart.wait([queue.schedule(timed, str(i), str(folder), 0.1) for i in range(6)])

    assert zart.run(flow, None, journal=journal, workers=6) == [str(i) for i in range(6)]
    assert most_at_once(intervals(folder)) <= 2
    assert limit_of(queue).active == 0


def test_a_cancel_drops_queued_attempts_as_cancelled_and_frees_the_queue(journal, tmp_path):
    queue = zart.Queue(_name("cancel"), concurrency=1)
    never = str(tmp_path / "never")

    @zart.workflow("stuck-queue")
    def flow(_):
        return zart.wait([queue.schedule(wait_for_file.named(f"wait-{i}"), never) for i in range(4)])

    execution = zart.start(flow, None, execution_id="stuck", journal=journal, workers=2)

    def held_back():
        progress = execution.progress()  # the public door on the live run
        return progress if progress is not None and (progress.running, progress.queued) == (1, 3) else None

    progress = wait_until(held_back, what="1 running, 3 held back")
    assert progress.scheduled == 0
    (backlog,) = progress.queues
    assert (backlog.name, backlog.waiting, backlog.active, backlog.concurrency) == (queue.name, 3, 1, 1)
    shown = subprocess.run([sys.executable, "-m", "zart_nb._cli", "show", "stuck", "--journal", str(journal)],
                           capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert "3 waiting on a queue's limit" in shown.stdout, shown.stdout + shown.stderr
    assert any(line.split()[:3] == [queue.name, "3", "1"] for line in shown.stdout.splitlines()), shown.stdout

    from zart_nb._notebook.progress import Tracker
    from zart_nb._notebook.render import counts_text

    line = counts_text(Tracker(execution, "stuck-queue").snapshot())  # the widget's and text line's counts
    assert "1 running" in line and f"3 waiting on queue '{queue.name}'" in line and "scheduled" not in line

    execution.cancel()
    with pytest.raises(zart.Cancelled):
        execution.result(timeout=60)
    with zart.journal(journal, live=False) as reader:
        steps = {step.step_key: step for step in reader.list_steps("stuck")}
    assert {key: step.status for key, step in steps.items()} == {
        f"wait-{i}": zart.StepStatus.CANCELLED for i in range(4)}
    assert sum(step.started_at is None for step in steps.values()) == 3  # never started: dropped
    assert limit_of(queue).active == 0
    Path(never).touch()  # the queue was not left full: a new execution's steps run
    assert zart.run(flow, None, execution_id="after", journal=journal, workers=2) == ["released"] * 4


def test_a_queue_is_one_per_name_and_checks_its_arguments():
    name = _name("args")
    queue = zart.Queue(name, concurrency=2, rate=(5, 1))
    again = zart.Queue(name, concurrency=2, rate=(5, 1.0))  # a cell run twice: the same limit
    assert again == queue and limit_of(again) is limit_of(queue)
    with pytest.raises(zart.DefinitionError, match=f"queue '{name}' already exists .* concurrency=2"):
        zart.Queue(name, concurrency=3)
    for bad, message in [(dict(name=""), "non-empty string"),
                         (dict(name="q", concurrency=0), "concurrency must be an integer >= 1"),
                         (dict(name="q", concurrency=True), "concurrency must be an integer"),
                         (dict(name="q", rate=(0, 1.0)), "calls must be an integer >= 1"),
                         (dict(name="q", rate=(1, float("inf"))), "seconds must be a finite number"),
                         (dict(name="q", rate=[1, 1.0]), r"rate must be a pair \(calls, seconds\)"),
                         (dict(name="q"), "limits nothing")]:
        with pytest.raises(zart.DefinitionError, match=message):
            zart.Queue(**bad)
    with pytest.raises(zart.DefinitionError, match="queue must be a zart.Queue"):
        zart.step("s", queue="api")(lambda: None)
    with pytest.raises(zart.NotInWorkflow):
        queue.schedule(timed, "x", "/nowhere", 0.0)


def test_a_queue_pickles_as_its_limits_not_its_counters():
    import pickle

    queue = zart.Queue(_name("pickled"), concurrency=1)
    assert limit_of(pickle.loads(pickle.dumps(queue))) is limit_of(queue)  # its limits travel, not its counters
    forget_limits()  # another process: the name is new there
    assert limit_of(pickle.loads(pickle.dumps(queue))) is not limit_of(queue)
