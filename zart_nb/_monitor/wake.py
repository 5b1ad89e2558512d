"""The wake channel: how another process tells the one that suspended an execution "look in the file now".

A process with suspended executions of a journal (``_suspend.Continuer``) listens on an owner-only Unix
datagram socket ``<journal>.wake/<pid>.sock`` (folder 0700, socket 0600), found by anyone who knows the
journal and the lease's owner (``host:pid``, journaled with the suspension). After committing an event
or a ``zart wake`` into the file, the sender sends one datagram there as it lets go of the file (the
owner cannot open it before; ``_messages.ping_owner``). The datagram carries
nothing: its bytes are never read as anything, so a forged ping can only cause a look at the file,
which is what the continuer does every ``EVENT_LOOK`` seconds anyway (the fallback when no ping comes:
another host, a channel that could not be opened, a ping lost). Pings that arrive while a look is
pending are one look.

Trust, as for the journal's files (``zart_nb._ownership``): the folder must be this user's (or root's),
not a symlink, and closed to others; the socket this user's. A folder that fails is not used (a
warning; the continuer falls back to its looks). A path too long for a socket address (about 107
bytes) is reached through ``/proc/self/fd`` of the opened folder.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from .._errors import MonitorError
from .._ownership import foreign, mode, who

logger = logging.getLogger("zart_nb")

SUFFIX = ".wake"
MAX_ADDRESS = 100  # bytes: sun_path holds 108 with its NUL on Linux; longer paths go through /proc/self/fd


def folder_of(journal: str | os.PathLike[str]) -> Path:
    """``<journal>.wake``: the folder of the wake sockets of ``journal``'s processes."""
    path = Path(journal).expanduser().resolve()
    return path.with_name(path.name + SUFFIX)


def _check_folder(folder: Path, info: os.stat_result) -> None:
    if not stat.S_ISDIR(info.st_mode):
        raise MonitorError(f"the wake folder {folder} is not a folder (a symlink?); remove it")
    if foreign(info):
        raise MonitorError(f"the wake folder {folder} belongs to {who(info.st_uid)}, not to you; remove it")
    if info.st_mode & 0o077:
        raise MonitorError(f"the wake folder {folder} is open to others (mode {mode(info)}); run "
                           f"`chmod 700 {folder}` or remove it")


def _trusted_folder(journal: str | os.PathLike[str], *, create: bool) -> Path:
    folder = folder_of(journal)
    if create:
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder, 0o700)
    _check_folder(folder, os.lstat(folder))  # lstat: a symlink is not a folder here
    return folder


@contextlib.contextmanager
def _address(folder: Path, name: str) -> Iterator[str]:
    """A socket address for ``folder/name``: the path, or ``/proc/self/fd/N/name`` when it is too long."""
    path = str(folder / name)
    if len(os.fsencode(path)) <= MAX_ADDRESS:
        yield path
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}/{name}"
    finally:
        os.close(fd)


def _name(pid: int) -> str:
    return f"{pid}.sock"


class WakeChannel:
    """This process's wake socket for one journal: ``on_ping()`` is called (on its own thread) for every
    datagram received, whatever it holds. :meth:`close` removes the socket."""

    def __init__(self, journal: str | os.PathLike[str], on_ping: Callable[[], None]) -> None:
        folder = _trusted_folder(journal, create=True)
        self.path = folder / _name(os.getpid())
        self._on_ping = on_ping
        self._closed = threading.Event()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()  # a socket left by a dead process whose pid this one reuses
            with _address(folder, self.path.name) as address:
                old = os.umask(0o177)
                try:
                    self._sock.bind(address)
                finally:
                    os.umask(old)
            os.chmod(self.path, 0o600)
        except BaseException:
            self._sock.close()
            raise
        self._thread = threading.Thread(target=self._listen, name="zart-wake", daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._closed.is_set():
            try:
                self._sock.recv(64)  # the bytes mean nothing: the datagram is the message
            except OSError:
                if self._closed.is_set():
                    break
                continue
            if self._closed.is_set():
                break
            try:
                self._on_ping()
            except Exception:  # noqa: BLE001 - a ping must never end the listener
                logger.exception("zart: handling a wake ping")
        self._sock.close()

    def close(self) -> None:
        """Stop listening and remove the socket."""
        if self._closed.is_set():
            return
        self._closed.set()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # ends the blocked recv
        self._thread.join(2.0)


def ping(journal: str | os.PathLike[str], owner: str) -> bool:
    """Tell the process ``owner`` (``host:pid``, a lease's owner) to look at ``journal`` now. False when
    it cannot be reached from here (another host, no channel, a stale socket: removed, a full queue: a
    look is pending anyway, or a folder or socket it must not trust: logged)."""
    host, _, pid = owner.rpartition(":")
    if host != os.uname().nodename or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        folder = _trusted_folder(journal, create=False)
        path = folder / _name(int(pid))
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    except (OSError, MonitorError) as exc:
        logger.warning("zart: not pinging the process %s: %s", owner, exc)
        return False
    if not stat.S_ISSOCK(info.st_mode) or foreign(info):
        logger.warning("zart: not pinging the process %s: %s is not a socket of yours", owner, path)
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        try:
            with _address(folder, path.name) as address:
                sock.sendto(b"!", address)
        except OSError as exc:
            if exc.errno == errno.ECONNREFUSED:  # nobody listens: its process is gone
                with contextlib.suppress(OSError):
                    path.unlink()
            return False
    return True
