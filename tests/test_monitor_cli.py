"""`zart ls/show/cancel` while another process's engine holds the journal: they go through its endpoint."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import wait_until

from zart_nb._monitor import endpoint as endpoint_file

DRIVER = Path(__file__).parent / "scripts" / "monitor_driver.py"


def zart_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # A one-second lock timeout: a command that tried the locked file instead of the endpoint fails fast.
    return subprocess.run([sys.executable, "-m", "zart_nb", *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd, env={**os.environ, "ZART_LOCK_TIMEOUT": "1"})


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_cli_reads_and_cancels_through_a_live_engine(tmp_path):
    journal = tmp_path / "j.duckdb"
    driver = subprocess.Popen([sys.executable, str(DRIVER), str(journal), str(tmp_path)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        wait_until(lambda: endpoint_file.read(journal), what="the driver's endpoint")
        (tmp_path / "go-0").touch()
        ls = wait_until(lambda: (p := zart_cli("ls", "--journal", str(journal), cwd=tmp_path)).returncode == 0
                        and "1/2" in p.stdout and p, what="ls through the endpoint")  # 1 done of 2 known
        assert "first" in ls.stdout and "running" in ls.stdout
        show = zart_cli("show", "first", "--journal", str(journal), cwd=tmp_path)
        assert show.returncode == 0, show.stderr
        assert "Execution first  [running]" in show.stdout and "gated-0" in show.stdout
        running = next(line for line in show.stdout.splitlines() if line.startswith("gated-1"))
        assert running.split()[:3] == ["gated-1", "running", "1"] and "worker" in running, show.stdout
        (tmp_path / "go-1").touch()
        (tmp_path / "go-2").touch()
        pid_file = tmp_path / "second.pid"
        wait_until(pid_file.exists, what="the second execution's step to start")
        worker = int(pid_file.read_text())
        cancel = zart_cli("cancel", "second", "--journal", str(journal), cwd=tmp_path)
        assert cancel.returncode == 0, cancel.stderr
        assert "cancelled (was running)" in cancel.stdout
        out, err = driver.communicate(timeout=60)
        assert "FIRST completed" in out and "SECOND cancelled by zart cancel (pid " in out, err
        wait_until(lambda: not _alive(worker), what="the cancelled step's worker to die")
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert not endpoint_file.endpoint_path(journal).exists()
    ls = zart_cli("ls", "--journal", str(journal), cwd=tmp_path)  # now from the file
    assert ls.returncode == 0, ls.stderr
    rows = {line.split()[0]: line.split()[2] for line in ls.stdout.splitlines()[1:]}
    assert rows == {"first": "completed", "second": "cancelled"}
