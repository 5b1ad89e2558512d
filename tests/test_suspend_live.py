"""Suspended executions of a live process, with real processes: an event sent from another process reaches
an execution suspended in a live driver through the driver's wake channel (a ping), and without the channel
on the driver's next look; a lease held by a process on another host is taken over by `zart serve` once it
expires, not before; async bodies that suspend are continued by their process and by `zart serve`."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import processes
import serve_lib
from conftest import wait_until
from test_suspend_processes import _env, _kill, _read, _status

import zart_nb as zart
from zart_nb._monitor import wake
from zart_nb._monitor.client import MonitorClient
from zart_nb._runtime import runtime
from zart_nb._suspend import WOKEN_BY_PING


def _driver(tmp_path: Path, call: str, **env: str) -> subprocess.Popen[str]:
    """A process printing the JSON of ``call`` (with ``zart``, ``suspend_lib`` and ``live_lib`` imported)."""
    script = tmp_path / "driver.py"
    script.write_text(textwrap.dedent(f"""
        import json, live_lib, suspend_lib, zart_nb as zart
        print(json.dumps({call}), flush=True)
    """))
    return subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=_env(**env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _nobody_holds(journal: Path) -> bool:
    client = MonitorClient.connect(journal)
    if client is None:
        return True
    client.close()
    return False


def _send_from_a_terminal(tmp_path: Path, journal: Path, execution_id: str, data: dict) -> None:
    """``zart event`` in a process of its own, once nobody holds the journal (the event goes into the file)."""
    wait_until(lambda: _nobody_holds(journal), timeout=60, what="the driver to let go of the journal")
    runtime.journal(journal).close()  # this process read it: let go too
    sent = subprocess.run([sys.executable, "-m", "zart_nb", "event", execution_id, "go", "--data", json.dumps(data),
                           "--journal", str(journal)], capture_output=True, text=True, timeout=60, env=_env(),
                          cwd=tmp_path)
    assert sent.returncode == 0, sent.stderr


def _continued_by(journal: Path, execution_id: str) -> list[tuple[zart.RunTrigger, str | None]]:
    return _read(journal, lambda r: [(run.trigger, run.trigger_detail) for run in r.list_runs(execution_id)])


def _output(proc: subprocess.Popen[str]) -> object:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_an_event_from_another_process_reaches_a_live_driver_suspended_in_a_wait_through_its_wake_channel(tmp_path):
    journal, log = tmp_path / "j.duckdb", tmp_path / "steps.log"
    driver = _driver(tmp_path, f"zart.run(suspend_lib.approval, {{'log': {str(log)!r}}}, execution_id='p', "
                     f"journal={str(journal)!r}, display=False)", ZART_SUSPEND_AFTER="0.5")
    try:
        wait_until(lambda: _status(journal, "p") == "waiting", timeout=60, what="the driver to suspend")
        sock = wake.folder_of(journal) / f"{driver.pid}.sock"
        wait_until(sock.exists, timeout=30, what="the driver's wake channel")
        assert stat.S_IMODE(os.lstat(sock).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(sock.parent).st_mode) == 0o700
        _send_from_a_terminal(tmp_path, journal, "p", {"ok": 1})
        assert _output(driver) == {"got": {"ok": 1}, "after": "after"}
    finally:
        if driver.poll() is None:
            _kill(driver)
    runs = _continued_by(journal, "p")
    assert [trigger for trigger, _ in runs] == [zart.RunTrigger.INITIAL, zart.RunTrigger.RESUME]
    assert WOKEN_BY_PING in runs[1][1], runs  # not found on its 5 s look: the ping told it
    assert not sock.exists()  # closed with its last suspended execution
    assert serve_lib.lines(log) == ["after"]


def test_without_a_trusted_wake_channel_the_driver_finds_the_event_on_its_next_look(tmp_path):
    journal, log = tmp_path / "j.duckdb", tmp_path / "steps.log"
    wake.folder_of(journal).mkdir(mode=0o755)  # open to others: not used
    os.chmod(wake.folder_of(journal), 0o755)
    driver = _driver(tmp_path, f"zart.run(suspend_lib.approval, {{'log': {str(log)!r}}}, execution_id='q', "
                     f"journal={str(journal)!r}, display=False)", ZART_SUSPEND_AFTER="0.5")
    try:
        wait_until(lambda: _status(journal, "q") == "waiting", timeout=60, what="the driver to suspend")
        _send_from_a_terminal(tmp_path, journal, "q", {"ok": 2})
        out, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            _kill(driver)
    assert driver.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1]) == {"got": {"ok": 2}, "after": "after"}
    assert "no wake channel" in err and "open to others" in err
    runs = _continued_by(journal, "q")
    assert "found on a look at the file" in runs[1][1], runs


def _lease(conn, execution_id: str, owner: str, until: float) -> None:
    """What a process on another host writes when it suspends (or renews) an execution."""
    conn.execute("UPDATE executions SET lease_owner = ?, lease_until = ? WHERE execution_id = ?",
                 [owner, until, execution_id])


def test_a_lease_held_on_another_host_is_taken_over_by_serve_once_it_expires_and_not_before(tmp_path):
    journal, log = tmp_path / "j.duckdb", tmp_path / "steps.log"
    driver = _driver(tmp_path, f"zart.run(suspend_lib.sleepy, {{'seconds': 4, 'log': {str(log)!r}}}, "
                     f"execution_id='h', journal={str(journal)!r}, display=False)", ZART_SUSPEND_AFTER="0.5")
    try:
        wait_until(lambda: _status(journal, "h") == "sleeping", timeout=60, what="the driver to suspend")
    finally:
        _kill(driver)
    held = runtime.journal(journal)
    held.transact(_lease, "h", "gone-host.invalid:4242", time.time() + 3600)  # renewed, then its host went away
    held.close()
    serve_log = tmp_path / "serve.log"
    serve = processes.serve(journal, tmp_path, serve_log)
    try:
        wait_until(lambda: "next: continue h at" in serve_log.read_text(), timeout=60,
                   what="serve to see the execution due once its lease expires")
        assert _status(journal, "h") == "sleeping"  # its sleep ended: only the lease keeps serve off
        assert _read(journal, lambda r: len(r.list_runs("h"))) == 1
        runtime.journal(journal).close()
        expiry = time.time() + 2
        wait_until(lambda: _try(lambda: held.transact(_lease, "h", "gone-host.invalid:4242", expiry)), timeout=60,
                   what="a moment serve does not hold the journal")
        held.close()
        wait_until(lambda: _status(journal, "h") == "completed", timeout=90, what="serve to continue it")
    finally:
        code = processes.stop(serve)
    assert code == 0, serve_log.read_text()
    runs = _read(journal, lambda r: list(r.list_runs("h")))
    assert [run.ended_by for run in runs] == [zart.RunEnd.SUSPENDED, zart.RunEnd.COMPLETED]
    assert runs[1].started_at.timestamp() >= expiry and runs[1].pid != driver.pid  # serve's, after the expiry
    assert serve_lib.lines(log) == ["after"]


def _try(action) -> bool:
    try:
        action()
    except zart.JournalLocked:
        return False
    return True


def test_an_async_body_that_suspends_in_a_sleep_is_continued_by_its_process(tmp_path):
    journal, log = tmp_path / "j.duckdb", tmp_path / "steps.log"
    driver = _driver(tmp_path, f"zart.run(live_lib.async_sleepy, {{'seconds': 2, 'log': {str(log)!r}}}, "
                     f"execution_id='as', journal={str(journal)!r}, display=False)", ZART_SUSPEND_AFTER="0.5")
    assert _output(driver) == {"first": [2, 4], "after": "after", "sum": 6}
    runs = _read(journal, lambda r: [(run.ended_by, run.pid) for run in r.list_runs("as")])
    assert runs == [(zart.RunEnd.SUSPENDED, driver.pid), (zart.RunEnd.COMPLETED, driver.pid)]
    steps = _read(journal, lambda r: {s.step_key for s in r.list_steps("as")})
    assert {"live-double#0", "live-double#1", "sleep:nap#0", "sus-noted#0", "sus-add#0"} <= steps
    assert serve_lib.lines(log) == ["after"]


def test_an_awaited_durable_sleep_in_an_async_body_suspends_and_is_continued_by_its_process(tmp_path):
    journal, log = tmp_path / "j.duckdb", tmp_path / "steps.log"
    driver = _driver(tmp_path, f"zart.run(live_lib.async_awaited_sleep, {{'seconds': 2, 'log': {str(log)!r}}}, "
                     f"execution_id='aa', journal={str(journal)!r}, display=False)", ZART_SUSPEND_AFTER="0.5")
    assert _output(driver) == {"before": 10, "after": "after"}
    runs = _read(journal, lambda r: [run.ended_by for run in r.list_runs("aa")])
    assert runs == [zart.RunEnd.SUSPENDED, zart.RunEnd.COMPLETED]
    assert serve_lib.lines(log) == ["after"]


def test_an_async_body_killed_in_a_suspended_event_wait_is_finished_by_serve(tmp_path):
    journal, log, started = tmp_path / "j.duckdb", tmp_path / "steps.log", tmp_path / "started.log"
    driver = _driver(tmp_path, f"zart.run(live_lib.async_approval, {{'log': {str(log)!r}, 'started': "
                     f"{str(started)!r}, 'timeout': 600}}, execution_id='aw', journal={str(journal)!r}, "
                     "display=False)", ZART_SUSPEND_AFTER="0.5")
    try:
        wait_until(lambda: _status(journal, "aw") == "waiting", timeout=60, what="the driver to suspend")
    finally:
        _kill(driver)
    assert zart.send_event("aw", "go", {"n": 21}, journal=journal) is True  # into the file: nobody holds it
    runtime.journal(journal).close()
    serve_log = tmp_path / "serve.log"
    serve = processes.serve(journal, tmp_path, serve_log)
    try:
        wait_until(lambda: _status(journal, "aw") == "completed", timeout=90, what="serve to finish it")
    finally:
        code = processes.stop(serve)
    assert code == 0, serve_log.read_text()
    record = _read(journal, lambda r: r.execution_record("aw"))
    assert record.output_preview == "{'after': 'after', 'doubled': 42, 'got': {'n': 21}}"
    assert serve_lib.lines(log) == ["after"]
    assert serve_lib.lines(started) == ["waiting", "waiting"]  # the body ran twice, the step after once


def _lease_until(journal: Path, execution_id: str) -> float | None:
    """The lease's expiry as journaled, read from the file (None while another process holds it)."""
    from zart_nb._journal import suspension

    held = runtime.journal(journal)
    try:
        rows = held.query(suspension.suspended)
    except zart.JournalLocked:
        return None
    finally:
        held.close()
    return next((row.lease_until for row in rows if row.execution_id == execution_id), None)


