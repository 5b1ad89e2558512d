"""One execution per id in a process: starting or re-running a running execution joins it, and joining
with other code or input is refused."""
import threading

import pytest
from conftest import wait_until
from steps_lib import wait_for_file

import zart_nb as zart


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


def test_a_workflow_that_runs_its_own_execution_is_refused(journal, inline):
    @zart.workflow("ouroboros")
    def flow(depth):
        return zart.run(flow, depth, execution_id="self", journal=journal)  # its own execution id

    with pytest.raises(zart.DefinitionError, match="would wait for itself"):
        zart.run(flow, 1, execution_id="self", journal=journal)


def test_a_workflow_that_starts_itself_without_end_is_stopped_at_a_depth(journal, inline):
    @zart.workflow("endless")
    def flow(depth):
        return zart.run(flow, depth + 1)  # a child each time: endless/endless#0/endless#0/...

    with pytest.raises(zart.DefinitionError, match="children nested 32 deep"):
        zart.run(flow, 0, journal=journal)


def test_a_workflow_may_run_another_execution_inside(journal, inline):
    @zart.workflow("nested")
    def flow(depth):
        return depth if depth == 0 else zart.run(flow, depth - 1, journal=journal) + 1

    assert zart.run(flow, 2, journal=journal) == 2


def test_ctrl_c_while_waiting_for_a_started_execution_interrupts_it(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import textwrap

    journal = tmp_path / "j.duckdb"
    script = tmp_path / "driver.py"
    started = tmp_path / "started"
    script.write_text(textwrap.dedent(f"""
        import zart_nb as zart
        from steps_lib import announce_then_wait

        @zart.workflow("ctrl-c-start")
        def flow(paths):
            return announce_then_wait(*paths)

        execution = zart.start(flow, ({str(started)!r}, {str(tmp_path / "never")!r}), execution_id="c-1",
                               journal={str(journal)!r}, workers=1, display=False)
        try:
            execution.result()
        except KeyboardInterrupt:
            print("STATUS", execution.status.value, flush=True)
    """))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [os.path.dirname(__file__),
                                                                      os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        # the step runs, so the driver waits in result() (a step in a worker takes far longer to start)
        wait_until(lambda: started.exists() or proc.poll() is not None, what="the step to start")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert "STATUS interrupted" in out, err
    assert zart.journal(journal).execution_record("c-1").status is zart.ExecutionStatus.INTERRUPTED
