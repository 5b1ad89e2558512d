"""zart.capture, zart.now, zart.sleep and zart.sleep_until: journaled at their first call, answered from
the journal on replay, in this process and across a driver killed mid-sleep."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import wait_until

import zart_nb as zart
from zart_nb._engine import RunState
from zart_nb._monitor.client import MonitorClient


@zart.step("durable-gate")
def gate(marker: str) -> str:
    if os.path.exists(marker):
        raise RuntimeError("the gate is closed")
    return "open"


def test_a_captured_value_is_made_once_and_replayed(journal, tmp_path, inline):
    marker = tmp_path / "closed"
    marker.touch()
    made: list[str] = []

    def token() -> str:
        made.append(uuid.uuid4().hex)
        return made[-1]

    @zart.workflow("capturing")
    def flow(marker: str) -> tuple[str, str, datetime, datetime, str]:
        first = zart.capture("token", token)
        second = zart.capture("token", token)  # the same name again: keyed by order
        at, later = zart.now(), zart.now()
        return first, second, at, later, gate(marker)

    with pytest.raises(zart.StepFailed):
        zart.run(flow, str(marker), execution_id="cap", journal=journal)
    assert len(made) == 2 and made[0] != made[1]
    marker.unlink()
    first, second, at, later, opened = zart.run(flow, str(marker), execution_id="cap", journal=journal)
    assert (first, second, opened) == (made[0], made[1], "open") and len(made) == 2  # not made again
    assert at.tzinfo is not None and at <= later
    steps = {s.step_key: s for s in zart.journal(journal, live=False).list_steps("cap")}
    assert {"capture:token#0", "capture:token#1", "capture:now#0", "capture:now#1"} <= set(steps)
    assert steps["capture:now#0"].run_number == 1 and steps["durable-gate#0"].run_number == 2


def test_a_capture_refuses_what_it_cannot_journal_and_runs_only_in_a_workflow(journal, inline):
    with pytest.raises(zart.NotInWorkflow, match="capture"):
        zart.capture("x", lambda: 1)

    @zart.workflow("bad-capture")
    def flow(_: None) -> object:
        return zart.capture("lock", lambda: __import__("threading").Lock())

    with pytest.raises(zart.SerializationError, match="capture:lock#0"):
        zart.run(flow, None, execution_id="bad", journal=journal)

    @zart.workflow("unnamed-capture")
    def unnamed(_: None) -> object:
        return zart.capture("", lambda: 1)

    with pytest.raises(zart.DefinitionError, match="non-empty name"):
        zart.run(unnamed, None, execution_id="unnamed", journal=journal)


def test_a_resumed_sleep_whose_wake_time_passed_does_not_sleep(journal, tmp_path, inline, monkeypatch):
    marker = tmp_path / "closed"
    marker.touch()
    until = datetime.now() - timedelta(seconds=5)  # naive: local time

    @zart.workflow("napping")
    def flow(marker: str) -> str:
        zart.sleep("nap", 0.2)
        zart.sleep(0.01)  # keyed by call order
        zart.sleep_until("past", until)
        return gate(marker)

    with pytest.raises(zart.StepFailed):
        zart.run(flow, str(marker), execution_id="nap", journal=journal)
    marker.unlink()
    paused: list[float] = []
    monkeypatch.setattr(RunState, "pause", lambda self, wake, call=None: paused.append(wake))
    assert zart.run(flow, str(marker), execution_id="nap", journal=journal) == "open"
    assert paused == []  # every wake time was journaled in run 1 and has passed
    steps = {s.step_key: s for s in zart.journal(journal, live=False).list_steps("nap")}
    assert {key: steps[key].run_number for key in ("sleep:nap#0", "sleep:sleep#0", "sleep:past#0")} == \
        {"sleep:nap#0": 1, "sleep:sleep#0": 1, "sleep:past#0": 1}
    wake = datetime.fromisoformat(steps["sleep:past#0"].output_preview.removeprefix("until "))
    assert abs(wake.timestamp() - until.timestamp()) < 1  # the naive moment read as local time (whole seconds shown)


def test_a_cancel_ends_a_sleep(journal, inline):
    @zart.workflow("long-nap")
    def flow(_: None) -> None:
        zart.sleep("nap", 3600)

    execution = zart.start(flow, None, execution_id="long", journal=journal, display=False)
    wait_until(lambda: _journaled(journal, "long", "sleep:nap#0"), what="the sleep to be journaled")
    zart.cancel("long", journal=journal)
    with pytest.raises(zart.Cancelled):
        execution.result(timeout=60)
    assert execution.status is zart.ExecutionStatus.CANCELLED


def _journaled(journal: Path, execution_id: str, key: str) -> bool:
    from zart_nb._runtime import runtime
    return key in runtime.journal(journal).pickled_steps(execution_id)


def test_a_driver_killed_mid_sleep_resumes_with_its_capture_and_only_what_is_left(tmp_path):
    journal = tmp_path / "j.duckdb"
    tokens = tmp_path / "tokens"
    script = tmp_path / "driver.py"
    script.write_text(textwrap.dedent(f"""
        import time, uuid
        import zart_nb as zart

        def token():
            made = uuid.uuid4().hex
            with open({str(tokens)!r}, "a") as out:
                out.write(made + "\\n")
            return made

        @zart.workflow("sleepy")
        def sleepy(seconds):
            made = zart.capture("token", token)
            zart.sleep("nap", seconds)
            return made, zart.capture("woke", time.time)

        print("RESULT", *zart.run(sleepy, 10.0, execution_id="sleepy", journal={str(journal)!r}, workers=1))
    """))
    first = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             cwd=tmp_path)
    try:
        def sleeping() -> bool:  # read through the driver's monitor endpoint (the file is the driver's)
            client = MonitorClient.connect(journal)
            if client is None:
                return False
            with client:
                return any(s.step_key == "sleep:nap#0" for s in client.list_steps("sleepy"))
        wait_until(sleeping, timeout=60, what="the driver to journal its sleep")
        first.send_signal(signal.SIGKILL)
        assert first.wait(timeout=30) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    second = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    made = tokens.read_text().split()
    _, token, woke = second.stdout.split()
    assert made == [token]  # captured once, by the killed driver, and replayed
    with zart.journal(journal, live=False) as reader:
        steps = {s.step_key: s for s in reader.list_steps("sleepy")}
        assert reader.execution_record("sleepy").status is zart.ExecutionStatus.COMPLETED
    nap = steps["sleep:nap#0"]
    assert nap.run_number == 1  # its wake time, journaled by the killed run, was kept
    wake = datetime.fromisoformat(nap.output_preview.removeprefix("until ")).timestamp()
    assert float(woke) >= wake - 1  # slept until the journaled wake time (the preview keeps whole seconds)
    assert steps["capture:woke#0"].run_number == 2


def test_zart_wake_ends_a_sleep_in_this_process_and_its_replay_does_not_sleep_again(journal, inline):
    @zart.workflow("hour-nap")
    def flow(_: None) -> str:
        zart.sleep("nap", 3600)
        return "awake"

    execution = zart.start(flow, None, execution_id="hour", journal=journal, display=False)
    wait_until(lambda: _journaled(journal, "hour", "sleep:nap#0"), what="the sleep to be journaled")
    assert zart.wake("hour", journal=journal) is True
    assert execution.result(timeout=60) == "awake"
    nap = {s.step_key: s for s in zart.journal(journal, live=False).list_steps("hour")}["sleep:nap#0"]
    assert nap.output_preview.endswith("(woken)")
    with pytest.raises(zart.StateConflict):  # completed: nothing to wake
        zart.wake("hour", journal=journal)


_SLEEPER = """
    import os
    os.environ["ZART_SUSPEND_AFTER"] = "inf"  # a sleep that blocks its driver (test_suspend: one that suspends)
    import zart_nb as zart

    @zart.workflow("sleeper")
    def sleeper(_):
        zart.publish("asleep", True)
        zart.sleep("nap", 3600)
        return "awake"

    print("RESULT", zart.run(sleeper, None, execution_id="sleeper", journal={journal!r}, workers=1))
