"""The public API end to end, on a real journal file and real worker processes."""
import asyncio
import concurrent.futures
import os

import pytest
from steps_lib import (
    Point,
    SumSquares,
    add,
    async_double,
    fail_if,
    fetch,
    make_point,
    square,
    squares,
    whereami,
)

import zart_nb as zart


def test_seed_health_check_as_documented(journal):
    from zart_nb._demo import HealthCheckInput, HealthCheckTask

    registry = zart.TaskRegistry()
    registry.register("health-check", HealthCheckTask())
    durable = zart.DurableScheduler(registry, journal=journal)
    out = durable.start_and_wait_for("health-check-run-1", "health-check",
                                     HealthCheckInput(["auth-api", "payments", "users-db"]), timeout=60)
    assert out.services_checked == 3
    assert out.total_issues == 1
    assert [r.name for r in out.results] == ["auth-api", "payments", "users-db"]
    assert [r.status for r in out.results] == ["healthy", "degraded", "healthy"]
    assert durable.status("health-check-run-1") is zart.ExecutionStatus.COMPLETED


def test_schedule_and_wait_keep_handle_order(journal):
    @zart.workflow("ordered")
    def ordered(xs):
        handles = [zart.schedule(square, x) for x in xs]
        return zart.wait(handles)

    xs = list(range(40, 0, -1))
    assert zart.run(ordered, xs, journal=journal) == [x * x for x in xs]


def test_plain_step_call_outside_workflow_is_the_function():
    assert square(7) == 49
    assert add(2, 3) == 5


def test_sequential_calls_are_journaled_in_order(journal):
    @zart.workflow("chain")
    def chain(n):
        total = 0
        for i in range(n):
            total = add(total, i)
        return total

    assert zart.run(chain, 10, execution_id="chain-1", journal=journal) == sum(range(10))
    steps = zart.journal(journal).list_steps("chain-1")
    assert [s.step_key for s in steps] == [f"add#{i}" for i in range(10)]
    assert all(s.status is zart.StepStatus.COMPLETED for s in steps)
    assert steps[3].output_preview == repr(sum(range(4)))


def test_wait_raises_first_failure_in_handle_order(journal):
    @zart.workflow("fails")
    def fails(xs):
        return zart.wait([zart.schedule(fail_if, x, 3) for x in xs])

    with pytest.raises(zart.StepFailed) as info:
        zart.run(fails, [1, 2, 3, 4], execution_id="fails-1", journal=journal)
    assert info.value.step_key == "fail-if#2"
    assert "bad value 3" in str(info.value)
    assert isinstance(info.value.__cause__, ValueError)
    record = zart.journal(journal).execution_record("fails-1")
    assert record.status is zart.ExecutionStatus.FAILED


def test_return_exceptions_puts_failures_in_place(journal):
    @zart.workflow("mixed")
    def mixed(xs):
        results = zart.wait([zart.schedule(fail_if, x, 2) for x in xs], return_exceptions=True)
        return [type(r).__name__ if isinstance(r, Exception) else r for r in results]

    assert zart.run(mixed, [1, 2, 3], journal=journal) == [1, "StepFailed", 3]


def test_name_templates_and_named_keys(journal):
    @zart.workflow("regions")
    def regions(names):
        first = [zart.schedule(fetch, n) for n in names]
        extra = zart.schedule(square.named("square-special"), 9)
        return zart.wait(first) + [extra.result()]

    assert zart.run(regions, ["eu", "us"], execution_id="regions-1", journal=journal) == ["EU", "US", 81]
    keys = [s.step_key for s in zart.journal(journal).list_steps("regions-1")]
    assert keys == ["fetch-eu", "fetch-us", "square-special"]


def test_duplicate_key_is_a_clear_error(journal):
    @zart.workflow("dup")
    def dup(_):
        zart.schedule(fetch, "eu")
        zart.schedule(fetch, "eu")

    with pytest.raises(zart.DefinitionError, match="fetch-eu"):
        zart.run(dup, None, journal=journal)


def test_async_steps_run(journal):
    @zart.workflow("asyncs")
    def asyncs(xs):
        return zart.wait([zart.schedule(async_double, x) for x in xs])

    assert zart.run(asyncs, [1, 2, 3], journal=journal) == [2, 4, 6]


def test_async_workflow_body(journal):
    @zart.workflow("async-body")
    async def async_body(x):
        return square(x) + 1

    assert zart.run(async_body, 5, journal=journal) == 26


def test_context_in_workflow_and_step(journal):
    @zart.workflow("ctx")
    def ctx(_):
        outer = zart.context()
        inner = whereami()
        return (outer.execution_id, outer.step_key, inner)

    execution_id, step_key, inner = zart.run(ctx, None, execution_id="ctx-1", journal=journal)
    assert execution_id == "ctx-1" and step_key is None
    assert inner[:3] == ("ctx-1", "whereami#0", 1)
    assert inner[3] != os.getpid()  # it ran in a worker process


