"""A run of another process and `zart serve` on one journal never fail on each other with JournalLocked: serve
hands the journal over through its monitor endpoint (``_handover``). Real processes throughout: serve, the
drivers, and a kernel for the holder that is not serve; each step's runs are counted in a log."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import handover_lib
import processes
import pytest
from conftest import wait_until
from nbhelpers import execute

import zart_nb as zart
from zart_nb import _handover
from zart_nb._handles import run_of
from zart_nb._monitor import endpoint as endpoint_file
from zart_nb._monitor.client import MonitorClient
from zart_nb._monitor.protocol import MessageType
from zart_nb._runtime import runtime

TESTS = Path(__file__).parent


def _show(journal: Path, execution_id: str, cwd: Path) -> str:
    """``zart show``'s text. Serve opens the file for a moment at each of its looks (``--poll 0.5``) without
    serving its monitor: a ``zart show`` that meets it waits for it (see the test below), never fails."""
    out = subprocess.run([sys.executable, "-m", "zart_nb", "show", execution_id, "--journal", str(journal)],
                         capture_output=True, text=True, cwd=cwd, env=processes.env(), timeout=60)
    assert out.stdout.startswith(f"Execution {execution_id}"), out.stderr  # its exit code is its status's
    return out.stdout


def _left_for_serve(tmp_path: Path, journal: Path, workflow: str, data: dict) -> None:
    """Execution ``workflow`` of handover_lib, suspended in its nap by a process that then ends: the next
    zart serve continues it when its nap is over."""
    setup = processes.script(tmp_path / "setup.py", f"""
        import time, handover_lib, zart_nb as zart
        execution = zart.start(handover_lib.{workflow}, {data!r}, execution_id={workflow!r},
                               journal={str(journal)!r}, display=False)
        deadline = time.monotonic() + 60
        while execution.status is not zart.ExecutionStatus.SLEEPING and time.monotonic() < deadline:
            time.sleep(0.02)
        assert execution.status is zart.ExecutionStatus.SLEEPING, execution.status
    """)
    subprocess.run([sys.executable, str(setup)], cwd=tmp_path, env=processes.env(ZART_SUSPEND_AFTER="0"), check=True,
                   timeout=120)


def _driver(tmp_path: Path, journal: Path, data: dict, err: Path) -> subprocess.Popen[bytes]:
    """A process running handover_lib.quick on ``journal``, with no patience for a locked file (lock timeout
    0): only a handover lets it run. Its stderr goes to ``err``."""
    script = processes.script(tmp_path / "driver.py", f"""
        import handover_lib, zart_nb as zart
        print(zart.run(handover_lib.quick, {data!r}, execution_id="quick", journal={str(journal)!r},
                       display=False))
    """)
    with err.open("wb") as stderr:
        return subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=stderr,
                                env=processes.env(ZART_LOCK_TIMEOUT="0"))


def test_a_run_takes_the_journal_from_serve_which_then_continues_its_execution(tmp_path):
    journal = tmp_path / ".zart" / "journal.duckdb"
    log, gate, gate2 = tmp_path / "steps.log", tmp_path / "gate", tmp_path / "gate2"
    data = {"log": str(log), "gate": str(gate), "nap": 2.0}
    _left_for_serve(tmp_path, journal, "long", data)
    serve_log, driver_err = tmp_path / "serve.log", tmp_path / "driver.err"
    serve = processes.serve(journal, tmp_path, serve_log)
    driver = None
    try:
        wait_until(lambda: "start:first" in handover_lib.lines(log), timeout=60, what="serve to run the first step")
        shown = _show(journal, "long", tmp_path)
        assert "[running]" in shown and f"through the engine of pid {serve.pid}" in shown
        driver = _driver(tmp_path, journal, {"log": str(log), "gate": str(gate2)}, driver_err)
        wait_until(lambda: "is handing the journal over" in driver_err.read_text(), timeout=60,
                   what="the driver to be told serve hands the journal over")
        assert f"zart serve (pid {serve.pid}) is handing the journal over: its running steps finish first" in \
            driver_err.read_text()
        # serve's step is still running (gate closed): the driver waits, past its lock timeout, and serve runs on
        assert driver.poll() is None
        shown = _show(journal, "long", tmp_path)
        assert "[running]" in shown and f"through the engine of pid {serve.pid}" in shown
        assert handover_lib.lines(log) == ["start:first"]
        wait_until(lambda: f"handing over: journal.duckdb to pid {driver.pid}" in serve_log.read_text(),
                   what="serve's status line to say it hands the journal over")
        gate.touch()  # the first step ends; serve's body stops at its next step call and lets the journal go
        wait_until(lambda: "start:quick" in handover_lib.lines(log), timeout=60, what="the driver's step to start")
        shown = _show(journal, "long", tmp_path)
        assert "[sleeping]" in shown and f"through the engine of pid {driver.pid}" in shown
        assert f"for the journal, handed over to pid {driver.pid} by zart serve" in shown
        assert "start:second" not in handover_lib.lines(log)
        gate2.touch()
        out, _ = driver.communicate(timeout=60)
        assert driver.returncode == 0, driver_err.read_text()
        assert out.decode().strip() == "quick"
        assert "JournalLocked" not in driver_err.read_text()
        # serve continues its execution once the driver has let the file go
        wait_until(lambda: "done:second" in handover_lib.lines(log), timeout=60, what="serve to continue 'long'")
        wait_until(lambda: "[completed]" in _show(journal, "long", tmp_path), timeout=60,
                   what="'long' to complete")
    finally:
        if driver is not None and driver.poll() is None:
            driver.kill()
            driver.wait()
        code = processes.stop(serve)
    assert code == 0, serve_log.read_text()
    # every step ran exactly once, and no result was lost
    assert sorted(handover_lib.lines(log)) == sorted(["start:first", "done:first", "start:quick", "done:quick",
                                                      "start:second", "done:second"])
    assert zart.run(handover_lib.long, data, execution_id="long", journal=journal, display=False) == \
        ["first", "second"]
    reader = zart.journal(journal)
    try:
        runs = reader.list_runs("long")
        steps = reader.list_steps("long")
    finally:
        reader.close()
    runtime.journal(journal).close()
    assert [(r.status, r.ended_by) for r in runs] == [
        (zart.ExecutionStatus.SLEEPING, zart.RunEnd.SUSPENDED),  # its nap, in the setup process
        (zart.ExecutionStatus.SLEEPING, zart.RunEnd.SUSPENDED),  # handed over, in serve
        (zart.ExecutionStatus.COMPLETED, zart.RunEnd.COMPLETED)]  # continued by serve
    assert f"handed over to pid {driver.pid}" in (runs[1].end_detail or "")
    assert runs[2].trigger is zart.RunTrigger.RESUME
    assert [(s.name, s.run_number, s.status) for s in steps if s.name == "mark"] == [
        ("mark", 2, zart.StepStatus.COMPLETED), ("mark", 3, zart.StepStatus.COMPLETED)]
    assert "is handing" not in serve_log.read_text() and "Traceback" not in serve_log.read_text()


def test_a_body_in_a_durable_sleep_hands_over_at_once_and_sleeps_only_what_is_left_after(tmp_path):
    """serve's body blocks in a 50 s durable sleep (under the suspension threshold): a handover ends it there
    (not 50 s later); the sleep's wake time stays journaled, and a `zart wake` then ends what is left."""
    journal = tmp_path / ".zart" / "journal.duckdb"
    log, gate = tmp_path / "steps.log", tmp_path / "gate"
    data = {"log": str(log), "nap": 2.0, "rest": 50}
    _left_for_serve(tmp_path, journal, "dozer", data)
    serve_log, driver_err = tmp_path / "serve.log", tmp_path / "driver.err"
    serve = processes.serve(journal, tmp_path, serve_log)
    driver = None
    try:
        wait_until(lambda: "done:first" in handover_lib.lines(log), timeout=60, what="serve to run the first step")
        driver = _driver(tmp_path, journal, {"log": str(log), "gate": str(gate)}, driver_err)
        wait_until(lambda: "start:quick" in handover_lib.lines(log), timeout=40,  # well before the sleep ends
                   what="the driver's step to start")
        shown = _show(journal, "dozer", tmp_path)
        assert "[sleeping]" in shown and f"handed over to pid {driver.pid}" in shown
        gate.touch()
        out, _ = driver.communicate(timeout=60)
        assert driver.returncode == 0, driver_err.read_text()
        assert out.decode().strip() == "quick"
        assert "start:second" not in handover_lib.lines(log)
        # serve continues it (in its sleep again, for what is left of it): end the sleep now

        # whether serve has begun the continued run (its endpoint) or not yet (the file), one `zart wake` does it
        woke = subprocess.run([sys.executable, "-m", "zart_nb", "wake", "dozer", "--journal", str(journal)],
                              capture_output=True, cwd=tmp_path, env=processes.env(), timeout=60)
        assert woke.returncode == 0, woke.stderr.decode()
        wait_until(lambda: "done:second" in handover_lib.lines(log), timeout=60, what="serve to continue 'dozer'")
        wait_until(lambda: "[completed]" in _show(journal, "dozer", tmp_path), timeout=60,
                   what="'dozer' to complete")
    finally:
        if driver is not None and driver.poll() is None:
            driver.kill()
            driver.wait()
        code = processes.stop(serve)
    assert code == 0, serve_log.read_text()
    assert sorted(handover_lib.lines(log)) == sorted(["start:first", "done:first", "start:quick", "done:quick",
                                                      "start:second", "done:second"])
    reader = zart.journal(journal)
    try:
        runs = reader.list_runs("dozer")
    finally:
        reader.close()
    assert [r.ended_by for r in runs] == [zart.RunEnd.SUSPENDED, zart.RunEnd.SUSPENDED, zart.RunEnd.COMPLETED]
    assert f"handed over to pid {driver.pid}" in (runs[1].end_detail or "")


