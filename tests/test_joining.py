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
