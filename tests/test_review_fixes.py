"""Behaviour found by review: replies not held by the next step, timeouts of queued steps, async
bodies under a running loop, stable hashes of DurableExecution instances, duplicate starts."""
import asyncio
import concurrent.futures
import subprocess
import sys
import textwrap

import pytest
from conftest import wait_until
from steps_lib import quick, slow_forever, square, wait_for_file

import zart_nb as zart


def test_a_finished_step_is_reported_while_the_next_one_runs(journal, tmp_path):
    barrier = tmp_path / "go"

    @zart.workflow("fast-then-slow")
    def flow(_):
        fast = zart.schedule(quick, 1)
        slow = zart.schedule(wait_for_file, str(barrier))
        fast.wait_done(timeout=30)  # one worker: the slow step runs right after, in the same process
        done_first = not slow.done
        barrier.touch()
        return fast.result(), slow.result(), done_first

    assert zart.run(flow, None, journal=journal, workers=1) == (2, "released", True)


def test_a_step_queued_behind_another_still_times_out(journal, tmp_path):
    @zart.workflow("queued-timeout")
    def flow(_):
        first = zart.schedule(quick, 1)
        stuck = zart.schedule(slow_forever, str(tmp_path / "never"))
        return zart.wait([first, stuck], return_exceptions=True)

    first, stuck = zart.run(flow, None, journal=journal, workers=1)
    assert first == 2
    assert isinstance(stuck, zart.StepTimeout) and stuck.step_key == "slow-forever#0"


def test_async_workflow_body_under_a_running_event_loop(journal):
    @zart.workflow("async-in-loop")
    async def body(x):
        await asyncio.sleep(0)
        return square(x)

    async def notebook_cell():  # Jupyter runs cells while an event loop is running
        return zart.run(body, 7, journal=journal)

    assert asyncio.run(notebook_cell()) == 49


def test_completed_durable_execution_is_reused_in_a_new_process(tmp_path):
    journal = tmp_path / "j.duckdb"
    script = tmp_path / "cls.py"
    script.write_text(textwrap.dedent(f"""
        import zart_nb as zart

        @zart.step("twice")
        def twice(x):
            return 2 * x

        class Doubler(zart.DurableExecution):
            def __init__(self):
                self.label = "doubler"

            def run(self, data):
                return [twice(x) for x in data]

        registry = zart.TaskRegistry()
        registry.register("doubler", Doubler())
        durable = zart.DurableScheduler(registry, journal={str(journal)!r}, workers=1,
                                        on_change="error")
        print(durable.start_and_wait_for("d-1", "doubler", [1, 2], timeout=60))
        print(len(zart.journal({str(journal)!r}).list_runs("d-1")))
    """))
    outputs = [subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
               for _ in range(2)]
    for proc in outputs:
        assert proc.returncode == 0, proc.stderr
    assert outputs[0].stdout.split() == ["[2,", "4]", "1"]
    assert outputs[1].stdout.split() == ["[2,", "4]", "1"]  # reused: no second run, no NonDeterminism


def test_starting_a_running_execution_again_returns_its_handle(journal, tmp_path):
    registry = zart.TaskRegistry()

    @zart.workflow("waits")
    def waits(path):
        return wait_for_file(path)

    registry.register("waits", waits)
    durable = zart.DurableScheduler(registry, journal=journal)
    first = durable.start("w-1", "waits", str(tmp_path / "go"))
    wait_until(lambda: first.status is zart.ExecutionStatus.RUNNING, what="running")
    assert durable.start("w-1", "waits", str(tmp_path / "go")) is first
    (tmp_path / "go").touch()
    assert first.result(timeout=60) == "released"
    assert durable.status("w-1") is zart.ExecutionStatus.COMPLETED


def test_bad_worker_counts_are_refused_up_front():
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="workers"):
            zart.run(lambda x: x, 1, workers=bad)


def test_a_step_called_on_another_thread_warns_that_it_is_not_journaled(journal):
    @zart.workflow("threaded")
    def threaded(xs):
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            return list(pool.map(square, xs))

    with pytest.warns(RuntimeWarning, match="not journaled"):
        assert zart.run(threaded, [1, 2], journal=journal) == [1, 4]


def test_shutting_the_pool_down_under_a_run_ends_its_steps(journal, tmp_path):
    from zart_nb._runtime import runtime

    @zart.workflow("orphaned-by-shutdown")
    def flow(path):
        return zart.wait([zart.schedule(wait_for_file, path)])

    execution = zart.start(flow, str(tmp_path / "never"), journal=journal)
    wait_until(lambda: runtime.executor is not None and not runtime.executor.idle, what="a step in the pool")
    zart.shutdown_pool()
    with pytest.raises(zart.StepCancelled, match="wait-for-file#0"):
        execution.result(timeout=60)
    assert zart.run(lambda x: square(x), 3, journal=journal) == 9  # a new pool starts on demand


def test_rerunning_a_cell_while_its_execution_runs_joins_it(journal, tmp_path):
    gate = tmp_path / "gate"

    @zart.workflow("joined")
    def flow(path):
        return wait_for_file(path)

    first = zart.start(flow, str(gate), journal=journal)
    wait_until(lambda: first.status is zart.ExecutionStatus.RUNNING, what="running")
    assert zart.start(flow, str(gate), journal=journal) is first
    results, errors = [], []

    def rerun_cell():
        try:
            results.append(zart.run(flow, str(gate), journal=journal))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    import threading

    thread = threading.Thread(target=rerun_cell)
    thread.start()  # blocks: the gate is closed, so `first` is still running when run() is called
    gate.touch()
    thread.join(timeout=60)
    assert errors == [] and results == ["released"]
    assert first.result(timeout=60) == "released"
    assert [r.run_number for r in zart.journal(journal).list_runs(first.execution_id)] == [1]


def test_start_twice_at_once_gives_one_execution(journal, tmp_path):
    gate = tmp_path / "gate"

    @zart.workflow("twice")
    def flow(path):
        return wait_for_file(path)

    first = zart.start(flow, str(gate), execution_id="t-1", journal=journal)
    second = zart.start(flow, str(gate), execution_id="t-1", journal=journal)  # no wait in between
    assert second is first
    gate.touch()
    assert first.result(timeout=60) == "released"
    assert len(zart.journal(journal).list_runs("t-1")) == 1


def test_joining_a_running_execution_with_other_code_or_input_is_refused(journal, tmp_path):
    gate = tmp_path / "gate"

    @zart.workflow("original")
    def flow(path):
        return wait_for_file(path)

    @zart.workflow("edited")
    def edited(path):
        return wait_for_file(path) + "!"

    first = zart.start(flow, str(gate), execution_id="j-1", journal=journal)
    try:
        with pytest.raises(zart.DefinitionError, match="different input"):
            zart.run(flow, str(tmp_path / "other"), execution_id="j-1", journal=journal)
        with pytest.raises(zart.NonDeterminism, match="different workflow code"):
            zart.run(edited, str(gate), execution_id="j-1", journal=journal, on_change="error")
    finally:
        gate.touch()
    assert first.result(timeout=60) == "released"
