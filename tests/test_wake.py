"""The wake channel (``_monitor.wake``): an owner-only datagram socket beside the journal; a ping carries
nothing, so whatever it holds only calls the listener; untrusted folders and stale sockets are refused."""
from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import threading

from zart_nb._monitor import wake


def _pinged_from_another_process(journal, owner: str) -> bool:
    code = f"from zart_nb._monitor import wake; print(wake.ping({str(journal)!r}, {owner!r}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip() == "True"


def test_a_ping_from_another_process_reaches_the_owner_only_socket_and_its_bytes_mean_nothing(tmp_path):
    journal = tmp_path / "j.duckdb"
    pings = threading.Semaphore(0)
    channel = wake.WakeChannel(journal, pings.release)
    try:
        folder = wake.folder_of(journal)
        assert channel.path == folder / f"{os.getpid()}.sock"
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
        assert stat.S_ISSOCK(os.lstat(channel.path).st_mode) and stat.S_IMODE(os.lstat(channel.path).st_mode) == 0o600
        assert _pinged_from_another_process(journal, f"{os.uname().nodename}:{os.getpid()}")
        assert pings.acquire(timeout=30)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:  # anything at all: still only a ping
            sock.sendto(b"\x80\x04\x95 not a pickle" * 4, str(channel.path))
        assert pings.acquire(timeout=30)
    finally:
        channel.close()
    assert not channel.path.exists()


def test_a_journal_path_too_long_for_a_socket_address_still_gets_a_channel(tmp_path):
    deep = tmp_path / ("d" * 120)
    deep.mkdir()
    journal = deep / "j.duckdb"
    pings = threading.Semaphore(0)
    channel = wake.WakeChannel(journal, pings.release)
    try:
        assert len(os.fsencode(str(channel.path))) > 108
        assert _pinged_from_another_process(journal, f"{os.uname().nodename}:{os.getpid()}")
        assert pings.acquire(timeout=30)
    finally:
        channel.close()


def test_ping_refuses_another_host_a_missing_socket_a_folder_open_to_others_and_removes_a_stale_socket(tmp_path):
    journal = tmp_path / "j.duckdb"
    assert not wake.ping(journal, "another-host.invalid:1")
    here = os.uname().nodename
    assert not wake.ping(journal, f"{here}:1")  # no folder, no socket
    folder = wake.folder_of(journal)
    folder.mkdir(mode=0o700)
    stale = folder / "999999.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(stale))  # bound, then closed: nobody listens
    assert not _pinged_from_another_process(journal, f"{here}:999999")
    assert not stale.exists()  # removed by the sender
    pings = threading.Semaphore(0)
    channel = wake.WakeChannel(journal, pings.release)
    try:
        os.chmod(folder, 0o755)
        assert not _pinged_from_another_process(journal, f"{here}:{os.getpid()}")
    finally:
        os.chmod(folder, 0o700)
        channel.close()
