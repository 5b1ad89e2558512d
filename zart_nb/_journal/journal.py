"""The journal: who holds the file, and every write to it.

DuckDB locks a file against every other process while one has it open read-write, so a Journal opens
the file when work starts (``hold``) and closes it after a short grace once the last holder leaves,
letting other notebooks, the CLI and the TUI take their turn. Finished steps reach disk through the
fsynced side log first (see ``sidelog``) and are folded into DuckDB in batches by a writer thread
(the transaction itself is ``fold``'s; when to fold, and under which lock, is decided here).

Opening the file is ``file``'s job, the tables ``schema``'s, the record reads ``queries``', and the SQL of
run control ``runs``' (the methods here that begin, end or beat a run hold the file, choose the connection
and the transaction, and call it); the reads here that return pickles say so in their names
(``pickled_*``): only replay and resume use them.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeVar

from .._errors import DefinitionNotFound, JournalError
from .._status import ExecutionStatus, RunEnd, RunTrigger, StepStatus
from . import db, file, fold, retention, runs, schema
from .runs import RunBeat
from .schema import (
    SCHEMA_VERSION,
    AttemptRow,
    DefinitionRow,
    StepRow,
    in_transaction,
    migrate,
    read_schema,
    rollback,
)
from .sidelog import Record, SideLog, Tag

if TYPE_CHECKING:
    import duckdb  # imported when a journal opens: worker processes never load DuckDB

T = TypeVar("T")
logger = logging.getLogger("zart_nb")

DEFAULT_GRACE = 1.0
FOLD_INTERVAL = 0.05
FOLD_BATCH = 5000


class StoredStep(NamedTuple):
    """What replay needs of a journaled step (its output stays a pickle until asked for)."""

    # "redo": a control action runs it again; "fail again": a retry of another step does not (engine's copy only)
    status: StepStatus | Literal["redo", "fail again"]
    args_hash: str
    def_id: str
    output: bytes | None


@dataclass(slots=True)
class StoredExecution:
    """An execution as replay and resume need it: ``input`` and ``output`` are pickles."""

    execution_id: str
    workflow: str
    def_id: str
    input: bytes
    input_hash: str
    status: ExecutionStatus
    output: bytes | None
    error: str | None
    run_number: int


_STEP_STATUSES = {status.value: status for status in StepStatus}
# A record's kind as written to the side log: a Tag's plain value (a member would make every append
# take the side log's slow path, which converts subclasses of plain types)
_HEADER, _DEFINITION, _SUPERSEDE, _ATTEMPT, _STEP = (
    Tag.HEADER.value, Tag.DEFINITION.value, Tag.SUPERSEDE.value, Tag.ATTEMPT.value, Tag.STEP.value)


# What a method does, for an error that names it ("cannot read the journaled steps: ...")
_DOING = {"pickled_steps": "read the journaled steps", "pickled_execution": "read the journaled execution",
          "step_code_hashes": "read the journaled steps"}


def _held(method: Callable[..., T]) -> Callable[..., T]:
    """Run a Journal method inside ``hold()``: the file is opened if needed and released after the
    grace period, even when the caller never held it."""

    @functools.wraps(method)
    def wrapper(self: Journal, *args: object, **kwargs: object) -> T:
        try:
            with self.hold():  # cheap when already held: one re-entrant lock, no I/O
                return method(self, *args, **kwargs)
        except JournalError:
            raise
        except Exception as exc:
            duckdb = db.load()

            if isinstance(exc, (OSError, duckdb.Error)):  # disk full, storage gone: say so
                doing = _DOING.get(method.__name__) or method.__name__.replace("_", " ")
                raise file.describe(self.path, exc, doing) from exc
            raise

    return wrapper


class Journal:
    """A zart journal file. Thread-safe; every method opens the file if it is not open yet.

    A process must have one Journal per file, whatever path names it (a symlink, a hard link, a bind
    mount): two would both fold the same side log and two DuckDB instances would write one file. The
    runtime keeps that registry (``runtime.journal(path)``, its one front door, builds each journal
    whole under one lock): construct a Journal only there.
    """

    def __init__(self, path: str | os.PathLike[str], *, lock_timeout: float | None = None,
                 grace: float | None = None) -> None:
        self.lock_timeout = file.lock_timeout(lock_timeout)
        self._given = Path(path).expanduser()
        self.path = self._given.resolve()  # symlinks and .. name the same file
        found = file.identity(self.path)
        self._identity: object = found if found is not None else self.path
        self.grace = DEFAULT_GRACE if grace is None else grace
        self._lock = threading.RLock()  # the DuckDB connection and open/close
        self._conn: duckdb.DuckDBPyConnection | None = None
        self._ready = False  # open read-write, migrated and recovered: records may go to the side log
        self._read_only = False  # the open connection is read-only (a reader's)
        self._opened: tuple[int, int] | None = None  # the identity of the file opened read-write
        self._control: duckdb.DuckDBPyConnection | None = None
        self._control_lock = threading.Lock()
        self._hold_lock = threading.RLock()
        self._holders = 0
        self._close_timer: threading.Timer | None = None
        self._on_release: list[Callable[[], None]] = []
        self._sidelog = SideLog(self.path.with_name(self.path.name + ".steps.log"))
        # The side log and the rows not yet folded have their own lock, so recording a finished step
        # never waits for a fold (a DuckDB transaction) in progress.
        self._log_lock = threading.Lock()
        self._log_cond = threading.Condition(self._log_lock)
        self._seq = 0
        self._journal_id = ""
        self._unfolded: list[Record] = []
        self._pending_defs: list[DefinitionRow] = []
        self._writer: threading.Thread | None = None
        self._known_defs: set[str] = set()

    def configure(self, *, lock_timeout: float | None = None, grace: float | None = None) -> None:
        """Change how long to wait for another process's lock, or the grace before release."""
        if lock_timeout is not None:
            self.lock_timeout = file.lock_timeout(lock_timeout)
        if grace is not None:
            self.grace = grace

    @property
    def identity(self) -> object:
        """What names this journal's file within the process, whatever path reached it (the key of
        live executions): its ``(device, inode)``, or its path if it did not exist yet."""
        return self._identity

    @property
    def journal_id(self) -> str:
        """The id this journal's file was created with (kept when the file is copied or moved); empty
        until the file was opened in this process."""
        return self._journal_id

    def __repr__(self) -> str:
        return f"<Journal {self.path}>"

    @property
    def is_open(self) -> bool:
        """Open read-write in this process (held, or within its grace period): taking hold is free."""
        return self._ready

    # --- ownership -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def hold(self, *, write: bool = True, connecting: Callable[[], None] | None = None) -> Iterator[Journal]:
        """Keep the file open for the duration (reentrant); closed ``grace`` seconds after the last.

        ``write=False`` (readers) is content with a read-only open, which also reads an archived
        journal on read-only storage; a writer reopens the file read-write. Only the holder count is
        locked here (``_hold_lock``), not the connection: taking hold never waits for a fold.
        ``connecting`` is called as DuckDB starts opening the file, if this opens it."""
        with self._hold_lock:
            self._holders += 1
            if self._close_timer is not None:
                self._close_timer.cancel()
                self._close_timer = None
        try:
            if not self._ready if write else self._conn is None:
                with self._lock:
                    self._ensure_open(write=write, connecting=connecting)
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
        try:
            with self._hold_lock:  # held throughout: nobody takes hold of a file being closed
                if self._holders == 0:
                    self._close_locked()
        except Exception as exc:  # a timer thread: say it, never leave an unhandled exception
            logger.error("zart: releasing the journal %s failed: %s (its records stay in the side log; "
                         "they are folded when it is opened next)", self.path, exc)

    def close(self) -> None:
        """Fold what is pending and release the file now."""
        with self._hold_lock:
            self._close_locked()

    def on_release(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once, as this process next releases the file (the monitor stops serving)."""
        with self._hold_lock:
            self._on_release.append(callback)

    @contextlib.contextmanager
    def borrow(self) -> Iterator[duckdb.DuckDBPyConnection | None]:
        """A cursor of its own on the open file, lent only while someone else holds it: None (and
        nothing held) when the file is closed or idle. The monitor reads through this, so a client
        never opens or keeps the file. Folded rows only: call :meth:`fold_pending` first to see the
        steps finished in the last ``FOLD_INTERVAL``."""
        cursor = None
        with self._hold_lock:
            if self._holders > 0 and self._ready and self._conn is not None:
                self._holders += 1
                cursor = self._conn.cursor()
        try:
            yield cursor
        finally:
            if cursor is not None:
                cursor.close()
                self._release_hold()

    def _close_locked(self) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        callbacks, self._on_release = self._on_release, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                logger.exception("zart: a release callback of %s failed", self.path)
        with self._lock, self._control_lock:
            if self._conn is None:
                return
            if not self._read_only:
                with self._log_lock:  # no record may slip in between the last fold and the truncation
                    self._queue_pending_defs_locked()
                    try:
                        self._write(self._unfolded)
                    except Exception as exc:  # still durable in the side log: folded at the next open
                        logger.error("zart: %s", file.describe(self.path, exc, "fold the side log into the "
                                     "journal while releasing it; its records stay in the side log and "
                                     "are folded when the journal is opened next"))
                    else:
                        self._sidelog.truncate()
                    self._unfolded = []
                    self._sidelog.close()
                    self._ready = False
            if self._control is not None:
                self._control.close()
                self._control = None
            self._conn.close()
            self._conn = None
            self._opened = None
        with self._log_cond:
            self._log_cond.notify_all()

    def _ensure_open(self, *, write: bool = True,
                     connecting: Callable[[], None] | None = None) -> duckdb.DuckDBPyConnection:
        """The connection, opened if needed (caller holds ``_lock``). A reader gets a read-only one
        unless there is recovery to do (a side log to fold, runs to mark interrupted, a schema to
        upgrade) and the file may be written."""
        if self._conn is not None:
            if not write or not self._read_only:
                return self._conn
            self._conn.close()  # a read-only open; writing needs the file read-write
            self._conn = None
        if not write and self.path.exists() and not self._sidelog_pending():
            conn = self._open_for_reading()
            if conn is not None:
                return conn
        return self._open_for_writing(connecting)

    def _sidelog_pending(self) -> bool:
        try:
            return self._sidelog.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def _open_for_reading(self) -> duckdb.DuckDBPyConnection | None:
        """A read-only connection, or ``None`` when a read-write open should recover the file first."""
        conn, _ = file.connect(self._given, self.path, self.lock_timeout, read_only=True)
        try:
            meta = read_schema(conn, self.path)
            recover = (not meta or int(meta["schema_version"]) < SCHEMA_VERSION
                       or file.has_orphans(conn))
        except BaseException:
            conn.close()
            raise
        if recover and file.writable(self.path):
            conn.close()
            return None
        if self._sidelog_pending() or recover:
            logger.warning("zart: the journal %s is read-only here and was not recovered (its side log "
                           "or interrupted runs are not shown as such)", self.path)
        self._conn, self._read_only = conn, True
        self._journal_id = meta.get("journal_id", self._journal_id)
        return conn

    def _open_for_writing(self, connecting: Callable[[], None] | None = None) -> duckdb.DuckDBPyConnection:
        conn, created = file.connect(self._given, self.path, self.lock_timeout, connecting=connecting)
        try:
            # Checked on the one connection before anything is written: a foreign, damaged or newer
            # file is closed untouched. What it holds, not whether it existed, says if it is new: a
            # second process creating it at the same moment finds the first one's tables.
            meta = {} if created else read_schema(conn, self.path)  # created: empty, and ours alone
            self._conn, self._read_only = conn, False
            self._adopt(migrate(conn, meta), fresh=not meta)
            if created:
                file.finish_creation(self.path)
            self._recover_sidelog()
            if meta:
                file.mark_orphans_interrupted(conn, self.path)
            file.protect_wal(self.path)
        except BaseException as exc:
            self._conn = None
            conn.close()
            if created:
                file.finish_creation(self.path)
            if isinstance(exc, (OSError, db.load().Error)):  # disk full folding the side log: say so
                raise file.describe(self.path, exc, "open the journal (folding the steps the last run left "
                                    "in its side log)") from exc
            raise
        self._opened = file.identity(self.path)
        # A second connection to the same database for starting and ending runs: they never wait
        # for a fold of the writer thread (different tables, so their transactions never conflict).
        self._control = conn.cursor()
        self._ready = True
        with self._log_cond:  # the writer clears _writer under this lock as it exits
            if self._writer is None:
                self._writer = threading.Thread(target=self._writer_loop, name="zart-journal-writer",
                                                daemon=True)
                self._writer.start()
        return conn

    def _check_still_there(self, doing: str) -> None:
        """Refuse to go on when the open file was deleted or replaced under this process (its DuckDB
        instance would write to a file no one can read any more)."""
        if self._opened is not None and file.identity(self.path) != self._opened:
            raise JournalError(self.path, f"the journal file was deleted or replaced while it was open; "
                                          f"{doing}. Runs recorded since are lost with the deleted file")

    def _adopt(self, meta: dict[str, str], *, fresh: bool) -> None:
        conn = self._conn
        assert conn is not None
        self._journal_id = meta["journal_id"]
        known = set() if fresh else {r[0] for r in conn.execute("SELECT def_id FROM definitions").fetchall()}
        with self._log_lock:
            self._seq = int(meta["folded_seq"])
            self._known_defs = known
            self._pending_defs = []

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

    # --- reads -----------------------------------------------------------------------------------

    def query(self, read: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``read(connection, *args, **kwargs)`` (one of ``queries``) on the journal with every
        record of this process folded in first; a read-only open is enough. A journal whose creation
        was killed (``file.unfinished``) reads as one with no executions yet, and is left as it is."""
        if self._conn is None and file.unfinished(self.path):
            empty = schema.empty()
            try:
                return read(empty, *args, **kwargs)
            finally:
                empty.close()
        with self.hold(write=False), self._lock:
            conn = self._ensure_open(write=False)
            if not self._read_only:
                self._fold_locked()
            return read(conn, *args, **kwargs)

    # --- side log and folding --------------------------------------------------------------------

    def _header(self) -> Record:
        return (0, _HEADER, (self._journal_id,))

    def _recover_sidelog(self) -> None:
        """Fold what a previous owner (or this process before a release) left in the side log.

        Only a log written for this very database counts (its first frame names the journal id, and
        nothing after it is decoded otherwise): the log of a deleted or replaced journal file is set
        aside, never folded into a new one. A log damaged in the middle is folded past the damage (the
        reader resynchronises on the next intact frame) and kept aside as evidence."""
        with self._log_lock:
            contents = self._sidelog.read(self._header())
            if contents.foreign or contents.damage is not None:
                fold.set_aside(self._sidelog.path, contents)
            leftover = [record for record in contents.records if record[0] > self._seq]
            self._write(leftover)  # on failure the log stays as it is, for the next open
            if leftover:
                self._seq = leftover[-1][0]
            self._unfolded = []
            self._sidelog.truncate()

    @_held
    def record(self, steps: Sequence[StepRow] = (), attempts: Sequence[AttemptRow] = (),
               supersede: Sequence[tuple[str, str]] = ()) -> None:
        """Make finished steps and failed attempts durable now.

        ``supersede`` lists ``(execution_id, step_key)`` whose older records stop being current; it is
        applied before the rows given with it. Durable when this returns (fsynced side log); folded
        into DuckDB within ``FOLD_INTERVAL`` by the writer thread.
        """
        if not self._ready:
            with self._lock:
                self._ensure_open()
        with self._log_cond:
            records: list[Record] = []
            definitions, self._pending_defs = self._pending_defs, []
            for kind, rows in ((_DEFINITION, definitions), (_SUPERSEDE, supersede), (_ATTEMPT, attempts),
                               (_STEP, steps)):
                for row in rows:
                    self._seq += 1
                    records.append((self._seq, kind, tuple(row)))
            if not records:
                return
            try:
                self._sidelog.append(records, header=self._header())
            except OSError as exc:
                self._seq -= len(records)
                raise file.os_error(self._sidelog.path, exc, "record finished steps") from exc
            was_empty = not self._unfolded
            self._unfolded.extend(records)
            if was_empty or len(self._unfolded) >= FOLD_BATCH:
                self._log_cond.notify_all()

    def flush(self) -> None:
        """Fold everything pending into DuckDB now."""
        with self._lock:
            if self._conn is not None:
                self._fold_locked()

    def fold_pending(self) -> None:
        """For a reader that must see every step recorded so far: fold now when rows are pending (the
        fold the writer thread would do within ``FOLD_INTERVAL``, done earlier), else nothing. A fold
        that fails is left to the writer thread, which retries and warns; the read goes on."""
        if not self._unfolded:  # read without the lock: rows recorded after this are newer than the read
            return
        try:
            self.flush()
        except Exception:
            logger.debug("zart: folding before a monitor read failed", exc_info=True)

    def _writer_loop(self) -> None:
        """Fold pending rows ``FOLD_INTERVAL`` after the first arrives (or at ``FOLD_BATCH`` rows)."""
        warned_gone = False
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
                self._check_still_there("the steps folded since were written to the deleted file")
            except JournalError as exc:
                if not warned_gone:
                    logger.error("zart: %s", exc)
                    warned_gone = True
            except Exception as exc:  # the rows stay in the side log and in memory; retried
                logger.warning("zart: %s", file.describe(self.path, exc, "fold the side log into the "
                               "journal; retrying (the steps are safe in the side log)"))
                time.sleep(1.0)

    def _fold_locked(self) -> None:
        """Write pending rows into DuckDB in one transaction (caller holds ``_lock``)."""
        with self._log_lock:
            records, self._unfolded = self._unfolded, []
        try:
            self._write(records)
        except BaseException:
            with self._log_lock:
                self._unfolded = records + self._unfolded
            raise

    def _write(self, records: list[Record]) -> None:
        """Fold ``records`` into DuckDB in one transaction (``fold``), on the open connection."""
        if not records:
            return
        conn = self._conn
        assert conn is not None
        fold.fold(conn, records, self.path)
        file.protect_wal(self.path)

    # --- definitions -----------------------------------------------------------------------------

    def save_definition(self, def_id: str, kind: str, name: str, source: str, pickle: bytes) -> None:
        """Journal a definition once per code hash. It travels with the next recorded step (no
        commit of its own): a definition matters only once a step that used it is journaled."""
        with self._log_lock:
            if def_id in self._known_defs:
                return
            self._known_defs.add(def_id)
            self._pending_defs.append(DefinitionRow(def_id, kind, name, source, pickle, time.time()))

    def _queue_pending_defs_locked(self) -> None:
        for row in self._pending_defs:
            self._seq += 1
            self._unfolded.append((self._seq, _DEFINITION, tuple(row)))
        self._pending_defs = []

    @_held
    def has_definition(self, def_id: str) -> bool:
        return def_id in self._known_defs

    @_held
    def pickled_definition(self, def_id: str) -> tuple[str, str, bytes]:
        """``(kind, name, pickle)`` of a stored definition (for ``zart resume``), this process's records
        folded first (a definition travels in the side log with the run's first records)."""
        with self._lock:
            conn = self._ensure_open()
            self._fold_locked()
            row = conn.execute("SELECT kind, name, pickle FROM definitions WHERE def_id = ?", [def_id]).fetchone()
        if row is None:
            raise DefinitionNotFound(f"the journal {self.path} holds no definition {def_id!r}")
        return row[0], row[1], row[2]

    @_held
    def pickled_execution(self, execution_id: str) -> StoredExecution | None:
        """The execution with its input and output pickles (for replay and resume only)."""
        with self._controlled() as control:
            row = control.execute(
                """SELECT execution_id, workflow, def_id, input, input_hash, status, output, error,
                          run_number FROM executions WHERE execution_id = ?""", [execution_id]).fetchone()
        if row is None:
            return None
        execution, workflow, def_id, input_blob, input_hash, status, output, error, run_number = row
        return StoredExecution(execution, workflow, def_id, input_blob, input_hash, ExecutionStatus(status),
                               output, error, run_number)

    @_held
    def execution_status(self, execution_id: str) -> ExecutionStatus | None:
        """An execution's status (no pickle read), or ``None`` when the journal has no such id."""
        with self._controlled() as control:
            row = control.execute("SELECT status FROM executions WHERE execution_id = ?",
                                  [execution_id]).fetchone()
        return None if row is None else ExecutionStatus(row[0])

    @_held
    def begin_run(self, execution_id: str, workflow: str, def_id: str, input: bytes, input_hash: str,
                  input_preview: str, on_change: str,
                  definition: tuple[str, str, str, str, bytes] | None = None,
                  deadline: float | None = None, count_deaths: bool = False, *,
                  trigger: RunTrigger | None = None, trigger_detail: str | None = None,
                  new_deadline: bool = False, extend: float | None = None,
                  lease: str | None = None) -> tuple[int, float | None, int]:
        """Mark the execution running under this process and open its next run; returns its number, its
        deadline (``deadline`` at its first run; a journaled one is kept unless ``new_deadline``; ``extend``
        moves it that many seconds later, from now when it has passed or is unset) and, with
        ``count_deaths``, how many of its runs ended because their process died (else 0).

        ``trigger`` (what started the run) defaults to ``initial`` for a first run, else ``resume``.
        ``lease`` (an owner, ``suspension.owner()``): the run continues a suspended execution only if its
        lease lets that owner (``suspension.take``: checked and taken in this transaction), else
        ``StateConflict``. Every run makes this process the lease's owner.

        ``definition`` (``def_id, kind, name, source, pickle``), the workflow's, is made durable
        first (side log, fsynced), so ``zart resume`` always finds it; it reaches DuckDB with the
        next fold, like step definitions (one writer of ``definitions``: no commit conflicts)."""
        if self._opened is not None and file.identity(self.path) != self._opened:
            logger.warning("zart: the journal %s was deleted or replaced while open here; opening it "
                           "afresh for execution %r", self.path, execution_id)
            self.close()  # a new file: the next statement opens (or creates) it
        now = time.time()
        if definition is not None:  # durable in the side log before the run exists
            self.save_definition(*definition)
            self.record()
        begun = self._control_transaction(runs.begin, self.path, now, execution_id, workflow, def_id, input,
                                          input_hash, input_preview, on_change, deadline, count_deaths, trigger,
                                          trigger_detail, new_deadline, extend, lease)
        file.protect_wal(self.path)
        return begun

    @_held
    def finish_run(self, execution_id: str, run_number: int, status: ExecutionStatus,
                   output: bytes | None = None, output_preview: str | None = None,
                   error: str | None = None, traceback: str | None = None,
                   executed: int = 0, reused: int = 0, ended_by: RunEnd | None = None,
                   end_detail: str | None = None) -> None:
        """Record how the run ended (``ended_by``: why; by default the status says it).

        Its steps need not be folded first: they are durable in the side log, and every reader of
        this process folds before reading, as does the release of the file to other processes."""
        now = time.time()
        with self._log_lock:  # definitions not yet carried by a step still belong in the journal
            self._queue_pending_defs_locked()
            if self._unfolded:
                self._log_cond.notify_all()
        self._control_transaction(runs.finish, now, execution_id, run_number, status, output,
                                  output_preview, error, traceback, executed, reused, ended_by, end_detail)
        self._check_still_there(f"execution {execution_id!r} ended ({status}), but nothing of run "
                                f"{run_number} can be read back")

    def heartbeat(self, beats: Sequence[RunBeat]) -> None:
        """Record that this process is alive and running these runs now: each run's ``alive_at``, its
        counts so far, and the attempts it is running (replacing the last beat's). If the process dies,
        the next opener ends the run at ``alive_at`` and lists those attempts as interrupted. Skipped
        when the file is not open here (a beat never opens it)."""
        if not beats or not self._ready:
            return
        now = time.time()
        with self._control_lock:
            conn = self._control
            if conn is None:
                return
            in_transaction(conn, runs.beat, now, beats)

    @_held
    def delete_execution(self, execution_id: str) -> None:
        """Remove an execution with its runs, steps, attempts and events (pending rows are folded first)."""
        self._folded_transaction(runs.delete, execution_id)

    @_held
    def set_parent(self, execution_id: str, parent_execution_id: str) -> None:
        """Record the execution whose workflow body started this one (``zart.run``/``zart.start`` in it)."""
        with self._controlled() as control:
            runs.set_parent(control, execution_id, parent_execution_id)

    @_held
    def retire(self, ids: Sequence[str], *, dry_run: bool = False) -> retention.Removed:
        """Remove the finished executions of ``ids`` with every row they own, in one transaction (pending
        rows are folded first; one no longer finished stays); ``dry_run`` counts and rolls back."""
        with self._lock:
            conn = self._ensure_open()
            self._fold_locked()
            conn.execute("BEGIN")
            try:
                removed = retention.remove(conn, ids)
                conn.execute("ROLLBACK" if dry_run else "COMMIT")
            except BaseException:
                rollback(conn)
                raise
        return removed

    @_held
    def set_status(self, execution_id: str, status: ExecutionStatus) -> None:
        """Set an execution's status outside of a run (e.g. cancel an interrupted one)."""
        with self._controlled() as control:
            runs.set_status(control, time.time(), execution_id, status)

    # --- steps -----------------------------------------------------------------------------------

    @_held
    def pickled_steps(self, execution_id: str) -> dict[str, StoredStep]:
        """The current record of every journaled step of an execution, by step key, outputs pickled
        (for replay)."""
        with self._lock:
            conn = self._ensure_open()
            self._fold_locked()
            rows = conn.execute(
                """SELECT step_key, status, args_hash, def_id, output
                   FROM steps WHERE execution_id = ? AND current""", [execution_id]).fetchall()
        # Stored statuses are enums when read (a dict lookup: 10,000 reused steps pay ~0.5 ms)
        statuses = _STEP_STATUSES
        return {key: StoredStep(statuses[status], args_hash, def_id, output)
                for key, status, args_hash, def_id, output in rows}

    @_held
    def pickled_step_output(self, execution_id: str, step_key: str) -> tuple[str, bytes | None] | None:
        """``(status, output pickle or value reference)`` of a step's current record (for ``zart.load``),
        or ``None`` when the execution has no such step."""
        with self._lock:
            conn = self._ensure_open()
            self._fold_locked()
            row = conn.execute("SELECT status, output FROM steps WHERE execution_id = ? AND step_key = ? AND current",
                               [execution_id, step_key]).fetchone()
        return None if row is None else (row[0], row[1])

    @_held
    def step_code_hashes(self, execution_id: str) -> dict[str, set[str]]:
        """The code hashes journaled with an execution's current steps, by step name."""
        with self._lock:
            conn = self._ensure_open()
            self._fold_locked()
            rows = conn.execute("SELECT DISTINCT name, def_id FROM steps WHERE execution_id = ? AND current",
                                [execution_id]).fetchall()
        hashes: dict[str, set[str]] = {}
        for name, code in rows:
            hashes.setdefault(name, set()).add(code)
        return hashes

    # --- control actions (restart, rerun, fork) ------------------------------------------------------

    @_held
    def step_order(self, execution_id: str) -> list[tuple[str, int, str]]:
        """``(step key, seq, status)`` of an execution's current step records in call order (seq)."""
        with self._lock:
            conn = self._ensure_open()
            self._fold_locked()
            return runs.step_order(conn, execution_id)

    @_held
    def copy_steps(self, source: str, target: str, keys: Sequence[str]) -> int:
        """Copy the current completed records of ``keys`` of execution ``source`` to the new execution
        ``target`` (a fork, before its first run reuses them), as records of its run 1 whose reason is
        ``copied from <source>`` (so they read as copied, not as run 1's). Returns how many.
        Stored values are shared, not copied: ``zart gc`` keeps a file while any record refers to it."""
        if not keys:
            return 0
        return self._folded_transaction(runs.copy_steps, source, target, keys)

    def _control_transaction(self, write: Callable[..., T], *args: Any) -> T:
        """``write(connection, *args)`` in one transaction on the run-control connection (no fold)."""
        with self._controlled() as conn:
            return in_transaction(conn, write, *args)

    def _folded_transaction(self, write: Callable[..., T], *args: Any) -> T:
        """``write(connection, *args)`` in one transaction on the main connection, this process's
        records folded first (the rows it deletes or copies are all there)."""
        with self._lock:
            conn = self._ensure_open()
            self._fold_locked()
            return in_transaction(conn, write, *args)

    # --- other modules' tables (``schedules``) -----------------------------------------------------

    @_held
    def transact(self, write: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``write(connection, *args, **kwargs)`` (one of this package's SQL functions, e.g.
        ``schedules``'s or ``inbox``'s) in one transaction on the run-control connection, with this process's records
        folded first: rolled back whole if it raises."""
        with self._lock:
            self._fold_locked()
        with self._controlled() as conn:
            return in_transaction(conn, write, *args, **kwargs)
