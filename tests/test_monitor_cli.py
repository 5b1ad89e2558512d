"""`zart ls/show/cancel` while another process's engine holds the journal: they go through its endpoint."""
from __future__ import annotations

import json
import os
import re
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
        assert show.returncode == 4, show.stderr  # the exit code says: running
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


def _plain_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`zart ...` as a user types it: no --journal, no $ZART_JOURNAL, the default 10 s lock timeout."""
    base = {k: v for k, v in os.environ.items() if k not in ("ZART_JOURNAL", "ZART_LOCK_TIMEOUT", "JPY_SESSION_NAME")}
    return subprocess.run([sys.executable, "-m", "zart_nb", *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd, env={**base, **(env or {})})


def _held_without_monitor(path: Path) -> bool:
    import zart_nb as zart

    if not path.exists():
        return False
    reader = zart.journal(path, live=False, lock_timeout=0)
    try:
        reader.list_executions()
        return False
    except zart.JournalLocked:
        return True
    finally:
        reader.close()


def test_plain_commands_read_every_journal_of_the_folder_beside_running_engines(tmp_path):
    """Issue 13 item 4: `zart ls`, `zart show ID`, `zart cancel ID` without flags, beside a notebook-like engine
    (monitor served) and one that serves no monitor: the first read through its endpoint, the second named
    by its pid at once (not after the 10 s lock wait)."""
    import zart_nb as zart

    zart_dir = tmp_path / ".zart"
    done = zart_dir / "done.duckdb"
    zart.run(lambda x: x + 1, 1, execution_id="done-1", journal=done)
    zart.journal(done).close()
    live, quiet = zart_dir / "nb.duckdb", zart_dir / "quiet.duckdb"
    (tmp_path / "w1").mkdir()
    (tmp_path / "w2").mkdir()
    drivers = [
        subprocess.Popen([sys.executable, str(DRIVER), str(live), str(tmp_path / "w1"), "3"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path),
        subprocess.Popen([sys.executable, str(DRIVER), str(quiet), str(tmp_path / "w2"), "3", "q-"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                         env={**os.environ, "ZART_MONITOR": "0"}),
    ]
    try:
        wait_until(lambda: endpoint_file.read(live), what="the live driver's endpoint")
        (tmp_path / "w1" / "go-0").touch()
        wait_until(lambda: _held_without_monitor(quiet), what="the quiet driver to hold its journal")
        quiet_pid = drivers[1].pid

        ls = _plain_cli("ls", cwd=tmp_path)
        assert ls.returncode == 0, ls.stderr
        rows = {line.split()[0]: line.split()[1:4] for line in ls.stdout.splitlines()[1:]}
        assert rows["first"] == ["nb", "gated-flow", "running"]
        assert rows["done-1"][0] == "done" and rows["done-1"][2] == "completed"
        assert f"process {quiet_pid}" in ls.stderr and "quiet.duckdb" in ls.stderr and "monitor_driver.py" in ls.stderr
        assert "waiting up to" not in ls.stderr and "waited 10" not in ls.stderr

        for target in (tmp_path, zart_dir):  # another folder: the project, or its .zart itself
            other = _plain_cli("ls", str(target), cwd=tmp_path.parent)
            assert other.returncode == 0, other.stderr
            assert {line.split()[0] for line in other.stdout.splitlines()[1:]} == {"first", "done-1"}

        show = _plain_cli("show", "first", cwd=tmp_path)
        assert show.returncode == 4, (show.stdout, show.stderr)  # 4: running
        assert "Execution first  [running]" in show.stdout and "gated-0" in show.stdout
        held = _plain_cli("show", "q-first", cwd=tmp_path)
        assert held.returncode == 1 and f"process {quiet_pid}" in held.stderr and "no monitor" in held.stderr
        assert "waited 10" not in held.stderr and "Traceback" not in held.stderr

        cancel = _plain_cli("cancel", "first", cwd=tmp_path)
        assert cancel.returncode == 0, cancel.stderr
        assert "cancelled (was running)" in cancel.stdout
        after = _plain_cli("show", "first", "--json", cwd=tmp_path)
        assert after.returncode == 6, after.stderr  # 6: cancelled
        assert json.loads(after.stdout)["execution"]["status"] == "cancelled"
    finally:
        for driver in drivers:
            if driver.poll() is None:
                driver.kill()
            driver.communicate()


def test_show_pages_the_same_through_the_monitor(tmp_path):
    """Issue 13 item 6: through a live engine `zart show` gives the same first page and note as from the
    file (it used to print every row, silently stopping at the monitor's 5,000), and --all reads on."""
    journal = tmp_path / ".zart" / "nb.duckdb"
    driver = subprocess.Popen([sys.executable, str(DRIVER), str(journal), str(tmp_path), "61"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        wait_until(lambda: endpoint_file.read(journal), what="the driver's endpoint")
        for i in range(60):
            (tmp_path / f"go-{i}").touch()
        wait_until(lambda: "60/" in _plain_cli("ls", cwd=tmp_path).stdout, timeout=60, what="60 steps done")
        show = _plain_cli("show", "first", cwd=tmp_path)
        assert show.returncode == 4, show.stderr
        assert "(live, through the engine of pid" in show.stdout
        keys = re.findall(r"^gated-(\d+)\s+completed", show.stdout, re.M)
        assert keys == [str(i) for i in range(50)]
        assert "Steps (1-50 of " in show.stdout and "more: `zart show first --offset 50` for the next 50" in show.stdout
        rest = _plain_cli("show", "first", "--offset", "50", cwd=tmp_path)
        assert re.findall(r"^gated-(\d+)\s+completed", rest.stdout, re.M) == [str(i) for i in range(50, 60)]
        every = json.loads(_plain_cli("show", "first", "--all", "--json", cwd=tmp_path).stdout)
        assert [s["step_key"] for s in every["steps"]] == [f"gated-{i}" for i in range(60)]
        assert every["execution"]["status"] == "running"
        page = json.loads(_plain_cli("show", "first", "--json", "--limit", "7", cwd=tmp_path).stdout)
        assert len(page["steps"]) == 7 and page["read"] == "live" and page["more"]
    finally:
        driver.kill()
        driver.communicate()
