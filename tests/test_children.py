"""Parents and children: an execution started from a workflow body records its parent, gets an id from
its parent and its position, is cancelled with its parent, and is found again by a resumed parent (real
worker processes, a real DuckDB file, the zart CLI)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import wait_until
from waiting_lib import parent, waiting_parent

import zart_nb as zart
from zart_nb._handles import run_of


def _reader(journal: Path) -> zart.JournalReader:
    return zart.journal(journal, live=False)


def test_children_record_their_parent_get_ids_from_their_position_and_are_reused_on_resume(journal, tmp_path):
    p = {"dir": str(tmp_path), "flag": str(tmp_path / "flag")}
    Path(p["flag"]).touch()
    with pytest.raises(zart.TaskError, match="flag is set"):
        zart.run(parent, p, execution_id="p", journal=journal, display=False, workers=2)
    reader = _reader(journal)
    try:
        children = reader.list_executions(parent="p", sort="id", descending=False)
        assert sorted((c.execution_id, c.status, c.parent_execution_id) for c in children) == sorted([
            ("p/child#0", zart.ExecutionStatus.COMPLETED, "p"), ("p/child#1", zart.ExecutionStatus.COMPLETED, "p"),
            (f"{tmp_path}-named", zart.ExecutionStatus.COMPLETED, "p")])
        assert reader.execution_record("p").parent_execution_id is None
        assert reader.list_executions(parent="p/child#0") == []
    finally:
        reader.close()

    os.unlink(p["flag"])  # the parent resumes: its children are found by their ids, and not run again
    assert zart.run(parent, p, execution_id="p", journal=journal, display=False, workers=2) == [10, 20, 30]
    assert [(tmp_path / f"count-{x}").read_text() for x in (1, 2, 3)] == ["x", "x", "x"]
    reader = _reader(journal)
    try:
        assert [len(reader.list_runs(f"p/child#{n}")) for n in (0, 1)] == [1, 1]
    finally:
        reader.close()

    shown = subprocess.run([sys.executable, "-m", "zart_nb", "--journal", str(journal), "show", "p"],
                           capture_output=True, text=True, timeout=60)
    line = next(line for line in shown.stdout.splitlines() if line.startswith("  children: "))
    assert sorted(line.removeprefix("  children: ").split(", ")) == sorted(
        ["p/child#0 (completed)", "p/child#1 (completed)", f"{tmp_path}-named (completed)"]), shown.stderr
    shown = subprocess.run([sys.executable, "-m", "zart_nb", "--journal", str(journal), "show", "p/child#1"],
                           capture_output=True, text=True, timeout=60)
    assert "  parent:   p\n" in shown.stdout, shown.stderr


def test_cancelling_a_parent_cancels_its_running_child(journal, tmp_path):
    gate = str(tmp_path / "gate")
    execution = zart.start(waiting_parent, gate, execution_id="wp", journal=journal, display=False, workers=2)
    reader = zart.journal(journal, live=False)

    def child_running() -> bool:
        steps = reader.list_steps("wp/gated-child#0") if reader.execution_record("wp/gated-child#0") else []
        return not steps and run_of(execution) is not None and bool(run_of(execution).children) and \
            bool(run_of(execution).children[0].in_flight())

    try:
        wait_until(child_running, what="the child's step to run")
    finally:
        reader.close()
    zart.cancel("wp", journal=journal)
    with pytest.raises(zart.Cancelled):
        execution.result(timeout=60)
    reader = _reader(journal)
    try:
        child = reader.execution_record("wp/gated-child#0")
        assert child.status is zart.ExecutionStatus.CANCELLED and child.parent_execution_id == "wp"
        assert "its parent execution 'wp'" in (child.end_detail or ""), child.end_detail
        assert reader.execution_record("wp").status is zart.ExecutionStatus.CANCELLED
    finally:
        reader.close()


def test_zart_cancel_of_a_parent_in_another_process_cancels_its_child_there(tmp_path):
    import os
    import subprocess
    import sys

    journal = tmp_path / "j.duckdb"
    driver = subprocess.Popen([sys.executable, str(Path(__file__).parent / "scripts" / "parent_driver.py"),
                               str(journal), str(tmp_path / "gate")], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        def child_step_running() -> bool:
            client = zart.MonitorClient.connect(journal)
            if client is None:
                return False
            with client:
                progress = client.progress("wp/gated-child#0")
                return progress is not None and progress.running == 1

        wait_until(child_step_running, timeout=60, what="the child's step running in the driver")
        cancel = subprocess.run([sys.executable, "-m", "zart_nb", "--journal", str(journal), "cancel", "wp"],
                                capture_output=True, text=True, timeout=120)
        assert cancel.returncode == 0 and "cancelled (was running)" in cancel.stdout, cancel.stderr
        out, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert "wp cancelled" in out, err
    reader = _reader(journal)
    try:
        child = reader.execution_record("wp/gated-child#0")
        assert child.status is zart.ExecutionStatus.CANCELLED and "its parent execution 'wp'" in child.end_detail
    finally:
        reader.close()
    assert not os.path.exists(tmp_path / "gate")


def test_cancelling_an_interrupted_parent_cancels_its_unfinished_children(journal, tmp_path):
    p = {"dir": str(tmp_path), "flag": str(tmp_path / "flag")}
    assert zart.run(parent, p, execution_id="p", journal=journal, display=False, workers=2) == [10, 20, 30]
    from zart_nb._runtime import runtime

    held = runtime.journal(journal)
    for execution_id in ("p", "p/child#0", "p/child#1"):  # as a killed process leaves them
        held.set_status(execution_id, zart.ExecutionStatus.INTERRUPTED)
    assert zart.cancel("p", journal=journal) is zart.ExecutionStatus.INTERRUPTED
    reader = _reader(journal)
    try:
        statuses = {r.execution_id: r.status for r in reader.list_executions()}
    finally:
        reader.close()
    assert statuses == {"p": zart.ExecutionStatus.CANCELLED, "p/child#0": zart.ExecutionStatus.CANCELLED,
                        "p/child#1": zart.ExecutionStatus.CANCELLED,
                        f"{tmp_path}-named": zart.ExecutionStatus.COMPLETED}
