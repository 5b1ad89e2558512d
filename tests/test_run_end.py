"""Why a run ended, everywhere: a driver that died says so, its duration stops growing, and the steps it
was running are listed as interrupted with what they printed."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import wait_until

import zart_nb as zart

SCRIPT = Path(__file__).parent / "scripts" / "printing_driver.py"
DEADLINE = 60


def _start(journal: Path, workdir: Path, execution_id: str, name: str) -> subprocess.Popen:
    env = {**os.environ, "ZART_HEARTBEAT": "0.2", "ZART_WORKERS": "2"}
    with open(workdir / f"{name}.out", "w") as out, open(workdir / f"{name}.err", "w") as err:
        return subprocess.Popen([sys.executable, str(SCRIPT), str(journal), str(workdir), execution_id],
                                stdout=out, stderr=err, env=env)


def test_a_killed_driver_reads_as_process_died_with_its_running_steps_interrupted(tmp_path):
    journal = tmp_path / ".zart" / "journal.duckdb"
    workdir = tmp_path / "work"
    workdir.mkdir()
    driver = _start(journal, workdir, "dies", "first")
    try:
        reader = None

        def both_slow_steps_printed():
            nonlocal reader
            if driver.poll() is not None:
                raise AssertionError(f"driver ended: {(workdir / 'first.err').read_text()}")
            try:
                if reader is not None:
                    reader.close()
                reader = zart.journal(journal)  # the live engine's monitor
                progress = reader.progress("dies")
            except zart.ZartError:
                return False
            if progress is None or progress.running < 2:
                return False
            outputs = [reader.live_output("dies", step.key) for step in progress.running_steps]
            return all(o is not None and "started" in o[1] for o in outputs) and progress

        progress = wait_until(both_slow_steps_printed, timeout=DEADLINE, what="two slow steps printing")
        # While it runs: the total counts every step known to the run, not only the finished ones.
        record = reader.execution_record("dies")
        assert (record.status, record.steps_total, record.steps_completed, record.steps_running) == (
            zart.ExecutionStatus.RUNNING, 4, 2, 2)
        assert {(s.key, s.attempt) for s in progress.running_steps} == {("slow-0", 1), ("slow-1", 1)}
        assert all(s.worker for s in progress.running_steps)
        assert reader.list_runs("dies")[-1].executed == 2  # counted as they finish, not at the end
        seen_running = time.time()
        # A heartbeat after the steps printed has journaled them as running, with their output.
        def beat_after_printing():
            with zart.journal(journal) as live:
                alive_at = live.list_runs("dies")[-1].alive_at
            return alive_at is not None and alive_at.timestamp() > seen_running + 0.05

        wait_until(beat_after_printing, timeout=DEADLINE, what="a heartbeat after the steps printed")
        reader.close()
        driver.send_signal(signal.SIGKILL)
        assert driver.wait(DEADLINE) == -signal.SIGKILL
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()

    first = zart.journal(journal).execution_record("dies")
    assert first.status == zart.ExecutionStatus.INTERRUPTED
    assert first.ended_by == zart.RunEnd.PROCESS_DIED
    assert f"pid {driver.pid}" in first.end_detail and "died" in first.end_detail
    assert (first.steps_total, first.steps_completed) == (4, 2)
    assert first.finished_at is not None
    steps = {s.step_key: s for s in zart.journal(journal).list_steps("dies")}
    assert {k: s.status for k, s in steps.items()} == {
        "quick-0": "completed", "quick-1": "completed", "slow-0": "interrupted", "slow-1": "interrupted"}
    assert "slow 0 started" in steps["slow-0"].log and "slow 1 started" in steps["slow-1"].log
    (run,) = zart.journal(journal).list_runs("dies")
    assert (run.status, run.ended_by, run.executed) == (zart.ExecutionStatus.INTERRUPTED, zart.RunEnd.PROCESS_DIED, 2)
    # Its duration is fixed: read again later, it has not grown.
    again = wait_until(lambda: (r := zart.journal(journal).execution_record("dies")) and
                       time.time() - first.finished_at.timestamp() > 0.3 and r, what="time to pass")
    assert again.duration == first.duration

    # The next run resumes: completed steps are reused, the interrupted ones run again.
    (workdir / "release").touch()
    rerun = _start(journal, workdir, "dies", "second")
    assert rerun.wait(DEADLINE) == 0, (workdir / "second.err").read_text()
    assert "RESULT [0, 1, 0, 1]" in (workdir / "second.out").read_text()
    steps = {s.step_key: s for s in zart.journal(journal).list_steps("dies")}
    assert steps["slow-0"].reason == zart.RunReason.INTERRUPTED_BEFORE
    assert steps["quick-0"].run_number == 1
    runs = zart.journal(journal).list_runs("dies")
    assert [(r.run_number, r.ended_by) for r in runs] == [(1, zart.RunEnd.PROCESS_DIED), (2, zart.RunEnd.COMPLETED)]


def test_zart_show_follows_the_output_of_running_steps_live(tmp_path):
    journal = tmp_path / ".zart" / "journal.duckdb"
    workdir = tmp_path / "work"
    workdir.mkdir()
    driver = _start(journal, workdir, "followed", "driver")
    follower = None
    try:
        def running_steps():
            if driver.poll() is not None:
                raise AssertionError((workdir / "driver.err").read_text())
            try:
                with zart.journal(journal) as reader:
                    progress = reader.progress("followed")
            except zart.ZartError:
                return False
            return progress is not None and progress.running == 2

        wait_until(running_steps, timeout=DEADLINE, what="the slow steps to run")
        with open(workdir / "follow.out", "w") as out, open(workdir / "follow.err", "w") as err:
            follower = subprocess.Popen([sys.executable, "-m", "zart_nb._cli", "show", "--journal", str(journal),
                                         "followed", "--output", "--follow"], stdout=out, stderr=err)
        wait_until(lambda: "[slow-0] slow 0 started" in (workdir / "follow.out").read_text()
                   and "[slow-1] slow 1 started" in (workdir / "follow.out").read_text(),
                   timeout=DEADLINE, what="zart show --follow to print the running steps' lines")
        assert follower.poll() is None  # still following: the execution runs
        (workdir / "release").touch()
        assert follower.wait(DEADLINE) == 0, (workdir / "follow.err").read_text()
        assert driver.wait(DEADLINE) == 0
        assert "[completed]" in (workdir / "follow.out").read_text().splitlines()[-1]
    finally:
        for process in (driver, follower):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()


def test_three_executions_at_once_list_every_step_in_flight(tmp_path):
    journal = tmp_path / ".zart" / "journal.duckdb"
    workdir = tmp_path / "work"
    workdir.mkdir()
    script = Path(__file__).parent / "scripts" / "three_driver.py"
    with open(workdir / "out", "w") as out, open(workdir / "err", "w") as err:
        driver = subprocess.Popen([sys.executable, str(script), str(journal), str(workdir)], stdout=out, stderr=err)
    try:
        def all_in_flight():
            if driver.poll() is not None:
                raise AssertionError((workdir / "err").read_text())
            try:
                with zart.journal(journal) as reader:
                    found = {f"ex-{n}": reader.progress(f"ex-{n}") for n in range(3)}
                    records = {r.execution_id: r for r in reader.list_executions()}
            except zart.ZartError:
                return None
            if any(p is None for p in found.values()) or sum(p.running for p in found.values()) < 3:
                return None
            return found, records

        found, records = wait_until(all_in_flight, timeout=DEADLINE, what="three executions with steps running")
        for execution_id, progress in found.items():
            assert (progress.total, progress.finished) == (2, 0), progress
            assert progress.running + progress.scheduled == 2, progress  # every step in flight is listed
            assert records[execution_id].steps_total == 2
            assert all(step.worker and step.attempt == 1 for step in progress.running_steps)
        # three workers, six steps: three run, three wait for a worker
        assert sum(p.running for p in found.values()) == 3
        assert sum(p.scheduled for p in found.values()) == 3
        running = [(execution_id, s.key) for execution_id, p in found.items() for s in p.running_steps]
        assert len({worker for p in found.values() for worker in (s.worker for s in p.running_steps)}) == 3, running
        (workdir / "release").touch()
        assert driver.wait(DEADLINE) == 0, (workdir / "err").read_text()
        assert "RESULT [[0, 1], [0, 1], [0, 1]]" in (workdir / "out").read_text()
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()


@pytest.mark.filterwarnings("ignore")  # jupyter_client's zmq context is collected late (as in test_kernel.py)
def test_a_kernel_death_under_zart_start_reads_as_process_died(tmp_path):
    from jupyter_client.manager import start_new_kernel

    journal = tmp_path / ".zart" / "kernel.duckdb"
    gate = tmp_path / "release"
    code = f"""
