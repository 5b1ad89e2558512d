"""Engine behaviour: commit latency, the event stream, cancellation, journal release."""
import subprocess
import sys

import pytest
from conftest import wait_until
from steps_lib import square, wait_for_file

import zart_nb as zart
from zart_nb._runtime import runtime


def test_finished_step_is_in_duckdb_while_wait_is_still_pending(journal, tmp_path):
    barrier = tmp_path / "go"

    @zart.workflow("half-done")
    def flow(_):
        fast = zart.schedule(square, 3)
        slow = zart.schedule(wait_for_file, str(barrier))
        return zart.wait([fast, slow])

    execution = zart.start(flow, None, execution_id="hd-1", journal=journal)
    j = runtime.journal(journal)

    def rows_in_duckdb():  # a raw read: no fold on the reader's side, only the writer thread's
        with j._lock:
            if j._conn is None:
                return 0
            return j._conn.execute("SELECT count(*) FROM steps WHERE execution_id = 'hd-1'").fetchone()[0]

    try:
        wait_until(lambda: rows_in_duckdb() == 1, what="square#0 folded into DuckDB")
        assert not execution.done
        steps = zart.journal(journal).list_steps("hd-1")
        assert [(s.step_key, s.status, s.output_preview) for s in steps] == [
            ("square#0", zart.StepStatus.COMPLETED, "9")]
    finally:
        barrier.touch()
    assert execution.result(timeout=60) == [9, "released"]


def test_event_stream_reports_steps_and_execution(journal):
    seen = []
    unsubscribe = zart.events.subscribe(seen.append)
    try:
        @zart.workflow("evented")
        def flow(xs):
            return zart.wait([zart.schedule(square, x) for x in xs])

        zart.run(flow, [1, 2], execution_id="ev-1", journal=journal)
    finally:
        unsubscribe()
    mine = [(e.kind, e.status, e.step_key) for e in seen if e.execution_id == "ev-1"]
    assert mine[0] == ("execution", "running", None)
    assert mine[-1] == ("execution", "completed", None)
    assert {(k, s) for k, s, key in mine if key == "square#1"} == {("step", "scheduled"), ("step", "completed")}
    # after unsubscribing nothing more arrives
    count = len(seen)
    zart.run(lambda x: x, 1, journal=journal)
    assert len(seen) == count


def test_cancel_stops_running_steps(journal, tmp_path):
    never = tmp_path / "never"

    @zart.workflow("cancellable")
    def flow(_):
        return zart.wait([zart.schedule(wait_for_file, str(never)) for _ in range(3)])

    scheduled = []
    unsubscribe = zart.events.subscribe(
        lambda e: e.execution_id == "cx-1" and e.status == "scheduled" and scheduled.append(e))
    execution = zart.start(flow, None, execution_id="cx-1", journal=journal)
    try:
        wait_until(lambda: len(scheduled) == 3, what="3 steps scheduled")
    finally:
        unsubscribe()
    execution.cancel()
    with pytest.raises(zart.Cancelled):
        execution.result(timeout=60)
    assert execution.status is zart.ExecutionStatus.CANCELLED
    j = zart.journal(journal)
    assert j.list_executions()[0].status is zart.ExecutionStatus.CANCELLED
    assert {s.status for s in j.list_steps("cx-1")} == {zart.StepStatus.CANCELLED}
    # the pool healed: the next execution runs
    assert zart.run(lambda x: square(x), 4, journal=journal) == 16


def test_idle_journal_is_released_for_other_processes(journal):
    zart.run(lambda x: square(x), 2, execution_id="rel-1", journal=journal)
    code = ("import zart_nb as zart, sys; "
            f"from zart_nb._runtime import runtime; from zart_nb._journal.reader import FileJournalReader; "
            f"j = FileJournalReader(runtime.journal({str(journal)!r}, lock_timeout=30)); "
            "print([e.execution_id for e in j.list_executions()])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['rel-1']"


def test_a_busy_pool_is_not_resized_under_running_steps(journal, tmp_path):
    barrier = tmp_path / "go"

    @zart.workflow("long")
    def long_flow(_):
        return wait_for_file(str(barrier))

    from zart_nb._runtime import runtime

    first = zart.start(long_flow, None, execution_id="busy-1", journal=journal, workers=2)
    wait_until(lambda: runtime.executor is not None and not runtime.executor.idle, what="a step in the pool")
    try:
        # another size while busy: runs on the existing pool instead of killing busy-1's step
        assert zart.run(lambda x: square(x), 6, execution_id="busy-2", journal=journal, workers=1) == 36
    finally:
        barrier.touch()
    assert first.result(timeout=60) == "released"


def test_large_arguments_and_results_never_deadlock_the_pool(journal):
    """Many ~300 KB arguments and results in flight: both sides of a socket fill up otherwise."""
    from steps_lib import echo_bytes

    blobs = [bytes([i]) * 300_000 + b"end" for i in range(24)]

    @zart.workflow("big-payloads")
    def flow(items):
        return zart.wait([zart.schedule(echo_bytes, item) for item in items])

    out = zart.run(flow, blobs, journal=journal, workers=2)
    assert [o[::-1] for o in out] == blobs


def _keep_a_weak_reference_to_the_run(kept):
    import weakref

    from zart_nb._context import current_run

    kept.append(weakref.ref(current_run()))


def test_a_finished_run_is_not_kept_alive_by_the_engines_threads(journal):
    """Once ``zart.run`` returns and nothing of the caller's refers to it, the run's state (its step keys, the
    replayed steps it read, its handles) is freed: the committer thread kept its last batch of outcomes while
    it waited for the next one, and with it their run, until another run's steps ended (a kernel kept a
    100,000-step run's keys, and the arenas they pinned: 201 MB of RSS instead of 177 MB after it)."""
    import gc

    kept = []

    @zart.workflow("freed")
    def flow(n):
        _keep_a_weak_reference_to_the_run(kept)
        return sum(zart.wait([zart.schedule(square, i) for i in range(n)]))

    for round_ in range(3):  # each run's outcomes go through the committer thread as the pool is busy
        assert zart.run(flow, 200, execution_id=f"freed-{round_}", journal=journal, display=False) == \
            sum(i * i for i in range(200))
        gc.collect()
        assert kept[-1]() is None, f"run {round_} is still alive: {gc.get_referrers(kept[-1]())!r:.300}"