def test_a_live_process_renews_its_lease_so_serve_leaves_it_the_execution_past_the_lease_time(tmp_path):
    journal, log = tmp_path / "j.duckdb", tmp_path / "steps.log"
    driver = _driver(tmp_path, f"zart.run(suspend_lib.sleepy, {{'seconds': 10, 'log': {str(log)!r}}}, "
                     f"execution_id='n', journal={str(journal)!r}, display=False)", ZART_SUSPEND_AFTER="0.5",
                     ZART_LEASE_TIME="6")
    serve_log = tmp_path / "serve.log"
    serve = None
    try:
        wait_until(lambda: _status(journal, "n") == "sleeping", timeout=60, what="the driver to suspend")
        first = wait_until(lambda: _lease_until(journal, "n"), timeout=60, what="the journaled lease")
        serve = processes.serve(journal, tmp_path, serve_log)
        wait_until(lambda: (_lease_until(journal, "n") or 0) > first, timeout=60, interval=0.5,
                   what="the driver to renew its lease")
        assert _output(driver) == [3, "after", 13]
    finally:
        if driver.poll() is None:
            _kill(driver)
        code = None if serve is None else processes.stop(serve)
    assert code == 0, serve_log.read_text()
    runs = _read(journal, lambda r: [(run.ended_by, run.pid) for run in r.list_runs("n")])
    assert runs == [(zart.RunEnd.SUSPENDED, driver.pid), (zart.RunEnd.COMPLETED, driver.pid)]  # not serve's
    assert serve_lib.lines(log) == ["after"]