"""


def _asleep(journal: Path) -> bool:
    client = MonitorClient.connect(journal)
    if client is None:
        return False
    with client:
        return any(s.step_key == "sleep:nap#0" for s in client.list_steps("sleeper"))


def test_zart_wake_reaches_a_sleeping_driver_and_a_killed_one_s_file(tmp_path):
    journal = tmp_path / "j.duckdb"
    script = tmp_path / "sleeper.py"
    script.write_text(textwrap.dedent(_SLEEPER.format(journal=str(journal))))
    wake = [sys.executable, "-m", "zart_nb", "wake", "sleeper", "--journal", str(journal)]
    # a driver sleeping an hour, woken through its monitor endpoint
    driver = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=tmp_path)
    try:
        wait_until(lambda: _asleep(journal), timeout=60, what="the driver to sleep")
        woke = subprocess.run(wake, capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert woke.returncode == 0 and "woke" in woke.stdout, woke.stderr
        out, err = driver.communicate(timeout=60)  # an hour's sleep ended
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.communicate()
    assert "RESULT awake" in out, err
    # a driver killed while it slept an hour: the wake goes into the file, and the resumed run does not sleep
    zart.delete("sleeper", journal=journal)
    from zart_nb._runtime import runtime
    runtime.journal(journal).close()
    killed = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              cwd=tmp_path)
    try:
        wait_until(lambda: _asleep(journal), timeout=60, what="the second driver to sleep")
        killed.send_signal(signal.SIGKILL)
        assert killed.wait(timeout=30) == -signal.SIGKILL
    finally:
        if killed.poll() is None:
            killed.kill()
            killed.wait()
    woke = subprocess.run(wake, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert woke.returncode == 0 and "woke" in woke.stdout, woke.stderr
    resumed = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert "RESULT awake" in resumed.stdout, resumed.stderr
