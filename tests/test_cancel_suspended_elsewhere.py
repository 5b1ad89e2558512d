"""A cancel or a delete written into the file while nobody holds the journal reaches the live process that
suspended the execution through its wake channel (a ping after the commit), so its ``zart.run`` ends at once
as cancelled. The driver's look at the file is pushed out of reach (an hour), so only a ping can end it."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import wait_until
from test_suspend_live import _nobody_holds
from test_suspend_processes import _env, _kill, _status

from zart_nb._monitor import wake
from zart_nb._runtime import runtime
from zart_nb._suspend import WOKEN_BY_PING


def _driver(tmp_path: Path, journal: Path, execution_id: str) -> subprocess.Popen[str]:
    """``zart.run`` of a workflow in an hour-long sleep; prints how it ended. Its continuer never looks at
    the file on its own within the test (``EVENT_LOOK`` and the lease an hour)."""
    script = tmp_path / "driver.py"
    script.write_text(textwrap.dedent(f"""
        import suspend_lib, zart_nb as zart, zart_nb._suspend as suspend
        suspend.EVENT_LOOK = 3600.0
        try:
            zart.run(suspend_lib.sleepy, {{'seconds': 3600, 'log': {str(tmp_path / 'steps.log')!r}}},
                     execution_id={execution_id!r}, journal={str(journal)!r}, display=False)
        except BaseException as exc:
            print("ENDED", type(exc).__name__, exc, flush=True)
    """))
    return subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env=_env(ZART_SUSPEND_AFTER="0.5", ZART_LEASE_TIME="3600"))


def _suspended_by(driver: subprocess.Popen[str], journal: Path, execution_id: str) -> None:
    wait_until(lambda: _status(journal, execution_id) == "sleeping", timeout=60, what="the driver to suspend")
    sock = wake.folder_of(journal) / f"{driver.pid}.sock"
    wait_until(sock.exists, timeout=30, what="the driver's wake channel")
    wait_until(lambda: _nobody_holds(journal), timeout=60, what="the driver to let go of the journal")
    runtime.journal(journal).close()  # this process read it: let go too


def _zart(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "zart_nb", *args], capture_output=True, text=True, timeout=60,
                          env=_env(), cwd=tmp_path)


@pytest.mark.parametrize("how", ["cli", "python"])
def test_a_cancel_written_into_the_file_ends_the_suspending_process_run_at_once_by_a_ping(tmp_path, how):
    journal = tmp_path / "j.duckdb"
    driver = _driver(tmp_path, journal, "c")
    try:
        _suspended_by(driver, journal, "c")
        if how == "cli":
            done = _zart(tmp_path, "cancel", "c", "--journal", str(journal))
            assert done.returncode == 0, done.stderr
        else:
            import zart_nb as zart

            assert zart.cancel("c", journal=journal) is zart.ExecutionStatus.SLEEPING
            runtime.journal(journal).close()  # the ping goes as this process lets go of the file
        out, err = driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            _kill(driver)
    assert driver.returncode == 0, err
    assert out.startswith("ENDED Cancelled"), (out, err)
    assert "was cancelled while sleeping" in out and WOKEN_BY_PING in out, out
    assert _status(journal, "c") == "cancelled"


def test_a_delete_written_into_the_file_ends_the_suspending_process_run_at_once_by_a_ping(tmp_path):
    journal = tmp_path / "j.duckdb"
    driver = _driver(tmp_path, journal, "d")
    try:
        _suspended_by(driver, journal, "d")
        done = _zart(tmp_path, "delete", "d", "--journal", str(journal), "--yes")
        assert done.returncode == 0, done.stderr
        out, err = driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            _kill(driver)
    assert driver.returncode == 0, err
    assert out.startswith("ENDED StateConflict"), (out, err)
    assert "is deleted" in out and WOKEN_BY_PING in out, out
    assert _status(journal, "d") is None
