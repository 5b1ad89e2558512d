"""The endpoint file: where the engine holding a journal serves the monitor, beside the journal.

``<journal>.monitor`` is an owner-only (0600) JSON object: the socket's address, the serving pid, that
process's start time (so a pid reused by another program is told apart) and the hex authkey. It is
written atomically when the server starts and removed when it stops; a file whose process is gone or
was replaced is stale and ignored (and removed by whoever finds it).
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

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
    return secrets.token_hex(32)


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


def read(journal: str | os.PathLike[str]) -> Endpoint | None:
    """The endpoint advertised for ``journal``, or None when there is none (or it is unreadable)."""
    try:
        with open(endpoint_path(journal), "rb") as handle:
            value = json.loads(handle.read(64 * 1024))
        return Endpoint(str(value["address"]), int(value["pid"]), value.get("started"), str(value["key"]),
                        str(value.get("journal", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def find_live(journal: str | os.PathLike[str]) -> Endpoint | None:
    """The endpoint of a live engine (another process) serving ``journal``; a stale file is removed."""
    endpoint = read(journal)
    if endpoint is None or endpoint.is_self:
        return None
    if not endpoint.is_live():
        remove(journal, endpoint)
        return None
    return endpoint


def remove(journal: str | os.PathLike[str], endpoint: Endpoint | None = None) -> None:
    """Remove the endpoint file (only if it is still ``endpoint``'s, when one is given)."""
    path = endpoint_path(journal)
    if endpoint is not None and read(journal) != endpoint:
        return
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
