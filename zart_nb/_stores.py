"""An execution's value store: the folder its large values and tables are in, chosen once and journaled.

By default a journal's stored values are in ``<journal>.values`` beside it (``_values``). An execution
run with ``value_store=`` (or, at its first run, ``$ZART_VALUE_STORE``) keeps them in that folder
instead: an absolute path that this process and a Dask cluster's workers reach alike (a shared
filesystem), so the workers write their outputs there and load their by-reference arguments from there.
The choice is journaled before the first value goes there (schema 11, ``_journal/stores.py``), so every
later run of the execution (a resume, ``zart resume``, ``zart serve``, a control action) and every
reader (``zart.load``, ``zart.stored``, ``zart.sql``, ``zart show``, ``zart gc``) finds the same folder
whatever the environment says then. The folder gets the same checks as the journal's own store (its
owner and mode, each file's), and belongs to one journal: ``zart gc`` removes its unreferenced files.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _values as values
from ._errors import ConfigurationError, ValueLost, ValueStoreError
from ._journal import stores as sql
from ._storefolders import MARKER, owner_of, remember

if TYPE_CHECKING:
    from ._journal.journal import Journal

VARIABLE = "ZART_VALUE_STORE"
log = logging.getLogger("zart_nb")


def from_environment() -> str | None:
    """``$ZART_VALUE_STORE``: the value store of executions started without ``value_store=``, or None."""
    text = os.environ.get(VARIABLE, "").strip()
    if not text:
        return None
    if not os.path.isabs(text):
        raise ConfigurationError(f"${VARIABLE} must be an absolute path (a value store this process and a "
                                 f"cluster's workers reach alike), got {text!r}")
    return text


def folder(journal_path: str | os.PathLike[str], store: str | None) -> Path:
    """The folder of the value store ``store`` (None: the journal's own, ``<journal>.values``)."""
    return values.folder_for(journal_path) if store is None else Path(store)


def same_folder(one: str | os.PathLike[str], other: str | os.PathLike[str]) -> bool:
    """Whether two paths name the same folder (the same path, or the same folder through a link)."""
    if os.path.realpath(one) == os.path.realpath(other):
        return True
    try:
        return os.path.samefile(one, other)
    except OSError:
        return False


def of(journal: Journal, execution_id: str) -> str | None:
    """The value store journaled for ``execution_id`` (None: the journal's own)."""
    return journal.query(sql.store_of, execution_id)


def choose(journal: Journal, execution_id: str, exists: bool, option: str | None,
           fork_from: str | None = None) -> str | None:
    """The value store of a run of ``execution_id`` (None: the journal's own), journaled when new.

    An execution keeps the store of its first run (a fork, its source's): ``option`` (``value_store=``)
    naming another folder is a ``ConfigurationError`` (its journaled values are not there), and
    ``$ZART_VALUE_STORE`` counts only for a new execution."""
    journaled = of(journal, execution_id)
    if exists or fork_from is not None:
        kept = journaled if exists else of(journal, fork_from or "")
        where = folder(journal.path, kept)
        if option is not None and not same_folder(option, where):
            whose = f"execution {execution_id!r}" if exists else f"the execution {fork_from!r} it forks"
            raise ConfigurationError(f"value_store={option!r}: {whose} keeps its stored values in {where}; "
                                     "a run of it uses that store (leave value_store= out)")
        chosen = kept if kept is not None or option is None else option
    else:
        chosen = option if option is not None else from_environment()
    if chosen != journaled:
        if chosen is not None:
            claim(Path(chosen), journal)
        journal.transact(sql.set_store, execution_id, chosen)
    if chosen is not None:  # listed beside the journal too, for readers that cannot read it (_storefolders)
        with journal.hold():
            mine = journal.journal_id
        remember(journal.path, mine, chosen)
    return chosen


def claim(store: Path, journal: Journal) -> None:
    """Make ``store`` the value store of ``journal`` alone: a folder already claimed by another journal is
    refused (``zart gc`` of one would remove the other's values, which it does not reference)."""
    with journal.hold():
        mine = journal.journal_id
    values.check_folder(store, create=True)
    owner = owner_of(store)
    if owner is None:
        marker = store / MARKER
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, mine.encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        values.sync_folder(store)
    elif owner != mine:
        raise ConfigurationError(f"value_store={str(store)!r} holds the stored values of another journal "
                                 f"(id {owner}); give each journal a value store folder of its own")


def load(journal: Journal, execution_id: str, blob: bytes) -> Any:
    """A journaled blob of ``execution_id`` loaded: unpickled, or from its execution's value store."""
    if not values.is_ref(blob):
        return values.load(blob, journal.path)
    return values.load(blob, journal.path, folder(journal.path, of(journal, execution_id)))


def folders(journal: Journal) -> list[Path]:
    """Every value store of the journal: its own, then each other one an execution was run with and that
    no other journal claimed since (``claim``)."""
    with journal.hold(write=False):
        mine = journal.journal_id
    others = [Path(path) for path in journal.query(sql.stores)]
    return [values.folder_for(journal.path)] + [
        store for store in others if not store.is_dir() or owner_of(store) in (None, mine, "")]


# --- what deleting executions leaves ------------------------------------------------------------


def delete(journal: Journal, execution_id: str) -> tuple[list[str], int]:
    """Delete ``execution_id`` from ``journal`` (held by the caller) and free the files of its value store
    that only it pointed to: ``(their names, bytes freed)``. Its folder stays in the list ``zart gc``
    visits until gc finds nothing unreferenced left there (``_journal/stores.py``), so a file that could
    not be freed now (a folder refused, an error) is gc's to free."""
    store, blobs = journal.query(sql.outputs_of, execution_id)
    journal.delete_execution(execution_id)
    gone = values.referenced_names(blobs)
    if not gone:
        return [], 0
    try:  # read after the delete: a fork's records may point to the same files
        return _remove_unreferenced(journal, store, gone)
    except (ValueStoreError, ValueLost, OSError) as exc:
        log.warning("zart: the stored values of the deleted execution %r were not freed (zart gc frees them): %s",
                    execution_id, exc)
        return [], 0


def free_replaced(journal: Journal, store: str | None, old: bytes | None, new: bytes) -> None:
    """After a run journaled ``new`` as its execution's input in place of ``old`` (another input's): free
    ``old``'s store file unless a journaled reference still points to it (if it cannot be freed now, zart
    gc frees it), so the store keeps one input file per execution."""
    if old is None or not values.is_ref(old) or not values.is_ref(new):
        return
    name = values.decode_ref(old).name
    if name == values.decode_ref(new).name:
        return
    try:
        _remove_unreferenced(journal, store, {name})
    except Exception as exc:  # noqa: BLE001 - best effort: the run is journaled and goes on; gc frees it later
        log.warning("zart: the replaced input file %s was not freed (zart gc frees it): %s", name, exc)


def _remove_unreferenced(journal: Journal, store: str | None, names: set[str]) -> tuple[list[str], int]:
    """Remove the files ``names`` of the value store ``store`` (None: the journal's own) that no journaled
    reference points to: ``(the names removed, their bytes)``."""
    where = folder(journal.path, store)
    return remove_files(where, names - names_in(referenced(journal), where), dry_run=False)


Referenced = dict[Path, set[str]]  # the store files journaled references point to, by value store folder


def referenced(journal: Journal) -> Referenced:
    """The names of the store files every journaled reference points to (any step record, superseded
    ones too, every execution's input and output), by the folder of each reference's execution's store:
    what ``zart gc`` and a deletion keep. A name counts in its own folder only: a file of another folder
    with that name is not kept for it (see :func:`names_in`)."""
    return by_folder(journal.path, journal.query(sql.reference_blobs))


def by_folder(journal_path: str | os.PathLike[str], blobs: Iterable[tuple[str | None, bytes | None]]) -> Referenced:
    """The store files that ``(value store or None, blob)`` pairs point to, by folder (None: the journal's
    own store)."""
    found: Referenced = {}
    for store, blob in blobs:
        if blob is not None and values.is_ref(blob):
            found.setdefault(folder(journal_path, store), set()).add(values.decode_ref(blob).name)
    return found


def names_in(found: Referenced, where: Path) -> set[str]:
    """The names ``found`` in the folder ``where``: those of every key naming that folder (the same path,
    or the same folder through a link: a ``value_store=`` given as the journal's own store, say)."""
    names: set[str] = set()
    for key, keyed in found.items():
        if key == where or same_folder(key, where):
            names |= keyed
    return names


def merged(one: Referenced, other: Referenced) -> Referenced:
    """Both, folder by folder."""
    return {key: one.get(key, set()) | other.get(key, set()) for key in one.keys() | other.keys()}


def settle(journal: Journal, cleared: dict[Path, bool]) -> None:
    """After a gc that removed files (``cleared``: each folder it visited, True when it kept no unreferenced
    file there): the folders left for deleted executions that it cleared, or that are not visited any
    more (another journal claimed them), are no longer visited for them."""
    for path in journal.query(sql.left):
        if cleared.get(Path(path), True):
            journal.transact(sql.settle, path)


def _store_path(store: Path, name: str) -> Path:
    """The file ``name`` (from a journal reference) of the store, refused when it could point elsewhere."""
    parts = name.split("/")
    plain = len(parts) == 1 and name.endswith(values.SUFFIX)
    table = len(parts) == 3 and parts[0] == values.TABLES
    if not (plain or table) or any(not p or p.startswith(".") or p == ".." for p in parts):
        raise ValueStoreError(f"a journaled value reference names {name!r}, not a file of the store {store}")
    return store.joinpath(*parts)


def remove_files(store: Path, names: set[str], dry_run: bool) -> tuple[list[str], int]:
    """Remove the files ``names`` of the store ``store`` (those of deleted executions no one else points to):
    ``(the names found, their bytes)``."""
    if not names or not store.exists():
        return [], 0
    values.check_folder(store)
    removed: list[str] = []
    freed = 0
    touched: set[Path] = set()
    for name in sorted(names):
        path = _store_path(store, name)
        try:
            size = path.lstat().st_size
            if not dry_run:
                os.unlink(path)
        except FileNotFoundError:
            continue
        removed.append(name)
        freed += size
        touched.add(path.parent)
    if not dry_run:
        for directory in sorted(touched, key=lambda p: len(p.parts), reverse=True):
            if directory != store:
                try:
                    directory.rmdir()  # a table folder of a deleted execution, if now empty
                except OSError:
                    pass
            values.sync_folder(directory if directory.exists() else directory.parent)
    return removed, freed
