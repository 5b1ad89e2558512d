"""Every value store folder of a journal, found with the journal and without it: what ``zart stats``
counts and what ``zart.sql`` reads when the journal cannot be read.

A journal keeps its stored values in ``<journal>.values``, and an execution run with ``value_store=``
(or ``$ZART_VALUE_STORE``) keeps them in that folder (``_stores``, journaled in ``value_stores``). A
reader of the journal (the file, or a live engine's monitor) gets that list from the journal
(``JournalReader.value_stores``). A process that holds the file and serves no monitor
(``$ZART_MONITOR=0``) leaves no way to read it, so the engine that journals such a folder also lists it
in ``<journal>.values/.zart-stores``: owner-only, one line ``<journal id>\\t<folder>`` each, appended
once per folder. That list is read here with the store's checks (the folder's and the file's owner
and mode), and a folder counts only while its claim (``MARKER``, written by ``_stores.claim``) names
the journal of its line: a folder since claimed by another journal is that journal's. Nothing here
unpickles: a folder's files are counted from their directory entries, the marker and the list are read
as text.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import _ownership
from . import _values as values
from ._errors import ValueLost, ValueStoreError

MARKER = ".zart-journal"  # in a value store named by value_store=: the id of the one journal it belongs to
LISTING = ".zart-stores"  # in <journal>.values: the journal's value_store= folders, for readers without it
_FLAGS = os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)


def own(journal_id: str, folders: Iterable[str]) -> list[str]:
    """The folders of ``folders`` that still belong to the journal ``journal_id``: each whose claim
    names that journal, has none, or cannot be looked at now (a missing folder stays: its files are
    gone, which ``zart stats`` says)."""
    kept = []
    for folder in folders:
        try:
            owner = owner_of(Path(folder)) if os.path.isdir(folder) else None
        except ValueStoreError:
            owner = None  # an unreadable marker: the folder's own checks say what is wrong with it
        if owner in (None, "", journal_id):
            kept.append(folder)
    return kept


def owner_of(store: Path) -> str | None:
    """The id of the journal that claimed ``store`` (its marker's text, never unpickled), or None."""
    try:
        fd = os.open(store / MARKER, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ValueStoreError(f"the value store {store} has a marker {MARKER} that cannot be read: "
                              f"{exc}") from exc
    try:
        return os.read(fd, 200).decode("ascii", "replace").strip()
    finally:
        os.close(fd)


def remember(journal_path: str | os.PathLike[str], journal_id: str, store: str | os.PathLike[str]) -> None:
    """List ``store`` (a ``value_store=`` folder the journal ``journal_id`` claimed) in
    ``<journal>.values/.zart-stores``, unless it is there: appended, fsynced, owner-only."""
    folder = values.folder_for(journal_path)
    line = f"{journal_id}\t{os.fspath(store)}"
    if "\n" in line:
        raise ValueStoreError(f"a value store's path cannot hold a line break: {os.fspath(store)!r}")
    if line in _lines(folder):
        return
    values.check_folder(folder, create=True)
    listing = folder / LISTING
    fd = os.open(listing, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _FLAGS, 0o600)
    try:
        _check_listing(fd, listing)
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    values.sync_folder(folder)


def _check_listing(fd: int, listing: Path) -> None:
    info = os.fstat(fd)
    if _ownership.foreign(info) or _ownership.writable_by_others(info):
        raise ValueStoreError(f"the list of value stores {listing} belongs to {_ownership.who(info.st_uid)} "
                              f"or others can write it (mode {_ownership.mode(info)}); refused")


def _lines(folder: Path) -> list[str]:
    """The lines of ``folder``'s list (``[]`` without one), after the folder's and the file's checks."""
    if not folder.is_dir():
        return []
    values.check_folder(folder)
    listing = folder / LISTING
    try:
        fd = os.open(listing, os.O_RDONLY | _FLAGS)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ValueStoreError(f"the list of value stores {listing} cannot be read: {exc}") from exc
    try:
        _check_listing(fd, listing)
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace").splitlines()


def remembered(journal_path: str | os.PathLike[str]) -> list[str]:
    """The ``value_store=`` folders listed beside the journal (``remember``) whose claim still names the
    journal of their line, without reading the journal (its holder serves no monitor). Raises
    ``ValueStoreError`` when the journal's own store or its list fails the checks."""
    found: list[str] = []
    for line in _lines(values.folder_for(journal_path)):
        journal_id, _, folder = line.partition("\t")
        if folder and folder not in found and own(journal_id, [folder]):
            found.append(folder)
    return found


@dataclass(frozen=True, slots=True)
class FolderUsage:
    """One value store folder of a journal as ``zart stats`` counts it: its files and bytes as found on
    disk (``own``: the journal's ``<journal>.values``; ``error``: why it was not counted)."""

    path: str
    files: int
    size: int
    own: bool
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "files": self.files, "bytes": self.size, "own": self.own, "error": self.error}


def usage(folder: str | os.PathLike[str], *, own: bool = False) -> FolderUsage:
    """The files and bytes of a value store folder, after its checks (owner, mode): none is opened. A
    missing folder counts nothing (a ``value_store=`` one says it is missing); a refused one says why."""
    path = Path(folder)
    if not path.exists():
        return FolderUsage(str(path), 0, 0, own, None if own else "missing")
    try:
        values.check_folder(path)
    except (ValueStoreError, ValueLost) as exc:
        return FolderUsage(str(path), 0, 0, own, str(exc))
    count = total = 0
    pending = [path]
    while pending:
        try:
            entries = list(os.scandir(pending.pop()))
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                pending.append(Path(entry.path))
            elif entry.is_file(follow_symlinks=False):
                count += 1
                total += entry.stat(follow_symlinks=False).st_size
    return FolderUsage(str(path), count, total, own)


def of_journal(journal_path: str | os.PathLike[str], journaled: list[str] | None) -> list[FolderUsage]:
    """What ``zart stats`` counts for a journal: its own ``<journal>.values``, then each of its
    ``value_store=`` folders (``journaled``: as its reader listed them; None when the journal could not
    be read: the list beside it, ``remembered``), each after its checks."""
    path = Path(journal_path).resolve()
    counted = [usage(values.folder_for(path), own=True)]
    if journaled is None:
        try:
            journaled = remembered(path)
        except (ValueStoreError, ValueLost):
            journaled = []  # the own folder's row says what is wrong with it
    return counted + [usage(folder) for folder in journaled]
