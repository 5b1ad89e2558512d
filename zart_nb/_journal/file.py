"""The journal file on disk: opening it (magic bytes, waiting for another process's lock), keeping it
owner-only, and marking the executions a dead process left running.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import re
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from .._errors import ConfigurationError, JournalCorrupt, JournalError, JournalLocked
from .._ownership import foreign, mode, who, writable_by_others
from . import db

if TYPE_CHECKING:
    import duckdb  # imported when a journal opens: worker processes never load DuckDB

logger = logging.getLogger("zart_nb")


DEFAULT_LOCK_TIMEOUT = 10.0
# DuckDB checkpoints its WAL into the file once the WAL passes this (16 MiB by default), on the writer thread as a
# fold commits, and at the latest as the file is released: a process's exit then checkpoints at most this much.
# At 16 MiB a 300,000-step run's exit took 206 ms (median of 5), at 4 MB 125 ms (runs +2%, the file +10%).
CHECKPOINT_THRESHOLD = "4MB"


def lock_timeout(value: float | str | None = None) -> float:
    """Seconds to wait for another process to release the file: ``value``, else
    ``$ZART_LOCK_TIMEOUT``, else 10. Refuses what is not a finite number >= 0 (naming where it came from)."""
    source = "lock_timeout"
    if value is None:
        env = os.environ.get("ZART_LOCK_TIMEOUT")
        if env is None or not env.strip():
            return DEFAULT_LOCK_TIMEOUT
        value, source = env, "ZART_LOCK_TIMEOUT"
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigurationError(f"{source} must be a finite number of seconds >= 0, got {value!r}")
    return seconds


def identity(path: Path) -> tuple[int, int] | None:
    """``(device, inode)`` of the file, or ``None`` when it does not exist (yet)."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return (stat.st_dev, stat.st_ino)


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner_from(message: str) -> str:
    match = re.search(r"PID (\d+)", message)
    return f"process {match.group(1)}" if match else "another process"


def _refuse(path: Path, message: str) -> JournalError:
    return JournalError(path, message)


def check_location(given: Path, path: Path) -> None:
    """Refuse, as ssh does, a journal that someone else could have planted or could change: its folder
    or files not owned by this user (or root), or writable by group or others. ``given`` is the path
    as the user wrote it, ``path`` the resolved one. A dangling symlink is refused, not followed."""
    if given.is_symlink() and not given.exists():
        raise _refuse(given, f"the journal path is a symlink to {os.readlink(given)!r}, which does not "
                             "exist; zart does not follow it to create a file there. Remove the link or "
                             "point it at an existing journal")
    if path.is_dir():
        raise _refuse(path, "the journal path is a directory, not a journal file; pass a file path, "
                            f"e.g. {path / 'journal.duckdb'}")
    try:
        folder = path.parent.stat()
    except FileNotFoundError:
        return  # created by us, owner-only
    if foreign(folder):
        raise _refuse(path, f"the journal's folder {path.parent} belongs to {who(folder.st_uid)}, not to "
                            "you: whoever owns it could plant a journal or side log there. Use a folder "
                            "of your own (e.g. ./.zart)")
    if writable_by_others(folder, folder=True):
        raise _refuse(path, f"the journal's folder {path.parent} is writable by others (mode "
                            f"{mode(folder)}): anyone could plant a side log there. "
                            f"Run `chmod go-w {path.parent}` or use a folder of your own")
    for name in (path.name, path.name + ".wal", path.name + ".steps.log"):
        try:
            info = os.lstat(path.with_name(name))
        except FileNotFoundError:
            continue
        member = path.with_name(name)
        if stat.S_ISLNK(info.st_mode) and name != path.name:
            raise _refuse(path, f"{member} is a symlink; zart writes it and will not follow a link. "
                                "Remove it")
        if foreign(info):
            raise _refuse(path, f"{member} belongs to {who(info.st_uid)}, not to you; zart reads only "
                                "journal files of your own. Copy the journal if you need to read it")
        if writable_by_others(info):
            raise _refuse(path, f"{member} is writable by others (mode {mode(info)}); "
                                f"run `chmod 600 {member}`")