def test_an_async_body_killed_in_a_suspended_sleep_is_finished_by_serve(tmp_path):
    journal, log = tmp_path / "j.duckdb", tmp_path / "steps.log"
    driver = _driver(tmp_path, f"zart.run(live_lib.async_sleepy, {{'seconds': 3, 'log': {str(log)!r}}}, "
                     f"execution_id='ak', journal={str(journal)!r}, display=False)", ZART_SUSPEND_AFTER="0.5")
    try:
        wait_until(lambda: _status(journal, "ak") == "sleeping", timeout=60, what="the driver to suspend")
    finally:
        _kill(driver)
    serve_log = tmp_path / "serve.log"
    serve = processes.serve(journal, tmp_path, serve_log)
    try:
        wait_until(lambda: _status(journal, "ak") == "completed", timeout=90, what="serve to finish it")
    finally:
        code = processes.stop(serve)
    assert code == 0, serve_log.read_text()
    runs = _read(journal, lambda r: [(run.ended_by, run.pid == driver.pid) for run in r.list_runs("ak")])
    assert runs == [(zart.RunEnd.SUSPENDED, True), (zart.RunEnd.COMPLETED, False)]
    assert _read(journal, lambda r: r.execution_record("ak").output_preview) == \
        "{'after': 'after', 'first': [2, 4], 'sum': 6}"
    assert serve_lib.lines(log) == ["after"]


def test_a_process_that_exits_with_executions_still_suspended_removes_its_wake_socket(tmp_path):
    journal, log = tmp_path / "j.duckdb", tmp_path / "steps.log"
    call = (f"(lambda e: __import__('live_lib').wait_suspended(e))(zart.start(suspend_lib.sleepy, "
            f"{{'seconds': 600, 'log': {str(log)!r}}}, execution_id='x', journal={str(journal)!r}, display=False))")
    driver = _driver(tmp_path, call, ZART_SUSPEND_AFTER="0.5")
    assert _output(driver) == "sleeping"
    assert wake.folder_of(journal).is_dir() and list(wake.folder_of(journal).iterdir()) == []
    assert _status(journal, "x") == "sleeping"  # left for serve (or the next run) to continue