def test_ctrl_c_while_waiting_for_serve_journals_nothing_and_serve_continues(tmp_path):
    journal = tmp_path / ".zart" / "journal.duckdb"
    log, gate = tmp_path / "steps.log", tmp_path / "gate"
    data = {"log": str(log), "gate": str(gate), "nap": 2.0}
    _left_for_serve(tmp_path, journal, "long", data)
    serve_log, driver_err = tmp_path / "serve.log", tmp_path / "driver.err"
    serve = processes.serve(journal, tmp_path, serve_log)
    try:
        wait_until(lambda: "start:first" in handover_lib.lines(log), timeout=60, what="serve to run the first step")
        driver = _driver(tmp_path, journal, {"log": str(log)}, driver_err)
        wait_until(lambda: "is handing the journal over" in driver_err.read_text(), timeout=60,
                   what="the driver to wait for the handover")
        driver.send_signal(signal.SIGINT)
        driver.communicate(timeout=60)
        assert driver.returncode != 0 and "KeyboardInterrupt" in driver_err.read_text()
        gate.touch()  # serve's body stops at its next step call; the asker is gone, so serve takes it again
        wait_until(lambda: "done:second" in handover_lib.lines(log), timeout=60, what="serve to continue 'long'")
        wait_until(lambda: "[completed]" in _show(journal, "long", tmp_path), timeout=60, what="'long' to complete")
    finally:
        code = processes.stop(serve)
    assert code == 0, serve_log.read_text()
    assert sorted(handover_lib.lines(log)) == sorted(["start:first", "done:first", "start:second", "done:second"])
    reader = zart.journal(journal)
    try:
        assert reader.execution_record("quick") is None  # nothing of the interrupted run was journaled
        assert reader.list_runs("long")[-1].status is zart.ExecutionStatus.COMPLETED
    finally:
        reader.close()