def check_magic(path: Path) -> None:
    """Refuse a file that is not a DuckDB database, before DuckDB sees it (it is left untouched)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
    except PermissionError as exc:
        raise _refuse(path, f"you may not read the journal file ({exc.strerror})") from None
    if len(head) == 0:
        raise JournalCorrupt(path, "the file is empty, not a DuckDB database; it was left untouched")
    if head[8:12] != b"DUCK":
        raise JournalCorrupt(path, "the file is not a DuckDB database (no DUCK magic bytes); "
                                   "it was left untouched")


# --- creation ------------------------------------------------------------------------------------
# DuckDB needs ~40-90 us to write a new file's headers; a process killed then leaves a 0, 4096 or 8192
# byte file no one can open. So a creator first claims ``<journal>.creating`` (O_EXCL, holding its
# pid): a second creator waits for it like for any holder, and a marker whose process is dead says
# the file beside it was never finished and may be started over.


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".creating")


def _creator(marker: Path) -> int | None:
    """The pid in a creation marker (``None`` if there is no marker); 0 for an unreadable one."""
    try:
        text = marker.read_text()
        age = time.time() - marker.stat().st_mtime
    except FileNotFoundError:
        return None
    try:
        host, pid = text.split(":")
        if host == os.uname().nodename:
            return int(pid)
        return int(pid) if age < 60 else 0
    except ValueError:
        return -1 if age < 2 else 0  # being written right now, or abandoned half-written


def _claim_creation(marker: Path) -> bool:
    try:
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return False
    try:
        os.write(fd, f"{os.uname().nodename}:{os.getpid()}".encode())
    finally:
        os.close(fd)
    return True


def _creator_gone(creator: int | None) -> bool:
    """A creation marker's process (see ``_creator``) is not at work: it died, or the marker was
    abandoned half-written. ``None`` (no marker) and this process's own marker are not gone."""
    if creator is None or creator == os.getpid():
        return False
    return not (creator > 0 and alive(creator) or creator < 0)


