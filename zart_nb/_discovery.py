"""The journals a command reads, and how each can be read right now (the CLI's discovery).

A folder's journals are its ``*.duckdb`` files: ``./.zart/`` by default (a notebook's is
``.zart/<notebook stem>.duckdb``), or a folder the user names (a project folder with ``.zart/``, or the
``.zart`` folder itself). Each is read through the live engine's monitor endpoint when another process's
engine holds it, else from the file for a moment. A journal held by a process that serves no monitor
(``$ZART_MONITOR=0``, an older zart_nb) is named by who holds it at once: the file's lock is tried
without the usual wait (``$ZART_LOCK_TIMEOUT``, 10 s), only for ``READ_WAIT`` while the endpoint is
looked for again (an engine writes it just after it takes the file). ``zart serve`` is the exception: it
opens its journals for a moment at each look for due work, without a monitor, so a file it holds is
waited for as a writer waits (the lock timeout), with one line saying so.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

from ._errors import ExecutionNotFound, JournalError, JournalLocked, MonitorError, ZartError
from ._procinfo import is_serve as is_serve
from ._procinfo import proc as _proc
from ._reader import JournalReader

if TYPE_CHECKING:
    from ._journal import Journal
    from ._monitor.client import MonitorClient

T = TypeVar("T")
logger = logging.getLogger("zart_nb")

READ_WAIT = 0.3  # seconds to retry a locked file (and look for its engine's endpoint) before naming its holder
ENGINE_GONE_WAIT = 5.0  # how long an engine that is releasing its journal (endpoint still there) is waited for
ZART_FOLDER = ".zart"
LIVE, FILE = "live", "file"


def folder_journals(target: str | os.PathLike[str] | None = None) -> tuple[Path, list[Path]]:
    """``(the folder, its journals)``: ``target`` a project folder (its ``.zart/``), a folder of journals (the
    ``.zart`` folder itself) or None (``./.zart/``). A folder without journals gives an empty list; a
    ``target`` that is not a folder is a :class:`ZartError`."""
    folder = Path(target) if target is not None else Path(ZART_FOLDER)
    if target is not None and not folder.exists():
        raise ZartError(f"{folder}: no such folder")
    if target is not None and not folder.is_dir():
        raise ZartError(f"{folder}: not a folder (name a journal file with --journal)")
    if (folder / ZART_FOLDER).is_dir():
        folder = folder / ZART_FOLDER
    if not folder.is_dir():
        return folder, []
    return folder, sorted(p for p in folder.glob("*.duckdb") if p.is_file())


# --- who holds a file ----------------------------------------------------------------------------


def holder(pid: int, journal: Path) -> str:
    """Who ``pid`` is, for a message: the kernel of a notebook (its ``$JPY_SESSION_NAME``, else the notebook
    the journal is named after), or the process and its command line."""
    argv = _proc(pid, "cmdline")
    if any("ipykernel" in arg for arg in argv):
        notebook = next((var.split("=", 1)[1] for var in _proc(pid, "environ")
                         if var.startswith("JPY_SESSION_NAME=") and var.endswith(".ipynb")), None)
        beside = journal.parent.parent / f"{journal.stem}.ipynb"
        if notebook is None and journal.parent.name == ZART_FOLDER and beside.exists():
            notebook = str(beside)
        return f"the kernel (pid {pid}) of notebook {notebook}" if notebook else f"a Jupyter kernel (pid {pid})"
    if argv:
        command = " ".join([os.path.basename(argv[0]), *argv[1:]])
        return f"process {pid} ({command[:120]}{'...' if len(command) > 120 else ''})"
    return f"process {pid}"


def holder_pid(exc: JournalLocked) -> int | None:
    """The pid of the process a :class:`JournalLocked` names, when it names one."""
    return exc.pid


# --- reading one journal -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Read(Generic[T]):
    """What one read of a journal gave: ``value``, and how it was read (``live``: through the engine of
    process ``pid``; ``file``)."""

    path: Path
    value: T
    via: str
    pid: int | None = None


def read(path: Path, fn: Callable[[JournalReader], T], *, missing_ok: bool = False) -> Read[T]:
    """``fn(reader)`` on the journal at ``path``, through its live engine's monitor, else the file.

    Raises :class:`JournalLocked` (at once: after ``READ_WAIT``) naming who holds the file when another
    process holds it and serves no monitor; :class:`JournalError` when there is no journal file there
    (none is created), unless ``missing_ok``: then it is opened as a writer would (and created; a side
    log left beside it is folded in)."""
    from ._journal.reader import FileJournalReader

    def here(journal: Journal) -> T:
        with FileJournalReader(journal) as reader:
            return fn(reader)

    return through(path, fn, here, missing_ok=missing_ok)


def through(path: Path, live: Callable[[MonitorClient], T], here: Callable[[Journal], T], *,
            missing_ok: bool = False) -> Read[T]:
    """``live(client)`` when a live engine of another process serves ``path``, else ``here(journal)`` on
    this process's :class:`Journal` of the file, which may not wait for another process's lock (see
    :func:`read`)."""
    from ._monitor.client import MonitorClient
    from ._runtime import runtime

    deadline = time.monotonic() + READ_WAIT
    gone_by = time.monotonic() + ENGINE_GONE_WAIT
    serve: int | None = None  # the zart serve process waited for, once it was met holding the file
    while True:
        client = MonitorClient.connect(path)
        if client is not None:
            try:
                with client:
                    return Read(path, live(client), LIVE, client.pid)
            except MonitorError:
                if time.monotonic() >= gone_by:
                    raise
                time.sleep(0.05)  # the engine is going away: its file is free in a moment
                deadline = time.monotonic() + READ_WAIT
                continue
        if not missing_ok and not path.exists():
            raise JournalError(path, "no journal file here")
        journal = runtime.journal(path)
        saved = journal.lock_timeout
        journal.lock_timeout = 0.0  # a held file is named at once, never waited for
        try:
            return Read(path, here(journal), FILE)
        except JournalLocked as exc:
            if time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            pid = holder_pid(exc)
            if pid is not None and serve is None and is_serve(pid):
                serve = pid
                deadline = time.monotonic() + max(0.0, saved - READ_WAIT)
                logger.warning("zart: %s holds journal %s; waiting up to %.0fs for it to be released...",
                               holder(pid, path), path, saved)
                continue
            owner = f"{holder(pid, path) if pid else exc.owner}, which serves no monitor endpoint"
            raise JournalLocked(path, owner, saved if pid is not None and pid == serve else READ_WAIT,
                                pid) from None
        finally:
            journal.lock_timeout = saved


# --- finding an execution ------------------------------------------------------------------------


def locate(execution_id: str, paths: Sequence[Path], where: str) -> Path:
    """The one journal of ``paths`` that holds ``execution_id`` (read as :func:`read` does).

    :class:`ExecutionNotFound` when none does (naming the journals that could not be read and why), a
    :class:`ZartError` listing them when several do."""
    found: list[Path] = []
    unread: list[JournalError] = []
    for path in paths:
        try:
            if read(path, lambda reader: reader.execution_record(execution_id)).value is not None:
                found.append(path)
        except JournalError as exc:
            unread.append(exc)
    if len(found) == 1:
        return found[0]
    if found:
        listed = "\n".join(f"  {path}" for path in found)
        raise ZartError(f"execution {execution_id!r} is in {len(found)} journals of {where}; name one with "
                        f"--journal:\n{listed}")
    if len(unread) == 1 and len(paths) == 1:
        raise unread[0]
    if unread:
        notes = "\n".join(f"  {exc.path}: in use by {exc.owner}" if isinstance(exc, JournalLocked)
                          else f"  {exc}" for exc in unread)
        raise ZartError(f"no execution {execution_id!r} in the journals of {where} that could be read; "
                        f"not read:\n{notes}")
    raise ExecutionNotFound(execution_id, f"any journal of {where}")