def test_context_outside_is_an_error():
    with pytest.raises(zart.NotInWorkflow):
        zart.context()
    with pytest.raises(zart.NotInWorkflow):
        zart.schedule(square, 2)


def test_durable_execution_class_and_registry(journal):
    registry = zart.TaskRegistry()
    registry.register("sum-squares", SumSquares())
    durable = zart.DurableScheduler(registry, journal=journal)
    execution = durable.start("ss-1", "sum-squares", [1, 2, 3])
    assert execution.result(timeout=60) == [1, 4, 9]
    assert execution.status is zart.ExecutionStatus.COMPLETED
    assert durable.wait("ss-1") == [1, 4, 9]
    with pytest.raises(zart.DefinitionError, match="no task registered as 'nope'"):
        durable.start("x", "nope", None)


def test_start_returns_at_once_and_result_waits(journal):
    execution = zart.start(squares, {"xs": [1, 2, 3]}, execution_id="bg-1", journal=journal)
    assert isinstance(execution, zart.Execution)
    assert execution.result(timeout=60) == 14
    assert execution.done


def test_dataclass_outputs_roundtrip(journal):
    @zart.workflow("points")
    def points(xs):
        return zart.wait([zart.schedule(make_point, x) for x in xs])

    assert zart.run(points, [1, 2], journal=journal) == [Point(1, -1), Point(2, -2)]


def test_cell_defined_steps_travel_by_value(journal, tmp_path):
    """Steps defined in __main__ (a notebook cell, a script) run in workers without being importable."""
    import subprocess
    import sys
    import textwrap

    script = tmp_path / "cell.py"
    script.write_text(textwrap.dedent(f"""
        import zart_nb as zart
        from dataclasses import dataclass

        @dataclass
        class Result:
            value: int

        FACTOR = 3

        @zart.step("times")
        def times(x):
            return Result(x * FACTOR)

        @zart.workflow("cell-flow")
        def flow(xs):
            return zart.wait([zart.schedule(times, x) for x in xs])

        out = zart.run(flow, [1, 2], journal={str(journal)!r}, workers=1)
        assert out == [Result(3), Result(6)], out
        assert isinstance(out[0], Result)
        print("OK", out)
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "OK [Result(value=3), Result(value=6)]" in proc.stdout


def test_definitions_are_journaled_with_source(journal):
    zart.run(squares, {"xs": [2]}, execution_id="defs-1", journal=journal)
    rows = zart.journal(journal).list_definitions()
    kinds = {(row.kind, row.name) for row in rows}
    assert ("step", "square") in kinds and ("workflow", "squares") in kinds
    assert any("def square" in row.source for row in rows)


def test_on_change_validation():
    with pytest.raises(ValueError, match="on_change"):
        zart.run(squares, {"xs": []}, on_change="ignore")


def test_step_options_validation():
    with pytest.raises(zart.DefinitionError):
        zart.step("x", timeout=0)(lambda: None)
    with pytest.raises(zart.DefinitionError):
        zart.step("x", retries="3")(lambda: None)
    with pytest.raises(zart.DefinitionError):
        zart.RetryPolicy(retries=-1)
    assert zart.RetryPolicy(retries=3, backoff=0.1, multiplier=2, max_backoff=0.3).delay(3) == 0.3


def test_workers_env_validation(monkeypatch):
    from zart_nb._runtime import default_worker_count

    monkeypatch.setenv("ZART_WORKERS", "3")
    assert default_worker_count() == 3
    monkeypatch.setenv("ZART_WORKERS", "zero")
    with pytest.raises(ValueError, match="ZART_WORKERS"):
        default_worker_count()


def test_async_workflow_body_under_a_running_event_loop(journal):
    @zart.workflow("async-in-loop")
    async def body(x):
        await asyncio.sleep(0)
        return square(x)

    async def notebook_cell():  # Jupyter runs cells while an event loop is running
        return zart.run(body, 7, journal=journal)

    assert asyncio.run(notebook_cell()) == 49


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


def test_a_registry_refuses_another_workflow_under_a_registered_name():
    def first(data):
        return data

    def second(data):
        return [data]

    registry = zart.TaskRegistry()
    registry.register("task", first)
    with pytest.raises(zart.DefinitionError, match=r"'task' is already registered.*second.*first.*replace=True"):
        registry.register("task", second)
    assert registry.get("task") is first
    registry.register("task", second, replace=True)
    assert registry.get("task") is second


def test_a_registry_takes_the_same_workflow_again_as_a_cell_run_twice_would():
    cell = "def task(data):\n    return data * 2\n"
    registry = zart.TaskRegistry()
    for _ in range(2):  # a new function object each time, with the same code
        namespace = {"__name__": "__main__"}
        exec(compile(cell, "<cell>", "exec"), namespace)
        registry.register("task", namespace["task"])
    assert registry.get("task") is namespace["task"]
    registry.register("other", SumSquares())
    registry.register("other", SumSquares())  # a DurableExecution instance made again