def test_a_holder_that_is_not_serve_keeps_the_lock_and_journal_locked_names_its_pid(tmp_path):
    """A kernel running an execution holds the journal; a driver started from it waits its lock timeout and
    fails with JournalLocked carrying the kernel's pid (a kernel does not hand its journal over)."""
    journal = tmp_path / ".zart" / "journal.duckdb"
    log, gate = tmp_path / "steps.log", tmp_path / "gate"
    driver = processes.script(tmp_path / "driver.py", f"""
        import handover_lib, zart_nb as zart
        try:
            zart.run(handover_lib.quick, {{"log": {str(log)!r}, "name": "driver"}}, execution_id="driver",
                     journal={str(journal)!r}, display=False)
        except zart.JournalLocked as exc:
            print("locked", exc.pid)
    """)
    cells = [
        f"""
import os, subprocess, sys, time, handover_lib, zart_nb as zart
held = zart.start(handover_lib.quick, {{"log": {str(log)!r}, "gate": {str(gate)!r}}}, execution_id="held",
                  journal={str(journal)!r}, display=False)
deadline = time.monotonic() + 60
while "start:quick" not in handover_lib.lines({str(log)!r}) and time.monotonic() < deadline:
    time.sleep(0.02)
assert "start:quick" in handover_lib.lines({str(log)!r})
""",
        f"""
out = subprocess.run([sys.executable, {str(driver)!r}], capture_output=True, text=True, timeout=120,
                     env={{**os.environ, "ZART_LOCK_TIMEOUT": "1"}})
assert out.stdout.split() == ["locked", str(os.getpid())], (out.stdout, out.stderr)
assert "handing the journal over" not in out.stderr
""",
        f"""
open({str(gate)!r}, "w").close()
assert held.result(timeout=60) == "quick"
""",
    ]
    execute(cells, tmp_path, env={"PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])})
    assert handover_lib.lines(log) == ["start:quick", "done:quick"]  # the driver's step never ran


def test_a_handover_request_is_refused_outside_serve_and_from_another_pid(tmp_path):
    """The server checks the sender (the socket's peer) is the pid the request names; an engine that is not
    zart serve refuses to hand its journal over (this process is the engine here)."""
    journal = tmp_path / "j.duckdb"
    log, gate = tmp_path / "steps.log", tmp_path / "gate"
    held = zart.start(handover_lib.quick, {"log": str(log), "gate": str(gate)}, execution_id="held",
                      journal=journal, display=False)
    try:
        wait_until(lambda: "start:quick" in handover_lib.lines(log), timeout=60, what="the step to start")
        found = endpoint_file.read(journal)
        assert found is not None and found.pid == os.getpid()
        client = MonitorClient(found)
        try:
            with pytest.raises(zart.MonitorError, match="names pid 1, its sender is pid"):
                client.request(MessageType.HANDOVER, pid=1)
            with pytest.raises(zart.MonitorError, match="is not zart serve"):
                client.request(MessageType.HANDOVER, pid=os.getpid())
        finally:
            client.close()
        assert not held.done
    finally:
        gate.touch()
        assert held.result(timeout=60) == "quick"
        runtime.journal(journal).close()


def test_a_run_handed_over_lets_its_steps_in_flight_finish_and_a_resume_reuses_them(tmp_path):
    """The engine's side alone (no serve): a run told to hand over stops at its next step call after its five
    running steps finished; it is journaled sleeping, due now, with a free lease, and nothing here continues
    it; the next run reuses the five and runs the last step once."""
    journal = tmp_path / "j.duckdb"
    log, gate = tmp_path / "steps.log", tmp_path / "gate"
    data = {"log": str(log), "gate": str(gate)}
    execution = zart.start(handover_lib.fanned, data, execution_id="fanned", journal=journal, display=False,
                           workers=5)
    wait_until(lambda: len(handover_lib.lines(log)) == 5, timeout=60, what="the five steps to start")
    run = run_of(execution)
    assert run is not None
    run.hand_over(_handover.waits_for(4242))
    assert not execution.done  # its steps run on
    gate.touch()
    assert execution.wait_done(60)
    assert execution.status is zart.ExecutionStatus.SLEEPING
    assert sorted(handover_lib.lines(log)) == sorted([f"{what}:fan{i}" for i in range(5) for what in ("start", "done")])
    row = runtime.journal(journal).query(lambda conn: conn.execute(
        "SELECT status, waits_for, wake_at, lease_until FROM executions WHERE execution_id = 'fanned'").fetchone())
    assert row[:2] == ("sleeping", "handed over to pid 4242") and row[3] == row[2]  # free from its wake time on
    assert zart.resume("fanned", journal=journal).result(timeout=60) == [f"fan{i}" for i in range(5)] + ["after"]
    assert sorted(handover_lib.lines(log)).count("start:after") == 1
    assert len(handover_lib.lines(log)) == 12  # every step ran once
    runtime.journal(journal).close()


def test_serve_leaves_a_journal_it_let_go_to_its_asker_until_the_asker_has_it(tmp_path):
    """The desk's rule, in one process standing for both (its own pid as the asker): blocked from the request
    on; after the release still blocked while the asker does not have the file; free once it has it."""
    desk = _handover.Desk()
    journal = runtime.journal(tmp_path / "j.duckdb")
    with pytest.raises(zart.MonitorError, match="is not zart serve"):
        desk.request(journal, os.getpid())
    desk.accept()
    try:
        with journal.hold():
            assert desk.request(journal, os.getpid())["stopping"] == []
            assert desk.blocked(journal) == os.getpid() and desk.asker(journal) == os.getpid()
            assert desk.asked(journal) == "handed over to pid " + str(os.getpid())
        journal.close()  # serve lets it go
        assert desk.asker(journal) is None and desk.asked(journal) is None
        assert desk.blocked(journal) == os.getpid()  # the asker has not taken it yet
        with journal.hold():  # the asker has it: serve may look again (and meets its lock)
            assert desk.blocked(journal) is None
        assert desk.blocked(journal) is None
    finally:
        desk.accept(False)
        runtime.journal(journal.path).close()


def test_a_reader_that_meets_serve_holding_the_file_waits_for_it_instead_of_failing(tmp_path):
    """Serve holds a journal without a monitor at each look for due work, and while it runs an execution with
    ``$ZART_MONITOR=0``: ``zart show`` waits for it as a writer would (saying so once), where it gave up after
    0.3 s naming serve before."""
    journal = tmp_path / ".zart" / "journal.duckdb"
    log, gate = tmp_path / "steps.log", tmp_path / "gate"
    _left_for_serve(tmp_path, journal, "long", {"log": str(log), "gate": str(gate), "nap": 0.5})
    serve = processes.serve(journal, tmp_path, tmp_path / "serve.log", ZART_MONITOR="0")
    try:
        wait_until(lambda: "start:first" in handover_lib.lines(log), timeout=60, what="serve to run the first step")
        show = subprocess.Popen([sys.executable, "-m", "zart_nb", "show", "long", "--journal", str(journal)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                                env=processes.env(ZART_LOCK_TIMEOUT="120"))
        waiting = f"process {serve.pid} (python -m zart_nb serve"
        err_lines: list[str] = []
        assert show.stderr is not None
        wait_until(lambda: waiting in (err_lines.append(show.stderr.readline()) or err_lines[-1]), timeout=60,
                   what="zart show to say it waits for serve")
        assert "waiting up to 120s for it to be released" in err_lines[-1], err_lines
        assert show.poll() is None  # serve still holds the file: its step waits for the gate
        gate.touch()
        out, err = show.communicate(timeout=90)
        assert out.startswith("Execution long"), "".join(err_lines) + err
        assert "which serves no monitor endpoint" not in err
    finally:
        gate.touch()
        assert processes.stop(serve) == 0


def test_handover_words_and_the_endpoint_suffix():
    assert _handover.waits_for(42) == "handed over to pid 42" and _handover.is_handover("handed over to pid 42")
    assert not _handover.is_handover("nap") and not _handover.is_handover(None)
    assert _handover.ENDPOINT_SUFFIX == endpoint_file.SUFFIX
