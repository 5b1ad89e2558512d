"""Suspension with real processes: a driver SIGKILLed during a suspended sleep, a short (blocking) sleep
and a suspended event wait, then the execution finished by `zart serve` (two of them: never both run it);
and a mixed workflow killed after each durable call in turn gives the output of an uninterrupted run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import processes
import pytest
import serve_lib
from conftest import wait_until

import zart_nb as zart
from zart_nb._monitor.client import MonitorClient

TESTS = Path(__file__).parent


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]), **extra}
    env.pop("SUS_KILL_AT", None)
    env.update({k: v for k, v in extra.items() if k == "SUS_KILL_AT"})
    return env


def _read(journal: Path, fn):
    """``fn(reader)`` through the engine holding the journal, else from the file (read again while the
    holder changes between the connect and the read, or the journal is being created)."""
    box: dict[str, object] = {}

    def attempt() -> bool:
        reader = zart.journal(journal)
        try:
            box["value"] = fn(reader)
            return True
        except (zart.MonitorError, zart.JournalLocked):
            return False
        finally:
            reader.close()

    wait_until(attempt, timeout=30, interval=0.05, what=f"a read of {journal}")
    return box["value"]


def _status(journal: Path, execution_id: str) -> str | None:
    record = _read(journal, lambda r: r.execution_record(execution_id))
    return None if record is None else record.status.value


def _asleep(journal: Path, execution_id: str) -> bool:
    client = MonitorClient.connect(journal)
    if client is None:
        return False
    with client:
        return any(s.step_key == "sleep:nap#0" for s in client.list_steps(execution_id))


def _driver(tmp_path: Path, call: str, **env: str) -> subprocess.Popen[str]:
    """A process printing the JSON of ``call`` (Python, with ``zart`` and ``suspend_lib`` imported)."""
    script = tmp_path / "driver.py"
    script.write_text(textwrap.dedent(f"""
        import json, suspend_lib, zart_nb as zart
        print(json.dumps({call}), flush=True)
    """))
    return subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=_env(**env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _finish_under_serve(tmp_path: Path, journal: Path, execution_id: str, serves: int = 1) -> list[object]:
    logs = [tmp_path / f"serve{i}.log" for i in range(serves)]
    procs = [processes.serve(journal, tmp_path, log) for log in logs]
    try:
        wait_until(lambda: _status(journal, execution_id) == "completed", timeout=90, what="serve to finish it")
    finally:
        codes = [processes.stop(proc) for proc in procs]
    assert codes == [0] * serves, [log.read_text() for log in logs]
    return _read(journal, lambda r: [(run.status.value, run.ended_by) for run in r.list_runs(execution_id)])


def test_a_driver_killed_in_a_suspended_sleep_is_finished_by_one_of_two_serves(tmp_path):
    journal, log = tmp_path / "j.duckdb", tmp_path / "steps.log"
    driver = _driver(tmp_path, f"zart.run(suspend_lib.sleepy, {{'seconds': 3, 'log': {str(log)!r}}}, "
                     f"execution_id='s', journal={str(journal)!r}, display=False)", ZART_SUSPEND_AFTER="0.5")
    try:
        wait_until(lambda: _status(journal, "s") == "sleeping", timeout=60, what="the driver to suspend")
        record = _read(journal, lambda r: r.execution_record("s"))
        assert record.waits_for == "nap" and record.wake_at is not None
    finally:
        _kill(driver)
    runs = _finish_under_serve(tmp_path, journal, "s", serves=2)
    assert runs == [("sleeping", zart.RunEnd.SUSPENDED), ("completed", zart.RunEnd.COMPLETED)]
    assert serve_lib.lines(log) == ["after"]  # the step after the sleep ran once
    assert _read(journal, lambda r: r.execution_record("s").output_preview) == "[3, 'after', 13]"


def test_a_driver_killed_in_a_short_blocking_sleep_is_finished_by_serve(tmp_path):
    journal, log = tmp_path / "j.duckdb", tmp_path / "steps.log"
    driver = _driver(tmp_path, f"zart.run(suspend_lib.sleepy, {{'seconds': 8, 'log': {str(log)!r}}}, "
                     f"execution_id='b', journal={str(journal)!r}, display=False)")
    try:
        wait_until(lambda: _asleep(journal, "b"), timeout=60, what="the driver to sleep (8 s is under the "
                   "threshold, 60 s: it blocks, holding the journal and serving its monitor endpoint)")
    finally:
        _kill(driver)
    runs = _finish_under_serve(tmp_path, journal, "b")
    assert runs == [("interrupted", zart.RunEnd.PROCESS_DIED), ("completed", zart.RunEnd.COMPLETED)]
    assert serve_lib.lines(log) == ["after"]


def test_a_driver_killed_in_a_suspended_event_wait_is_finished_by_serve_once_the_event_comes(tmp_path):
    journal, log = tmp_path / "j.duckdb", tmp_path / "steps.log"
    driver = _driver(tmp_path, f"zart.run(suspend_lib.approval, {{'log': {str(log)!r}}}, execution_id='e', "
                     f"journal={str(journal)!r}, display=False)", ZART_SUSPEND_AFTER="0.5")
    try:
        wait_until(lambda: _status(journal, "e") == "waiting", timeout=60, what="the driver to suspend")
    finally:
        _kill(driver)
    assert zart.send_event("e", "go", {"ok": 1}, journal=journal) is True  # into the file: nobody holds it
    from zart_nb._runtime import runtime
    runtime.journal(journal).close()
    runs = _finish_under_serve(tmp_path, journal, "e")
    assert runs == [("waiting", zart.RunEnd.SUSPENDED), ("completed", zart.RunEnd.COMPLETED)]
    assert serve_lib.lines(log) == ["after"]


def _mixed_call(journal: Path, execution_id: str) -> str:
    """Runs the mixed workflow, its event sent from another thread of the driver (once: an idempotency key)."""
    return (f"__import__('threading').Thread(target=suspend_lib.send_go, args=({str(journal)!r}, {execution_id!r}), "
            f"daemon=True).start() or zart.run(suspend_lib.mixed, {{'long': 1.0}}, execution_id={execution_id!r}, "
            f"journal={str(journal)!r}, display=False)")


def _mixed(tmp_path: Path, journal: Path, execution_id: str, kill_at: int | None = None) -> dict | None:
    env = {"ZART_SUSPEND_AFTER": "0.5"} | ({} if kill_at is None else {"SUS_KILL_AT": str(kill_at)})
    proc = _driver(tmp_path, _mixed_call(journal, execution_id), **env)
    out, err = proc.communicate(timeout=120)
    if kill_at is not None:
        assert proc.returncode == -signal.SIGKILL, err
        return None
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("kill_at", range(1, 11))
def test_a_mixed_workflow_killed_after_each_durable_call_gives_the_uninterrupted_output(tmp_path, kill_at):
    journal = tmp_path / "j.duckdb"
    reference = _mixed(tmp_path, journal, "ref")
    assert _mixed(tmp_path, journal, "crash", kill_at) is None
    output = _mixed(tmp_path, journal, "crash")
    assert {k: v for k, v in output.items() if k != "id"} == {k: v for k, v in reference.items() if k != "id"}
    assert output["id"] == zart.published("crash", "id", journal=journal)  # captured once, published once
    assert len(_read(journal, lambda r: [s for s in r.list_steps("crash") if s.step_key.startswith("publish:id")])) == 1


def test_a_suspended_execution_whose_driver_died_is_listed_not_recovered_and_zart_resume_continues_it(tmp_path):
    journal, log = tmp_path / "j.duckdb", tmp_path / "steps.log"
    driver = _driver(tmp_path, f"zart.run(suspend_lib.sleepy, {{'seconds': 4, 'log': {str(log)!r}}}, "
                     f"execution_id='r', journal={str(journal)!r}, display=False)", ZART_SUSPEND_AFTER="0.5")
    try:
        wait_until(lambda: _status(journal, "r") == "sleeping", timeout=60, what="the driver to suspend")
    finally:
        _kill(driver)
    assert zart.recover(journal=journal) == []  # suspended is not dead: nothing to recover
    assert _status(journal, "r") == "sleeping"
    from zart_nb._runtime import runtime
    runtime.journal(journal).close()
    cli = [sys.executable, "-m", "zart_nb"]
    ls = subprocess.run([*cli, "ls", "--journal", str(journal)], capture_output=True, text=True, timeout=60, env=_env())
    assert "sleeping 'nap' until" in ls.stdout, ls.stderr
    show = subprocess.run([*cli, "show", "r", "--journal", str(journal)], capture_output=True, text=True, timeout=60,
                          env=_env())
    assert "waits:    sleep 'nap', until" in show.stdout and show.returncode == 8, show.stderr
    resume = subprocess.run([*cli, "resume", "r", "--journal", str(journal)], capture_output=True, text=True,
                            timeout=120, env=_env(), cwd=tmp_path)
    assert resume.returncode == 0 and "Execution completed" in resume.stdout, resume.stderr
    runs = _read(journal, lambda r: [(run.ended_by, run.trigger) for run in r.list_runs("r")])
    assert runs == [(zart.RunEnd.SUSPENDED, zart.RunTrigger.INITIAL), (zart.RunEnd.COMPLETED, zart.RunTrigger.RESUME)]
    assert serve_lib.lines(log) == ["after"]


def test_serve_leaves_an_execution_to_the_live_process_that_suspended_it(tmp_path, monkeypatch):
    import suspend_lib

    monkeypatch.setenv("ZART_SUSPEND_AFTER", "0.5")
    journal, log = tmp_path / "j.duckdb", tmp_path / "steps.log"
    execution = zart.start(suspend_lib.sleepy, {"seconds": 3, "log": str(log)}, execution_id="k", journal=journal,
                           display=False)
    wait_until(lambda: execution.status is zart.ExecutionStatus.SLEEPING, timeout=60, what="it to suspend")
    serve_log = tmp_path / "serve.log"
    serve = processes.serve(journal, tmp_path, serve_log)
    try:
        assert execution.result(timeout=90) == [3, "after", 13]
    finally:
        code = processes.stop(serve)
    assert code == 0, serve_log.read_text()
    runs = _read(journal, lambda r: [(run.ended_by, run.pid) for run in r.list_runs("k")])
    assert runs == [(zart.RunEnd.SUSPENDED, os.getpid()), (zart.RunEnd.COMPLETED, os.getpid())]  # not serve's
    assert serve_lib.lines(log) == ["after"]


def test_ctrl_c_while_run_waits_for_a_suspended_execution_leaves_it_sleeping(tmp_path):
    journal, log = tmp_path / "j.duckdb", tmp_path / "steps.log"
    driver = _driver(tmp_path, f"zart.run(suspend_lib.sleepy, {{'seconds': 600, 'log': {str(log)!r}}}, "
                     f"execution_id='i', journal={str(journal)!r}, display=False)", ZART_SUSPEND_AFTER="0.5")
    try:
        wait_until(lambda: _status(journal, "i") == "sleeping", timeout=60, what="the driver to suspend")
        driver.send_signal(signal.SIGINT)
        _, err = driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.communicate()
    assert "KeyboardInterrupt" in err
    assert _status(journal, "i") == "sleeping"  # not interrupted: serve or the next run continues it
    assert _read(journal, lambda r: [run.ended_by for run in r.list_runs("i")]) == [zart.RunEnd.SUSPENDED]
