"""A client trusts a monitor endpoint file, and the socket folder it names, only when they are its user's
(or root's) and closed to others, as the journal's files are; otherwise it says why and reads the file."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import wait_until

import zart_nb as zart
from zart_nb._monitor import endpoint as endpoint_file
from zart_nb._monitor.client import MonitorClient

DRIVER = Path(__file__).parent / "scripts" / "monitor_driver.py"
NOBODY = 65534


def _spoilers(path: Path, folder: str) -> list[tuple[str, str, Callable[[], None], Callable[[], None]]]:
    """(what the refusal says, the file it names, spoil, mend) for each way a file can be untrustworthy."""
    cases: list[tuple[str, str, Callable[[], None], Callable[[], None]]] = [
        ("is open to others (mode 644)", str(path), lambda: os.chmod(path, 0o644), lambda: os.chmod(path, 0o600)),
        ("is open to others (mode 620)", str(path), lambda: os.chmod(path, 0o620), lambda: os.chmod(path, 0o600)),
        ("is writable by others (mode 777)", folder, lambda: os.chmod(folder, 0o777),
         lambda: os.chmod(folder, 0o700)),
    ]
    if os.getuid() == 0:  # only root can give a file away
        owner = os.getuid()
        cases += [
            (f"belongs to {_name(NOBODY)}", str(path), lambda: os.chown(path, NOBODY, -1),
             lambda: os.chown(path, owner, -1)),
            (f"belongs to {_name(NOBODY)}", folder, lambda: os.chown(folder, NOBODY, -1),
             lambda: os.chown(folder, owner, -1)),
        ]
    return cases


def _name(uid: int) -> str:
    from zart_nb._ownership import who

    return who(uid)


def test_an_endpoint_file_or_socket_folder_others_could_have_written_is_refused(tmp_path, caplog):
    journal = tmp_path / "j.duckdb"
    driver = subprocess.Popen([sys.executable, str(DRIVER), str(journal), str(tmp_path), "1"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        found = wait_until(lambda: endpoint_file.read(journal), what="the driver's endpoint")
        wait_until(lambda: MonitorClient.connect(journal), what="a client of the driver's engine").close()
        path = endpoint_file.endpoint_path(journal)
        for problem, named, spoil, mend in _spoilers(path, os.path.dirname(found.address)):
            spoil()
            try:
                with pytest.raises(zart.MonitorError) as refused:
                    endpoint_file.find_live(journal)
                assert named in str(refused.value) and problem in str(refused.value)
                if named == os.path.dirname(found.address):  # a client built from the endpoint checks too
                    with pytest.raises(zart.MonitorError, match="folder"):
                        MonitorClient(found)
                caplog.clear()
                with caplog.at_level(logging.WARNING, logger="zart_nb"):
                    assert MonitorClient.connect(journal) is None
                assert problem in caplog.text
                # The fallback reads the journal file, which the live engine holds: as for a stale endpoint.
                reader = zart.journal(journal, lock_timeout=0)
                try:
                    with pytest.raises(zart.JournalLocked):
                        reader.list_executions()
                finally:
                    reader.close()
            finally:
                mend()
            assert path.exists()  # a refused file is not removed as a stale one would be
            with MonitorClient.connect(journal) as client:  # trusted again once mended
                assert client.execution_record("first").status is zart.ExecutionStatus.RUNNING
        (tmp_path / "go-0").touch()
        (tmp_path / "never").touch()
        out, err = driver.communicate(timeout=60)
        assert "FIRST completed" in out and "SECOND completed" in out, err
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()


def test_a_symlinked_endpoint_file_is_refused(tmp_path):
    journal = tmp_path / "j.duckdb"
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text('{"address": "/nonexistent", "pid": 1, "key": "00"}')
    elsewhere.chmod(0o600)
    endpoint_file.endpoint_path(journal).symlink_to(elsewhere)
    with pytest.raises(zart.MonitorError, match="is a symlink"):
        endpoint_file.find_live(journal)
    assert MonitorClient.connect(journal) is None
