"""The endpoint file: where the engine holding a journal serves the monitor, beside the journal.

``<journal>.monitor`` is an owner-only (0600) JSON object: the socket's address, the serving pid, that
process's start time (so a pid reused by another program is told apart) and the hex authkey. It is
written atomically when the server starts and removed when it stops; a file whose process is gone or
was replaced is stale and ignored (and removed by whoever finds it). A client trusts the file, and the
folder of the socket it names, only when they are its user's (or root's) and closed to others, as the
journal's files are (``zart_nb._ownership``).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .._errors import MonitorError
from .._ownership import foreign, mode, who, writable_by_others

SUFFIX = ".monitor"


def endpoint_path(journal: str | os.PathLike[str]) -> Path:
    path = Path(journal).expanduser().resolve()
    return path.with_name(path.name + SUFFIX)


def process_start(pid: int) -> str | None:
    """When ``pid`` started (Linux: clock ticks since boot), or None where that cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode("ascii", "replace")
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after the last ")".
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True, slots=True)
class Endpoint:
    address: str
    pid: int
    started: str | None
    key: str  # hex
    journal: str

    @property
    def authkey(self) -> bytes:
        return bytes.fromhex(self.key)

    @property
    def is_self(self) -> bool:
        return self.pid == os.getpid()

    def is_live(self) -> bool:
        """Its process runs and is the one that wrote the file (not a reused pid)."""
        if not pid_alive(self.pid):
            return False
        if self.started is not None:
            return process_start(self.pid) == self.started
        return True


def new_key() -> str:
    return os.urandom(32).hex()  # as secrets.token_hex, without loading hashlib's OpenSSL (~3 ms)


def write(journal: str | os.PathLike[str], address: str, key: str) -> Endpoint:
    """Advertise this process's server for ``journal`` (atomic, owner-only)."""
    pid = os.getpid()
    endpoint = Endpoint(address, pid, process_start(pid), key, str(Path(journal).expanduser().resolve()))
    target = endpoint_path(journal)
    tmp = target.with_name(f"{target.name}.{pid}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, json.dumps({"address": address, "pid": pid, "started": endpoint.started, "key": key,
                                 "journal": endpoint.journal, "version": 1}).encode())
    finally:
        os.close(fd)
    os.replace(tmp, target)
    return endpoint


def read(journal: str | os.PathLike[str], *, trusted: bool = False) -> Endpoint | None:
    """The endpoint advertised for ``journal``, or None when there is none (or it is unreadable).

    ``trusted``: raise :class:`MonitorError` for a file someone else could have written or read (its
    key): a symlink, not this user's (or root's), or open to group or others."""
    path = endpoint_path(journal)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | (os.O_NOFOLLOW if trusted else 0))
    except OSError as exc:
        if trusted and exc.errno == errno.ELOOP:
            raise MonitorError(f"the monitor endpoint file {path} is a symlink; zart follows only a file "
                               "its engine wrote. Remove the link") from None
        return None
    try:
        if trusted:
            _check_file(path, os.fstat(fd))
        with open(fd, "rb", closefd=False) as handle:
            value = json.loads(handle.read(64 * 1024))
        return Endpoint(str(value["address"]), int(value["pid"]), value.get("started"), str(value["key"]),
                        str(value.get("journal", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    finally:
        os.close(fd)


def _check_file(path: Path, info: os.stat_result) -> None:
    if foreign(info):
        raise MonitorError(f"the monitor endpoint file {path} belongs to {who(info.st_uid)}, not to you: "
                           "whoever wrote it could stand in for the engine. Remove it if no engine of "
                           "yours runs; zart reads the journal file instead")
    if info.st_mode & 0o077:
        raise MonitorError(f"the monitor endpoint file {path} is open to others (mode {mode(info)}): its "
                           f"key may have been read or changed. Run `chmod 600 {path}` or remove it; zart "
                           "reads the journal file instead")


def check_socket_folder(endpoint: Endpoint) -> None:
    """Refuse (:class:`MonitorError`) a socket whose folder is not this user's (or root's), or is
    writable by others: whoever could write there could put a socket of their own in its place. A
    folder that is gone is left to the connection to report."""
    folder = os.path.dirname(endpoint.address)
    try:
        info = os.stat(folder)
    except OSError:
        return
    if foreign(info):
        raise MonitorError(f"the monitor socket's folder {folder} (named by {endpoint_path(endpoint.journal)}) "
                           f"belongs to {who(info.st_uid)}, not to you; zart reads the journal file instead")
    if writable_by_others(info, folder=True):
        raise MonitorError(f"the monitor socket's folder {folder} (named by {endpoint_path(endpoint.journal)}) "
                           f"is writable by others (mode {mode(info)}): anyone could replace the socket. Run "
                           f"`chmod 700 {folder}`; zart reads the journal file instead")


def find_live(journal: str | os.PathLike[str]) -> Endpoint | None:
    """The endpoint of a live engine (another process) serving ``journal``; a stale file is removed.
    Raises :class:`MonitorError` for a file (or socket folder) it must not trust."""
    endpoint = read(journal, trusted=True)
    if endpoint is None or endpoint.is_self:
        return None
    if not endpoint.is_live():
        remove(journal, endpoint)
        return None
    check_socket_folder(endpoint)
    return endpoint


def remove(journal: str | os.PathLike[str], endpoint: Endpoint | None = None) -> None:
    """Remove the endpoint file (only if it is still ``endpoint``'s, when one is given)."""
    path = endpoint_path(journal)
    if endpoint is not None and read(journal) != endpoint:
        return
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