import os, time
import zart_nb as zart

@zart.step("waits")
def waits(path):
    print("waiting for", os.path.basename(path), flush=True)
    deadline = time.monotonic() + 60
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    return "released"

@zart.workflow("kernel-flow")
def flow(path):
    return waits(path)

ex = zart.start(flow, {str(gate)!r}, execution_id="in-kernel", journal={str(journal)!r}, workers=1)
"""
    manager, client = start_new_kernel(kernel_name="python3", cwd=str(tmp_path),
                                       env={**os.environ, "ZART_HEARTBEAT": "0.2"})
    try:
        reply = client.execute_interactive(code, timeout=DEADLINE)
        assert reply["content"]["status"] == "ok", reply["content"]

        def printed_and_beaten():
            try:
                with zart.journal(journal) as reader:
                    progress = reader.progress("in-kernel")
                    runs = reader.list_runs("in-kernel")
                    output = reader.live_output("in-kernel", "waits#0")
            except zart.ZartError:
                return False
            run = runs[-1] if runs else None
            return (progress is not None and run is not None and progress.running == 1 and output is not None
                    and "waiting for release" in output[1] and run.alive_at is not None
                    and run.alive_at.timestamp() > progress.running_steps[0].started_at + 0.3)

        wait_until(printed_and_beaten, timeout=DEADLINE, what="the step running in the kernel, with a heartbeat")
        pid = manager.provisioner.process.pid
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not manager.is_alive(), timeout=DEADLINE, what="the kernel to die")
    finally:
        client.stop_channels()
        if manager.is_alive():
            manager.shutdown_kernel(now=True)
        else:
            manager.cleanup_resources()
        manager.context.destroy(linger=0)
    record = zart.journal(journal).execution_record("in-kernel")
    assert (record.status, record.ended_by) == (zart.ExecutionStatus.INTERRUPTED, zart.RunEnd.PROCESS_DIED)
    assert "died" in record.end_detail and f"pid {pid}" in record.end_detail
    (step,) = zart.journal(journal).list_steps("in-kernel")
    assert step.status == zart.StepStatus.INTERRUPTED and "waiting for release" in step.log
