"""The journal: the only module that speaks SQL, and the only code that opens the DuckDB file.

DuckDB locks a file against every other process while one has it open read-write, so a Journal opens
the file when work starts (``hold``) and closes it after a short grace once the last holder leaves,
letting other notebooks, the CLI and the TUI take their turn. Finished steps reach disk through the
fsynced side log first (see ``_sidelog``) and are folded into DuckDB in batches by a writer thread.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, TypeVar

from .._errors import DefinitionNotFound, JournalCorrupt, JournalLocked, JournalSchemaTooNew
from .._records import (
    AttemptRecord,
    ExecutionRecord,
    ExecutionStatus,
    RunRecord,
    StepRecord,
    StepStatus,
)
from .sidelog import SideLog

if TYPE_CHECKING:
    import duckdb  # imported when a journal opens: worker processes never load DuckDB

T = TypeVar("T")
logger = logging.getLogger("zart_nb")

SCHEMA_VERSION = 1
DEFAULT_GRACE = 1.0
FOLD_INTERVAL = 0.05
FOLD_BATCH = 5000

STEP_COLUMNS = (
    "execution_id", "step_key", "run_number", "seq", "name", "def_id", "args", "args_hash",
    "args_preview", "status", "output", "output_preview", "error", "error_type", "traceback",
    "attempts", "reason", "current", "scheduled_at", "started_at", "finished_at", "worker",
)
ATTEMPT_COLUMNS = (
    "execution_id", "step_key", "run_number", "attempt", "status", "error", "traceback",
    "started_at", "finished_at", "worker",
)

_MIGRATIONS: dict[int, list[str]] = {
    1: [
        "CREATE TABLE zart_meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
        """CREATE TABLE definitions (
            def_id VARCHAR PRIMARY KEY, kind VARCHAR, name VARCHAR, source VARCHAR, pickle BLOB,
            created_at DOUBLE)""",
        """CREATE TABLE executions (
            execution_id VARCHAR PRIMARY KEY, workflow VARCHAR, def_id VARCHAR, input BLOB,
            input_hash VARCHAR, input_preview VARCHAR, status VARCHAR, output BLOB, output_preview VARCHAR,
            error VARCHAR, traceback VARCHAR, run_number INTEGER, on_change VARCHAR, created_at DOUBLE,
            started_at DOUBLE, finished_at DOUBLE, owner_pid INTEGER, owner_host VARCHAR)""",
        """CREATE TABLE runs (
            execution_id VARCHAR, run_number INTEGER, status VARCHAR, started_at DOUBLE,
            finished_at DOUBLE, pid INTEGER, executed INTEGER, reused INTEGER)""",
        """CREATE TABLE steps (
            execution_id VARCHAR, step_key VARCHAR, run_number INTEGER, seq INTEGER, name VARCHAR,
            def_id VARCHAR, args BLOB, args_hash VARCHAR, args_preview VARCHAR, status VARCHAR,
            output BLOB, output_preview VARCHAR, error VARCHAR, error_type VARCHAR, traceback VARCHAR,
            attempts INTEGER, reason VARCHAR, current BOOLEAN, scheduled_at DOUBLE, started_at DOUBLE,
            finished_at DOUBLE, worker VARCHAR)""",
        """CREATE TABLE attempts (
            execution_id VARCHAR, step_key VARCHAR, run_number INTEGER, attempt INTEGER, status VARCHAR,
            error VARCHAR, traceback VARCHAR, started_at DOUBLE, finished_at DOUBLE, worker VARCHAR)""",
        "CREATE INDEX executions_status ON executions(status)",
    ],
}


class StoredStep(NamedTuple):
    """What replay needs of a journaled step (its output stays a pickle until asked for)."""

    status: str
    args_hash: str
    def_id: str
    output: bytes | None


@dataclass(slots=True)
class StoredExecution:
    execution_id: str
    workflow: str
    def_id: str
    input: bytes
    input_hash: str
    status: str
    output: bytes | None
    error: str | None
    run_number: int


# Files this process has opened read-write and migrated: re-opening them skips the read-only check
# (which costs a second DuckDB open).
_validated_files: set[tuple[int, int]] = set()


def _identity(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return (stat.st_dev, stat.st_ino)


def _ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value)


def _alive(pid: int | None) -> bool:
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


def _read_schema(conn: duckdb.DuckDBPyConnection, path: Path) -> tuple[set[str], dict[str, str]]:
    """The tables and ``zart_meta`` of a database; refuses a foreign or newer one (names the file)."""
    tables = {row[0] for row in conn.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if not tables:
        return tables, {}
    if "zart_meta" not in tables:
        raise JournalCorrupt(path, "a DuckDB database, but not a zart journal (no zart_meta table; it has "
                                   f"{', '.join(sorted(tables)[:5])}); left untouched")
    meta = dict(conn.execute("SELECT key, value FROM zart_meta").fetchall())
    version = int(meta.get("schema_version", 0))
    if version > SCHEMA_VERSION:
        raise JournalSchemaTooNew(path, f"journal schema version {version} is newer than this zart_nb "
                                        f"understands ({SCHEMA_VERSION}); upgrade zart_nb")
    return tables, meta


def _rollback(conn: duckdb.DuckDBPyConnection) -> None:
    """Roll back if DuckDB has not already (a failed COMMIT ends the transaction itself): the
    error that got us here must surface, not "no transaction is active"."""
    try:
        conn.execute("ROLLBACK")
    except Exception:
        pass


def _held(method: Callable[..., T]) -> Callable[..., T]:
    """Run a Journal method inside ``hold()``: the file is opened if needed and released after the
    grace period, even when the caller never held it (a bare ``zart.journal(p).list_steps(...)``)."""

    @functools.wraps(method)
    def wrapper(self: Journal, *args: object, **kwargs: object) -> T:
        with self.hold():  # cheap when already held: one re-entrant lock, no I/O
            return method(self, *args, **kwargs)

    return wrapper


class Journal:
    """A zart journal file. Thread-safe; every method opens the file if it is not open yet.

    There is one Journal per file per process: ``Journal(path)`` returns the existing one (two
    would both fold the same side log).
    """

    _instances: dict[Path, Journal] = {}
    _initialized: bool
    _instances_lock = threading.Lock()

    def __new__(cls, path: str | os.PathLike[str], **_: object) -> Journal:
        resolved = Path(path).expanduser().resolve()  # symlinks and .. name the same file
        with cls._instances_lock:
            instance = cls._instances.get(resolved)
            if instance is None:
                instance = super().__new__(cls)
                instance._initialized = False
                cls._instances[resolved] = instance
            return instance

    @classmethod
    def instances(cls) -> list[Journal]:
        """Every Journal of this process."""
        with cls._instances_lock:
            return list(cls._instances.values())

    @property
    def identity(self) -> Path:
        """What names this journal's file within the process (the key of live executions)."""
        return self.path

    def __init__(self, path: str | os.PathLike[str], *, lock_timeout: float | None = None,
                 grace: float | None = None) -> None:
        if self._initialized:
            if lock_timeout is not None:
                self.lock_timeout = lock_timeout
            if grace is not None:
                self.grace = grace
            return
        self._initialized = True
        self.path = Path(path).expanduser().resolve()
        self.lock_timeout = (float(os.environ.get("ZART_LOCK_TIMEOUT", "10"))
                             if lock_timeout is None else lock_timeout)
        self.grace = DEFAULT_GRACE if grace is None else grace
        self._lock = threading.RLock()  # the DuckDB connection and open/close
        self._conn: duckdb.DuckDBPyConnection | None = None
        self._ready = False  # open, migrated and recovered: records may go to the side log
        self._control: duckdb.DuckDBPyConnection | None = None
        self._control_lock = threading.Lock()
        self._created = False  # the last open created the file
        self._hold_lock = threading.RLock()
        self._holders = 0
        self._close_timer: threading.Timer | None = None
        self._sidelog = SideLog(self.path.with_name(self.path.name + ".steps.log"))
        # The side log and the rows not yet folded have their own lock, so recording a finished step
        # never waits for a fold (a DuckDB transaction) in progress.
        self._log_lock = threading.Lock()
        self._log_cond = threading.Condition(self._log_lock)
        self._seq = 0
        self._journal_id = ""
        self._unfolded: list[tuple[int, str, tuple]] = []
        self._pending_defs: list[tuple] = []
        self._writer: threading.Thread | None = None
        self._known_defs: set[str] = set()

    # --- ownership -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def hold(self) -> Iterator[Journal]:
        """Keep the file open for the duration (reentrant); closed ``grace`` seconds after the last.

        Only the holder count is locked here (``_hold_lock``), not the connection: taking hold
        never waits for a fold in progress."""
        with self._hold_lock:
            self._holders += 1
            if self._close_timer is not None:
                self._close_timer.cancel()
                self._close_timer = None
        try:
            if not self._ready:
                with self._lock:
                    self._ensure_open()
        except BaseException:
            self._release_hold()
            raise
        try:
            yield self
        finally:
            self._release_hold()

    def _release_hold(self) -> None:
        with self._hold_lock:
            self._holders -= 1
            if self._holders or self._conn is None:
                return
            if self.grace > 0:
                self._close_timer = threading.Timer(self.grace, self._close_if_idle)
                self._close_timer.daemon = True
                self._close_timer.start()
                return
        self._close_if_idle()

    def _close_if_idle(self) -> None:
        with self._hold_lock:  # held throughout: nobody takes hold of a file being closed
            if self._holders == 0:
                self._close_locked()

    def close(self) -> None:
        """Fold what is pending and release the file now."""
        with self._hold_lock:
            self._close_locked()

    def _close_locked(self) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        with self._lock, self._control_lock:
            if self._conn is None:
                return
            with self._log_lock:  # no record may slip in between the last fold and the truncation
                self._queue_pending_defs_locked()
                self._write(self._unfolded)  # on failure the rows stay in memory and in the log
                self._unfolded = []
                self._sidelog.truncate()
                self._sidelog.close()
                self._ready = False
            if self._control is not None:
                self._control.close()
                self._control = None
            self._conn.close()
            self._conn = None
        with self._log_cond:
            self._log_cond.notify_all()

    def _ensure_open(self) -> duckdb.DuckDBPyConnection:
        if self._conn is not None:
            return self._conn
        self._conn = self._connect()
        try:
            self._migrate()
            self._recover_sidelog()
            if not self._created:
                self._mark_orphans_interrupted()
            self._protect_wal()
            _validated_files.add(_identity(self.path))
        except BaseException:
            self._conn.close()
            self._conn = None
            raise
        # A second connection to the same database for starting and ending runs: they never wait
        # for a fold of the writer thread (different tables, so their transactions never conflict).
        self._control = self._conn.cursor()
        self._ready = True
        with self._log_cond:  # the writer clears _writer under this lock as it exits
            if self._writer is None:
                self._writer = threading.Thread(target=self._writer_loop, name="zart-journal-writer",
                                                daemon=True)
                self._writer.start()
        return self._conn

    @contextlib.contextmanager
    def _controlled(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The run-control connection, reopening the file if someone closed it under a holder."""
        while True:
            with self._control_lock:
                if self._control is not None:
                    yield self._control
                    return
            with self._lock:
                self._ensure_open()

    def _connect(self) -> duckdb.DuckDBPyConnection:
        import duckdb

        path = self.path
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        existed = path.exists()
        if existed:
            self._check_file(path)
        deadline = time.monotonic() + self.lock_timeout
        announced = False
        while True:
            try:
                if existed and _identity(path) not in _validated_files:
                    self._check_contents(path)
                old_umask = os.umask(0o077)
                try:
                    conn = duckdb.connect(str(path))
                finally:
                    os.umask(old_umask)
                break
            except duckdb.IOException as exc:
                message = str(exc)
                if "lock" not in message.lower():
                    raise JournalCorrupt(path, f"DuckDB cannot open the file: {message}") from exc
                owner = _owner_from(message)
                if time.monotonic() >= deadline:
                    raise JournalLocked(path, owner, self.lock_timeout) from None
                if not announced:
                    logger.warning("zart: journal %s is in use by %s; waiting up to %.0fs for it to be "
                                   "released...", path, owner, self.lock_timeout)
                    announced = True
                time.sleep(0.05)
            except duckdb.Error as exc:
                raise JournalCorrupt(path, f"DuckDB cannot open the file: {exc}") from exc
        if not existed:
            os.chmod(path, 0o600)
        self._created = not existed
        return conn

    def _protect_wal(self) -> None:
        """DuckDB creates the WAL with the process umask; keep it owner-only like the journal."""
        wal = self.path.with_name(self.path.name + ".wal")
        try:
            if wal.stat().st_mode & 0o077:
                os.chmod(wal, 0o600)
        except FileNotFoundError:
            pass

    @staticmethod
    def _check_file(path: Path) -> None:
        with open(path, "rb") as handle:
            head = handle.read(12)
        if len(head) == 0:
            raise JournalCorrupt(path, "the file is empty, not a DuckDB database; it was left untouched")
        if head[8:12] != b"DUCK":
            raise JournalCorrupt(path, "the file is not a DuckDB database (no DUCK magic bytes); "
                                       "it was left untouched")

    @staticmethod
    def _check_contents(path: Path) -> None:
        """Read-only look at an existing file so a foreign or newer one is refused without a write."""
        import duckdb

        try:
            conn = duckdb.connect(str(path), read_only=True)
        except duckdb.IOException:
            raise
        except duckdb.ConnectionException as exc:
            if "different configuration" in str(exc):
                return  # this process has it open already (another Journal object): validated then
            raise JournalCorrupt(path, f"DuckDB cannot read the file: {exc}") from exc
        except duckdb.Error as exc:
            raise JournalCorrupt(path, f"DuckDB cannot read the file: {exc}") from exc
        try:
            _read_schema(conn, path)
        finally:
            conn.close()

    def _migrate(self) -> None:
        """Create or upgrade the schema: every missing version in one transaction."""
        conn = self._conn
        assert conn is not None
        tables, meta = (set(), {}) if self._created else _read_schema(conn, self.path)
        version = int(meta.get("schema_version", 0))
        if version < SCHEMA_VERSION:
            statements = [statement for target in range(version + 1, SCHEMA_VERSION + 1)
                          for statement in _MIGRATIONS[target]]
            meta.setdefault("journal_id", uuid.uuid4().hex)
            meta.setdefault("folded_seq", "0")
            meta["schema_version"] = str(SCHEMA_VERSION)
            conn.execute("BEGIN")
            try:
                for statement in statements:
                    conn.execute(statement)
                conn.execute("DELETE FROM zart_meta WHERE key IN ('schema_version', 'journal_id', "
                             "'folded_seq')")
                conn.execute("INSERT INTO zart_meta VALUES ('schema_version', ?), ('journal_id', ?), "
                             "('folded_seq', ?)",
                             [meta["schema_version"], meta["journal_id"], meta["folded_seq"]])
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
        self._journal_id = meta["journal_id"]
        known = {r[0] for r in conn.execute("SELECT def_id FROM definitions").fetchall()} if tables else set()
        with self._log_lock:
            self._seq = int(meta["folded_seq"])
            self._known_defs = known
            self._pending_defs = []

    # --- side log and folding --------------------------------------------------------------------

    def _recover_sidelog(self) -> None:
        """Fold what a previous owner (or this process before a release) left in the side log.

        Only a log written for this very database counts (its first frame names the journal id):
        the log of a deleted or replaced journal file is set aside, never folded into a new one."""
        with self._log_lock:
            records = list(self._sidelog.read())
            if records and records[0][1:] != ("h", (self._journal_id,)):
                aside = self._sidelog.path.with_name(self._sidelog.path.name + ".orphaned")
                os.replace(self._sidelog.path, aside)
                logger.warning("zart: %s belongs to another journal file; moved it to %s",
                               self._sidelog.path, aside)
                records = []
            leftover = [record for record in records[1:] if record[0] > self._seq]
            self._write(leftover)  # on failure the log stays as it is, for the next open
            if leftover:
                self._seq = leftover[-1][0]
            self._unfolded = []
            self._sidelog.truncate()

    @_held
    def record(self, steps: Sequence[tuple] = (), attempts: Sequence[tuple] = (),
               supersede: Sequence[tuple[str, str]] = ()) -> None:
        """Make finished steps (rows in ``STEP_COLUMNS`` order) and failed attempts durable now.

        ``supersede`` lists ``(execution_id, step_key)`` whose older records stop being current; it is
        applied before the rows given with it. Durable when this returns (fsynced side log); folded
        into DuckDB within ``FOLD_INTERVAL`` by the writer thread.
        """
        if not self._ready:
            with self._lock:
                self._ensure_open()
        with self._log_cond:
            records: list[tuple[int, str, tuple]] = []
            definitions, self._pending_defs = self._pending_defs, []
            for kind, rows in (("d", definitions), ("x", supersede), ("a", attempts), ("s", steps)):
                for row in rows:
                    self._seq += 1
                    records.append((self._seq, kind, tuple(row)))
            if not records:
                return
            self._sidelog.append(records, header=(0, "h", (self._journal_id,)))
            was_empty = not self._unfolded
            self._unfolded.extend(records)
            if was_empty or len(self._unfolded) >= FOLD_BATCH:
                self._log_cond.notify_all()

    def flush(self) -> None:
        """Fold everything pending into DuckDB now."""
        with self._lock:
            if self._conn is not None:
                self._fold_locked()

    def _writer_loop(self) -> None:
        """Fold pending rows ``FOLD_INTERVAL`` after the first arrives (or at ``FOLD_BATCH`` rows)."""
        while True:
            with self._log_cond:
                while not self._unfolded and self._conn is not None:
                    self._log_cond.wait(timeout=1.0)
                if self._conn is None:
                    self._writer = None
                    return
                deadline = time.monotonic() + FOLD_INTERVAL
                while len(self._unfolded) < FOLD_BATCH and self._conn is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._log_cond.wait(remaining)
            try:
                self.flush()
            except Exception as exc:  # the rows stay in the side log and in memory; retried
                logger.warning("zart: folding the side log into %s failed: %s", self.path, exc)
                time.sleep(1.0)

    def _fold_locked(self, also: Callable[[duckdb.DuckDBPyConnection], None] | None = None) -> None:
        """Write pending rows (and ``also``) into DuckDB in one transaction (caller holds ``_lock``)."""
        with self._log_lock:
            records, self._unfolded = self._unfolded, []
        try:
            self._write(records, also)
        except BaseException:
            with self._log_lock:
                self._unfolded = records + self._unfolded
            raise

    def _write(self, records: list[tuple[int, str, tuple]],
               also: Callable[[duckdb.DuckDBPyConnection], None] | None = None) -> None:
        """Fold ``records`` (and run ``also``) in one transaction."""
        if not records and also is None:
            return
        conn = self._conn
        assert conn is not None
        conn.execute("BEGIN")
        try:
            steps: list[tuple] = []
            attempts: list[tuple] = []
            for _, kind, row in records:
                if kind == "x":
                    self._append(conn, steps, attempts)
                    steps, attempts = [], []
                    conn.execute("UPDATE steps SET current = false WHERE execution_id = ? AND step_key = ?",
                                 list(row))
                elif kind == "s":
                    steps.append(row)
                elif kind == "d":
                    conn.execute("INSERT OR IGNORE INTO definitions VALUES (?, ?, ?, ?, ?, ?)", list(row))
                else:
                    attempts.append(row)
            self._append(conn, steps, attempts)
            if records:
                conn.execute("UPDATE zart_meta SET value = ? WHERE key = 'folded_seq'",
                             [str(records[-1][0])])
            if also is not None:
                also(conn)
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
        self._protect_wal()

    @staticmethod
    def _append(conn: duckdb.DuckDBPyConnection, steps: list[tuple], attempts: list[tuple]) -> None:
        if steps:
            appender = conn.appender("steps", columns=list(STEP_COLUMNS))
            appender.append_rows(steps)
            appender.flush()
        if attempts:
            appender = conn.appender("attempts", columns=list(ATTEMPT_COLUMNS))
            appender.append_rows(attempts)
            appender.flush()

    # --- definitions -----------------------------------------------------------------------------

    def save_definition(self, def_id: str, kind: str, name: str, source: str, pickle: bytes) -> None:
        """Journal a definition once per code hash. It travels with the next recorded step (no
        commit of its own): a definition matters only once a step that used it is journaled."""
        with self._log_lock:
            if def_id in self._known_defs:
                return
            self._known_defs.add(def_id)
            self._pending_defs.append((def_id, kind, name, source, pickle, time.time()))

    def _queue_pending_defs_locked(self) -> None:
        for row in self._pending_defs:
            self._seq += 1
            self._unfolded.append((self._seq, "d", row))
        self._pending_defs = []

    @_held
    def has_definition(self, def_id: str) -> bool:
        return def_id in self._known_defs

    @_held
    def load_definition(self, def_id: str) -> tuple[str, str, bytes]:
        """``(kind, name, pickle)`` of a stored definition."""
        with self._lock:
            row = self._ensure_open().execute(
                "SELECT kind, name, pickle FROM definitions WHERE def_id = ?", [def_id]).fetchone()
        if row is None:
            raise DefinitionNotFound(f"the journal {self.path} holds no definition {def_id!r}")
        return row[0], row[1], row[2]

    @_held
    def list_definitions(self) -> list[tuple[str, str, str, str]]:
        """``(def_id, kind, name, source)`` of every journaled definition (no pickle is read)."""
        with self._lock:
            conn = self._ensure_open()
            self._fold_locked()
            return conn.execute("SELECT def_id, kind, name, source FROM definitions "
                                "ORDER BY kind, name").fetchall()

    @_held
    def get_execution(self, execution_id: str) -> StoredExecution | None:
        with self._controlled() as control:
            row = control.execute(
                """SELECT execution_id, workflow, def_id, input, input_hash, status, output, error,
                          run_number FROM executions WHERE execution_id = ?""", [execution_id]).fetchone()
        return None if row is None else StoredExecution(*row)

    @_held
    def begin_run(self, execution_id: str, workflow: str, def_id: str, input: bytes, input_hash: str,
                  input_preview: str, on_change: str, definition: tuple | None = None) -> int:
        """Mark the execution running under this process and open its next run; returns its number.

        ``definition`` (``def_id, kind, name, source, pickle``), the workflow's, is made durable
        first (side log, fsynced), so ``zart resume`` always finds it; it reaches DuckDB with the
        next fold, like step definitions (one writer of ``definitions``: no commit conflicts)."""
        now = time.time()
        if definition is not None:  # durable in the side log before the run exists
            self.save_definition(*definition)
            self.record()
        with self._controlled() as conn:
            conn.execute("BEGIN")
            try:
                row = conn.execute("SELECT run_number FROM executions WHERE execution_id = ?",
                                   [execution_id]).fetchone()
                run_number = (row[0] if row else 0) + 1
                # A plain INSERT or UPDATE: DuckDB's upsert (ON CONFLICT) costs ~5x more here.
                if row is None:
                    conn.execute(
                        """INSERT INTO executions (execution_id, workflow, def_id, input, input_hash,
                               input_preview, status, run_number, on_change, created_at, started_at,
                               owner_pid, owner_host)
                           VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?)""",
                        [execution_id, workflow, def_id, input, input_hash, input_preview, run_number,
                         on_change, now, now, os.getpid(), os.uname().nodename])
                else:
                    conn.execute(
                        """UPDATE executions SET workflow = ?, def_id = ?, input = ?, input_hash = ?,
                               input_preview = ?, status = 'running', output = NULL,
                               output_preview = NULL, error = NULL, traceback = NULL, run_number = ?,
                               on_change = ?, started_at = ?, finished_at = NULL, owner_pid = ?,
                               owner_host = ?
                           WHERE execution_id = ?""",
                        [workflow, def_id, input, input_hash, input_preview, run_number, on_change,
                         now, os.getpid(), os.uname().nodename, execution_id])
                conn.execute("INSERT INTO runs VALUES (?, ?, 'running', ?, NULL, ?, 0, 0)",
                             [execution_id, run_number, now, os.getpid()])
                conn.execute("COMMIT")
                self._protect_wal()
            except BaseException:
                _rollback(conn)
                raise
        return run_number

    @_held
    def finish_run(self, execution_id: str, run_number: int, status: ExecutionStatus,
                   output: bytes | None = None, output_preview: str | None = None,
                   error: str | None = None, traceback: str | None = None,
                   executed: int = 0, reused: int = 0) -> None:
        """Record how the run ended.

        Its steps need not be folded first: they are durable in the side log, and every reader of
        this process folds before reading, as does the release of the file to other processes."""
        now = time.time()

        def record_end(conn: duckdb.DuckDBPyConnection) -> None:
            conn.execute(
                """UPDATE executions SET status = ?, output = ?, output_preview = ?, error = ?,
                       traceback = ?, finished_at = ? WHERE execution_id = ?""",
                [status.value, output, output_preview, error, traceback, now, execution_id])
            conn.execute(
                """UPDATE runs SET status = ?, finished_at = ?, executed = ?, reused = ?
                   WHERE execution_id = ? AND run_number = ?""",
                [status.value, now, executed, reused, execution_id, run_number])

        with self._log_lock:  # definitions not yet carried by a step still belong in the journal
            self._queue_pending_defs_locked()
            if self._unfolded:
                self._log_cond.notify_all()
        with self._controlled() as conn:
            conn.execute("BEGIN")
            try:
                record_end(conn)
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise

    @_held
    def set_status(self, execution_id: str, status: ExecutionStatus) -> None:
        """Set an execution's status outside of a run (e.g. cancel an interrupted one)."""
        with self._controlled() as control:
            control.execute(
                "UPDATE executions SET status = ?, finished_at = coalesce(finished_at, ?) "
                "WHERE execution_id = ?", [status.value, time.time(), execution_id])

    # --- steps -----------------------------------------------------------------------------------

    @_held
    def load_steps(self, execution_id: str) -> dict[str, StoredStep]:
        """The current record of every journaled step of an execution, by step key."""
        with self._lock:
            conn = self._ensure_open()
            self._fold_locked()
            rows = conn.execute(
                """SELECT step_key, status, args_hash, def_id, output
                   FROM steps WHERE execution_id = ? AND current""", [execution_id]).fetchall()
        make = StoredStep._make
        return {row[0]: make(row[1:]) for row in rows}

    # --- listings for the CLI, widget and TUI (no pickle is read) --------------------------------

    @_held
    def list_executions(self, status: str | None = None, limit: int = 200,
                        execution_id: str | None = None, *, offset: int = 0,
                        search: str | None = None) -> list[ExecutionRecord]:
        """Executions, newest first, with their current step counts (no pickle is read)."""
        filters: list[str] = []
        params: list[object] = []
        if status:
            filters.append("e.status = ?")
            params.append(str(status))
        if search:
            filters.append("(contains(lower(e.execution_id), ?) OR contains(lower(e.workflow), ?))")
            params += [search.lower(), search.lower()]
        if execution_id is not None:
            filters.append("e.execution_id = ?")
            params.append(execution_id)
        where = f"WHERE {' AND '.join(filters)}" if filters else ""
        step_filter = "AND execution_id = ?" if execution_id is not None else ""
        with self._lock:
            conn = self._ensure_open()
            self._fold_locked()
            rows = conn.execute(
                f"""SELECT e.execution_id, e.workflow, e.status, e.run_number, e.input_preview,
                           e.output_preview, e.error, e.traceback, e.created_at, e.started_at,
                           e.finished_at, e.owner_pid,
                           coalesce(s.total, 0), coalesce(s.done, 0), coalesce(s.failed, 0)
                    FROM executions e LEFT JOIN (
                        SELECT execution_id, count(*) AS total,
                               count(*) FILTER (WHERE status = 'completed') AS done,
                               count(*) FILTER (WHERE status = 'failed') AS failed
                        FROM steps WHERE current {step_filter} GROUP BY execution_id
                    ) s USING (execution_id)
                    {where} ORDER BY e.created_at DESC, e.execution_id LIMIT {int(limit)}
                    OFFSET {int(offset)}""",
                ([execution_id] if execution_id is not None else []) + params).fetchall()
        return [ExecutionRecord(r[0], r[1], ExecutionStatus(r[2]), r[3], r[4], r[5], r[6], r[7],
                                _ts(r[8]), _ts(r[9]), _ts(r[10]), r[11], r[12], r[13], r[14])
                for r in rows]

    def execution_record(self, execution_id: str) -> ExecutionRecord | None:
        records = self.list_executions(limit=1, execution_id=execution_id)
        return records[0] if records else None

    @_held
    def stats(self) -> dict[ExecutionStatus, int]:
        """How many executions are in each status."""
        with self._lock:
            rows = self._ensure_open().execute(
                "SELECT status, count(*) FROM executions GROUP BY status").fetchall()
        return {ExecutionStatus(status): count for status, count in rows}

    @_held
    def list_steps(self, execution_id: str, current_only: bool = True, *, offset: int = 0,
                   limit: int | None = None) -> list[StepRecord]:
        page = f"LIMIT {int(limit)} OFFSET {int(offset)}" if limit is not None else f"OFFSET {int(offset)}"
        with self._lock:
            conn = self._ensure_open()
            self._fold_locked()
            rows = conn.execute(
                f"""SELECT execution_id, step_key, name, seq, status, run_number, reason, attempts,
                           args_preview, output_preview, error, traceback, scheduled_at, started_at,
                           finished_at, worker
                    FROM steps WHERE execution_id = ? {"AND current" if current_only else ""}
                    ORDER BY run_number, seq {page}""", [execution_id]).fetchall()
        return [StepRecord(r[0], r[1], r[2], r[3], StepStatus(r[4]), r[5], r[6], r[7], r[8], r[9],
                           r[10], r[11], _ts(r[12]), _ts(r[13]), _ts(r[14]), r[15]) for r in rows]

    @_held
    def list_attempts(self, execution_id: str, step_key: str | None = None) -> list[AttemptRecord]:
        with self._lock:
            conn = self._ensure_open()
            self._fold_locked()
            rows = conn.execute(
                f"""SELECT execution_id, step_key, run_number, attempt, status, error, traceback,
                           started_at, finished_at, worker FROM attempts WHERE execution_id = ?
                    {"AND step_key = ?" if step_key else ""} ORDER BY run_number, step_key, attempt""",
                [execution_id, step_key] if step_key else [execution_id]).fetchall()
        return [AttemptRecord(r[0], r[1], r[2], r[3], StepStatus(r[4]), r[5], r[6], _ts(r[7]),
                              _ts(r[8]), r[9]) for r in rows]

    @_held
    def list_runs(self, execution_id: str) -> list[RunRecord]:
        with self._lock:
            rows = self._ensure_open().execute(
                """SELECT execution_id, run_number, status, started_at, finished_at, pid, executed,
                          reused FROM runs WHERE execution_id = ? ORDER BY run_number""",
                [execution_id]).fetchall()
        return [RunRecord(r[0], r[1], ExecutionStatus(r[2]), _ts(r[3]), _ts(r[4]), r[5], r[6], r[7])
                for r in rows]

    def _mark_orphans_interrupted(self) -> None:
        """Executions left ``running`` by a process that is gone (killed) become ``interrupted``."""
        conn = self._conn
        assert conn is not None
        rows = conn.execute("SELECT execution_id, owner_pid, run_number, owner_host FROM executions "
                            "WHERE status = 'running'").fetchall()
        for execution_id, pid, run_number, host in rows:
            if pid != os.getpid() and (host != os.uname().nodename or not _alive(pid)):
                conn.execute("UPDATE executions SET status = 'interrupted' WHERE execution_id = ?",
                             [execution_id])
                conn.execute("UPDATE runs SET status = 'interrupted' WHERE execution_id = ? "
                             "AND run_number = ? AND status = 'running'", [execution_id, run_number])
