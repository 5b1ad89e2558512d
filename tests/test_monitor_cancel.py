"""Cancelling an execution another process's engine runs: the engine answers as soon as the cancel is
requested (it never holds a connection until the execution has stopped), and `zart cancel` polls."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import wait_until

import zart_nb as zart
from zart_nb._monitor import endpoint as endpoint_file
from zart_nb._monitor.client import MonitorClient
from zart_nb._monitor.protocol import MessageType

DRIVER = Path(__file__).parent / "scripts" / "cancel_driver.py"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _start_driver(tmp_path: Path) -> tuple[subprocess.Popen[str], Path, int]:
    """The engine process, its journal, and the pid of the worker running its sleeping step."""
    journal = tmp_path / "j.duckdb"
    driver = subprocess.Popen([sys.executable, str(DRIVER), str(journal), str(tmp_path)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    pid_file = tmp_path / "nap.pid"
    wait_until(pid_file.exists, what="the step to start sleeping in its worker")
    wait_until(lambda: endpoint_file.read(journal), what="the driver's endpoint")
    return driver, journal, int(pid_file.read_text())


def _stop(driver: subprocess.Popen[str]) -> None:
    if driver.poll() is None:
        driver.kill()
        driver.wait()


def test_a_cancel_is_answered_once_requested_and_the_connection_keeps_serving(tmp_path):
    driver, journal, worker = _start_driver(tmp_path)
    try:
        client = wait_until(lambda: MonitorClient.connect(journal), what="a client of the driver's engine")
        with client:
            assert client.request(MessageType.CANCEL, execution_id="slow") == {"was": "running",
                                                                              "status": "cancelling"}
            # The body cannot notice the cancel before the gate opens: the execution is still running,
            # and the same connection answers meanwhile.
            assert client.execution_record("slow").status is zart.ExecutionStatus.RUNNING
            assert client.request(MessageType.PING)["pid"] == driver.pid
            # The cancel goes on in the engine: the sleeping step's worker is killed, its step cancelled.
            wait_until(lambda: not _alive(worker), what="the sleeping step's worker to be killed")
            wait_until(lambda: [(s.step_key, s.status) for s in client.list_steps("slow")]
                       == [("nap#0", zart.StepStatus.CANCELLED)], what="the step journaled cancelled")
            assert client.execution_record("slow").status is zart.ExecutionStatus.RUNNING
        (tmp_path / "gate").touch()
        out, err = driver.communicate(timeout=60)
        assert "SLOW cancelled" in out, err
    finally:
        _stop(driver)
    reader = zart.journal(journal)
    try:
        assert reader.execution_record("slow").status is zart.ExecutionStatus.CANCELLED
    finally:
        reader.close()


def test_zart_cancel_waits_for_the_execution_to_stop_and_prints_its_final_state(tmp_path):
    driver, journal, worker = _start_driver(tmp_path)
    try:
        cancel = subprocess.Popen([sys.executable, "-m", "zart_nb", "cancel", "slow", "--journal", str(journal)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        try:
            wait_until(lambda: not _alive(worker), what="the sleeping step's worker to be killed")
            # Requested and under way, but the body has not stopped: the command is still polling.
            assert cancel.poll() is None, cancel.communicate()
            (tmp_path / "gate").touch()
            out, err = cancel.communicate(timeout=60)
        finally:
            _stop(cancel)
        assert cancel.returncode == 0, err
        assert out.strip() == "execution 'slow' cancelled (was running)", (out, err)
        out, err = driver.communicate(timeout=60)
        assert "SLOW cancelled" in out, err
    finally:
        _stop(driver)