def _empty(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except FileNotFoundError:
        return False


def unfinished(path: Path) -> bool:
    """Was the creation of this journal killed? A creation marker whose process is gone, or a file of
    0 bytes that no live process is creating (DuckDB writes its headers at once: nothing was ever
    journaled in it). Such a journal reads as one with no executions yet; the next run starts it over."""
    creator = _creator(_marker(path))
    if creator is not None:
        return _creator_gone(creator)
    return _empty(path)


def finish_creation(path: Path) -> None:
    """The new journal is initialised: release the creation marker."""
    try:
        _marker(path).unlink()
    except FileNotFoundError:
        pass


def _opens(path: Path) -> bool:
    duckdb = db.load()

    try:
        check_magic(path)
        duckdb.connect(str(path), read_only=True).close()
    except (JournalError, duckdb.Error):
        return False
    return True


def _start_over(path: Path, marker: Path) -> None:
    """A creator died: claim its marker, and remove a file that never became a database."""
    claimed = marker.with_name(f"{marker.name}.{os.getpid()}")
    try:
        os.rename(marker, claimed)  # only one process wins
    except FileNotFoundError:
        return
    try:
        if path.exists() and not _opens(path):
            logger.warning("zart: %s was left unfinished by a process killed while creating it; "
                           "creating it again", path)
            for leftover in (path, path.with_name(path.name + ".wal")):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
    finally:
        claimed.unlink()


def os_error(path: Path, exc: OSError, doing: str) -> JournalError:
    if exc.errno == errno.EROFS:
        return _refuse(path, f"cannot {doing}: the journal is on a read-only file system. `zart ls` and "
                             "`zart show` can read it; to run, use a journal on writable storage")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return _refuse(path, f"cannot {doing}: permission denied ({exc.filename or path}). `zart ls` and "
                             "`zart show` can read a journal you may not write")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return _refuse(path, f"cannot {doing}: the disk is full (or a size limit was reached: "
                             f"{exc.strerror}); nothing journaled before was lost. Free some space and "
                             "run it again")
    return _refuse(path, f"cannot {doing}: {exc.strerror or exc}")


def describe(path: Path, exc: BaseException, doing: str) -> JournalError:
    """``exc`` (an OSError or a DuckDB error met while ``doing``) as a JournalError that says why."""
    if isinstance(exc, JournalError):
        return exc
    if isinstance(exc, OSError):
        return os_error(path, exc, doing)
    lowered = str(exc).lower()
    for words, code in (("no space left", errno.ENOSPC), ("disk quota exceeded", errno.EDQUOT),
                        ("file too large", errno.EFBIG), ("read-only file system", errno.EROFS),
                        ("permission denied", errno.EACCES)):
        if words in lowered:
            return os_error(path, OSError(code, os.strerror(code)), doing)
    return JournalError(path, f"cannot {doing}: {exc}")


def _duckdb_error(path: Path, message: str) -> JournalError:
    lowered = message.lower()
    if "read-only file system" in lowered:
        return os_error(path, OSError(errno.EROFS, "Read-only file system"), "write the journal")
    if "permission denied" in lowered:
        return os_error(path, OSError(errno.EACCES, "Permission denied"), "open the journal")
    if "no space left" in lowered:
        return os_error(path, OSError(errno.ENOSPC, "No space left on device"), "write the journal")
    return JournalCorrupt(path, f"DuckDB cannot open the file: {message}")


def writable(path: Path) -> bool:
    """Whether this process may write the journal (and create its side files)."""
    folder = path.parent
    if not folder.exists():
        return True
    return os.access(folder, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


def _process_umask() -> int:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


_umask_lock = threading.Lock()
_window_umask: int | None = None  # while ``connect`` narrows the (process-wide) umask: what it was


def umask_for_children() -> int:
    """The umask a process started now should get: this one's, or what it was before ``connect``
    narrowed it to 0o077 for a moment (worker processes start meanwhile, on purpose)."""
    saved = _window_umask
    if saved is not None:
        return saved
    mask = _process_umask()
    saved = _window_umask  # a window opened while we read: ours may be its 0o077
    return mask if saved is None else saved


def connect(given: Path, path: Path, lock_timeout: float, *, read_only: bool = False,
            connecting: Callable[[], None] | None = None) -> tuple[duckdb.DuckDBPyConnection, bool]:
    """Open the database, waiting up to ``lock_timeout`` seconds for another process to release it
    (or to finish creating it). Returns ``(connection, created)``; ``created`` means this process
    created the file and must call :func:`finish_creation` once its schema is in.

    The file is opened once: its contents are checked by the caller before anything is written.
    ``read_only`` opens an existing file without writing (none is created). ``connecting`` is called
    just before DuckDB opens the file (its longest step, which releases the GIL)."""
    duckdb = db.load()

    check_location(given, path)
    if not read_only:
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise os_error(path, exc, f"create the journal's folder {path.parent}") from None
    marker = _marker(path)
    deadline = time.monotonic() + lock_timeout
    announced = False
    while True:
        created = False
        creator = _creator(marker)
        if creator is not None and creator != os.getpid():
            if not _creator_gone(creator):
                owner = f"process {creator} (creating it)" if creator > 0 else "a process creating it"
                announced = _wait(path, owner, deadline, lock_timeout, announced)
                continue
            if read_only:
                raise JournalCorrupt(path, "a process was killed while creating this journal; run any "
                                           "workflow on it (or `zart ls` with write access) to start over")
            _start_over(path, marker)
            continue
        if not path.exists():
            if read_only:
                raise JournalError(path, "no journal file here")
            try:
                claimed = _claim_creation(marker)
            except OSError as exc:
                raise os_error(path, exc, "create the journal") from None
            if not claimed:
                continue  # another process claimed it first: wait for it
            created = True
        else:
            if not read_only and _empty(path):  # no marker: nobody is creating it, and it holds nothing
                if _claim_creation(marker):
                    if _empty(path):
                        logger.warning("zart: %s is an empty file (its creation was killed?); creating the "
                                       "journal in it again", path)
                        for leftover in (path, path.with_name(path.name + ".wal")):
                            with contextlib.suppress(FileNotFoundError):
                                leftover.unlink()
                    finish_creation(path)
                continue
            check_magic(path)
        try:
            if connecting is not None:
                connecting()
            conn = _connect_owner_only(duckdb, path, read_only)
        except duckdb.IOException as exc:
            if created:
                finish_creation(path)
            message = str(exc)
            if "lock" not in message.lower():
                raise _duckdb_error(path, message) from exc
            announced = _wait(path, _owner_from(message), deadline, lock_timeout, announced)
            continue
        except duckdb.Error as exc:
            if created:
                finish_creation(path)
            raise _duckdb_error(path, str(exc)) from exc
        if created:
            os.chmod(path, 0o600)
        return conn, created


def _connect_owner_only(module: ModuleType, path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    """DuckDB creates the file (and its WAL) with the process umask: 0o077 while it opens it."""
    global _window_umask
    with _umask_lock:
        _window_umask = _process_umask()
        old_umask = os.umask(0o077)
        try:
            conn: duckdb.DuckDBPyConnection = module.connect(
                str(path), read_only=read_only,
                config={} if read_only else {"checkpoint_threshold": CHECKPOINT_THRESHOLD})
            return conn
        finally:
            os.umask(old_umask)
            _window_umask = None


def _wait(path: Path, owner: str, deadline: float, lock_timeout: float, announced: bool) -> bool:
    if time.monotonic() >= deadline:
        raise JournalLocked(path, owner, lock_timeout) from None
    if not announced and lock_timeout >= 1:  # a short wait (a monitor's 0.3 s read) says nothing
        logger.warning("zart: journal %s is in use by %s; waiting up to %gs for it to be released...",
                       path, owner, lock_timeout)
    time.sleep(0.05)
    return True


def protect_wal(path: Path) -> None:
    """DuckDB creates the WAL with the process umask; keep it owner-only like the journal."""
    wal = path.with_name(path.name + ".wal")
    try:
        if wal.stat().st_mode & 0o077:
            os.chmod(wal, 0o600)
    except FileNotFoundError:
        pass


def _orphans(conn: duckdb.DuckDBPyConnection) -> list[tuple[str, int, int, str]]:
    """``(execution id, run number, pid, host)`` of every run left ``running`` by a process that is gone."""
    rows = conn.execute("SELECT execution_id, owner_pid, run_number, owner_host FROM executions "
                        "WHERE status = 'running'").fetchall()
    here, me = os.uname().nodename, os.getpid()
    return [(execution_id, run_number, pid, host) for execution_id, pid, run_number, host in rows
            if pid != me and (host != here or not alive(pid))]


def has_orphans(conn: duckdb.DuckDBPyConnection) -> bool:
    """Whether a dead process left an execution ``running``."""
    return bool(_orphans(conn))


def mark_orphans_interrupted(conn: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Executions left ``running`` by a process that is gone (killed) become ``interrupted``, with their
    open run, in one transaction: the run ends ``process died`` at the last moment its process was known
    alive (its last heartbeat or journaled step, whichever is later), so its duration stops growing, and
    the attempts its last heartbeat listed as running become ``interrupted`` step rows, with what they
    had printed. Called after the side log is folded, so every step it finished counts."""
    duckdb = db.load()

    from .schema import rollback

    orphans = _orphans(conn)
    if not orphans:
        return
    conn.execute("BEGIN")
    try:
        for execution_id, run_number, pid, host in orphans:
            _end_dead_run(conn, execution_id, run_number, pid, host)
        conn.execute("COMMIT")
    except duckdb.Error as exc:
        rollback(conn)
        raise JournalCorrupt(path, f"the executions a dead process left running cannot be marked "
                                   f"interrupted: {exc}; nothing was changed") from exc
    except BaseException:
        rollback(conn)
        raise


def _end_dead_run(conn: duckdb.DuckDBPyConnection, execution_id: str, run_number: int, pid: int | None,
                  host: str | None) -> None:
    ids = [execution_id, run_number]
    # The steps it was running: rows of their own, unless a journaled record of this run came after.
    interrupted = conn.execute(
        """SELECT f.step_key, f.name, f.seq, f.def_id, f.args_hash, f.args_preview, f.attempt, f.started_at,
                  f.worker, f.log
           FROM in_flight f WHERE f.execution_id = ? AND f.run_number = ? AND NOT EXISTS (
               SELECT 1 FROM steps s WHERE s.execution_id = f.execution_id AND s.step_key = f.step_key
               AND s.run_number = f.run_number)""", ids).fetchall()
    last_step = conn.execute(
        """SELECT greatest(
               (SELECT max(finished_at) FROM steps WHERE execution_id = ? AND run_number = ?),
               (SELECT max(finished_at) FROM attempts WHERE execution_id = ? AND run_number = ?))""",
        ids + ids).fetchone()
    run = conn.execute("SELECT started_at, alive_at, reused FROM runs WHERE execution_id = ? AND run_number = ?",
                       ids).fetchone()
    started_at, alive_at, reused = run if run is not None else (None, None, 0)
    ended_at = max((t for t in (last_step[0] if last_step else None, alive_at, started_at) if t is not None),
                   default=None)
    for key, name, seq, def_id, args_hash, args_preview, attempt, step_started, worker, log in interrupted:
        conn.execute("UPDATE steps SET current = false WHERE execution_id = ? AND step_key = ? AND current",
                     [execution_id, key])
        conn.execute(
            """INSERT INTO steps (execution_id, step_key, run_number, seq, name, def_id, args_hash, args_preview,
                   status, error, error_type, attempts, reason, current, started_at, finished_at, worker, log)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'interrupted', ?, 'ProcessDied', ?, 'new', true, ?, ?, ?, ?)""",
            [execution_id, key, run_number, seq, name, def_id, args_hash, args_preview,
             "the process running its execution died while it ran", attempt, step_started, ended_at, worker, log])
    if interrupted:
        conn.execute("DELETE FROM step_counts WHERE execution_id = ?", [execution_id])
        conn.execute(
            """INSERT INTO step_counts SELECT execution_id, count(*), count(*) FILTER (WHERE status = 'completed'),
                   count(*) FILTER (WHERE status = 'failed') FROM steps WHERE current AND execution_id = ?
               GROUP BY execution_id""", [execution_id])
    executed = conn.execute("SELECT count(*) FROM steps WHERE execution_id = ? AND run_number = ? "
                            "AND status <> 'interrupted' AND started_at IS NOT NULL", ids).fetchone()
    where = f"pid {pid}" + (f" on {host}" if host and host != os.uname().nodename else "")
    detail = f"the process running it ({where}) died"
    conn.execute("UPDATE executions SET status = 'interrupted', finished_at = ?, error = ? "
                 "WHERE execution_id = ? AND status = 'running'", [ended_at, detail, execution_id])
    conn.execute(
        """UPDATE runs SET status = 'interrupted', finished_at = ?, ended_by = 'process died', end_detail = ?,
               executed = ?, reused = coalesce(?, reused)
           WHERE execution_id = ? AND run_number = ? AND status = 'running'""",
        [ended_at, detail, executed[0] if executed else 0, reused, execution_id, run_number])
    conn.execute("DELETE FROM in_flight WHERE execution_id = ? AND run_number = ?", ids)
