"""An ``async def`` body run by `zart serve` that is asked to hand the journal over stops at its next durable
call (its awaited step in flight finishing first), and serve continues it after the asker let the file go,
with the right output and every step run once. Real processes: serve, a setup process, a driver."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import async_handover_lib
import handover_lib
import processes
from conftest import wait_until
from test_handover import _driver, _show

import zart_nb as zart
from zart_nb._runtime import runtime


def _left_for_serve(tmp_path: Path, journal: Path, data: dict) -> None:
    """``async_long``, suspended in its nap by a process that then ends: the next zart serve continues it."""
    setup = processes.script(tmp_path / "setup.py", f"""
        import time, async_handover_lib, zart_nb as zart
        execution = zart.start(async_handover_lib.async_long, {data!r}, execution_id="async_long",
                               journal={str(journal)!r}, display=False)
        deadline = time.monotonic() + 60
        while execution.status is not zart.ExecutionStatus.SLEEPING and time.monotonic() < deadline:
            time.sleep(0.02)
        assert execution.status is zart.ExecutionStatus.SLEEPING, execution.status
    """)
    subprocess.run([sys.executable, str(setup)], cwd=tmp_path, env=processes.env(ZART_SUSPEND_AFTER="0"), check=True,
                   timeout=120)


def _ended(journal: Path, cwd: Path) -> bool:
    shown = _show(journal, "async_long", cwd)
    return "[completed]" in shown or "[failed]" in shown


def test_an_async_body_hands_the_journal_over_at_its_next_durable_call_and_serve_continues_it(tmp_path):
    journal = tmp_path / ".zart" / "journal.duckdb"
    log, gate, gate2 = tmp_path / "steps.log", tmp_path / "gate", tmp_path / "gate2"
    data = {"log": str(log), "gate": str(gate), "nap": 2.0}
    _left_for_serve(tmp_path, journal, data)
    serve_log, driver_err = tmp_path / "serve.log", tmp_path / "driver.err"
    serve = processes.serve(journal, tmp_path, serve_log)
    driver = None
    try:
        wait_until(lambda: "start:first" in handover_lib.lines(log), timeout=60, what="serve to run the first step")
        driver = _driver(tmp_path, journal, {"log": str(log), "gate": str(gate2)}, driver_err)
        wait_until(lambda: f"handing over: journal.duckdb to pid {driver.pid}" in serve_log.read_text(), timeout=60,
                   what="serve to accept the handover")
        assert handover_lib.lines(log) == ["start:first"]  # its step in flight runs on (the gate is closed)
        gate.touch()  # the awaited step ends; the body stops at its next call and serve lets the journal go
        wait_until(lambda: "start:quick" in handover_lib.lines(log), timeout=60, what="the driver's step to start")
        shown = _show(journal, "async_long", tmp_path)
        assert "[sleeping]" in shown and f"handed over to pid {driver.pid}" in shown
        assert "start:second" not in handover_lib.lines(log)
        gate2.touch()
        out, _ = driver.communicate(timeout=60)
        assert driver.returncode == 0, driver_err.read_text()
        assert out.decode().strip() == "quick"
        wait_until(lambda: _ended(journal, tmp_path), timeout=90, what="serve to continue 'async_long' to its end")
        shown = _show(journal, "async_long", tmp_path)
        assert "[completed]" in shown, shown
    finally:
        if driver is not None and driver.poll() is None:
            driver.kill()
            driver.wait()
        code = processes.stop(serve)
    assert code == 0, serve_log.read_text()
    assert sorted(handover_lib.lines(log)) == sorted(
        f"{edge}:{name}" for name in ("first", "quick", "second", "third", "fourth") for edge in ("start", "done"))
    expected = {"steps": ["first", "second", "third", "fourth"], "seen": True}
    assert zart.run(async_handover_lib.async_long, data, execution_id="async_long", journal=journal,
                    display=False) == expected  # a replay: nothing runs again
    assert len(handover_lib.lines(log)) == 10
    reader = zart.journal(journal)
    try:
        record = reader.execution_record("async_long")
        runs = reader.list_runs("async_long")
    finally:
        reader.close()
    runtime.journal(journal).close()
    assert record is not None and record.status is zart.ExecutionStatus.COMPLETED
    assert [(r.status, r.ended_by) for r in runs] == [
        (zart.ExecutionStatus.SLEEPING, zart.RunEnd.SUSPENDED),  # its nap, in the setup process
        (zart.ExecutionStatus.SLEEPING, zart.RunEnd.SUSPENDED),  # handed over, in serve
        (zart.ExecutionStatus.COMPLETED, zart.RunEnd.COMPLETED)]  # continued by serve
    assert f"handed over to pid {driver.pid}" in (runs[1].end_detail or "")
    assert runs[2].trigger is zart.RunTrigger.RESUME
