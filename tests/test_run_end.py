"""Why a run ended, everywhere: a driver that died says so, its duration stops growing, and the steps it
was running are listed as interrupted with what they printed."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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
