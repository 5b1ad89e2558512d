"""The journal file: who may plant it, one object per file, creation that survives a kill, read-only
storage, a damaged meta table, a file deleted under a run, a full disk."""
import contextlib
import hashlib
import os
import subprocess
import sys
import textwrap
import uuid

import duckdb
import pytest

import zart_nb as zart
from zart_nb._runtime import runtime

NOBODY = 65534


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cli(journal, *args):
    return subprocess.run([sys.executable, "-m", "zart_nb._cli", *args, "--journal", str(journal)],
                          capture_output=True, text=True, timeout=60)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@contextlib.contextmanager
def _tmpfs(where, size="4m"):
    """A real small file system (root only): disk full and read-only media, for real."""
    where.mkdir()
    if os.getuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=700", "tmpfs",
                                           str(where)], capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a small tmpfs")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


# --- trust (like ssh) ----------------------------------------------------------------------------


def test_a_folder_others_may_write_is_refused(tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir()
    os.chmod(folder, 0o777)
    with pytest.raises(zart.JournalError, match="writable by others") as info:
        zart.run(lambda x: x, 1, journal=folder / "journal.duckdb")
    assert "chmod go-w" in str(info.value)
    assert os.listdir(folder) == []


@pytest.mark.skipif(os.getuid() != 0, reason="chown needs root")
@pytest.mark.parametrize("planted", ["j.duckdb", "j.duckdb.steps.log"])
def test_a_journal_file_of_another_user_is_refused(tmp_path, planted):
    journal = tmp_path / "j.duckdb"
    zart.run(lambda x: x, 1, execution_id="mine", journal=journal)
    runtime.journal(journal).close()
    (tmp_path / planted).touch()
    os.chown(tmp_path / planted, NOBODY, NOBODY)
    proc = _cli(journal, "ls")
    assert proc.returncode == 1 and "belongs to" in proc.stderr and "uid 65534" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_world_writable_journal_file_is_refused(tmp_path):
    journal = tmp_path / "j.duckdb"
    zart.run(lambda x: x, 1, execution_id="mine", journal=journal)
    runtime.journal(journal).close()
    os.chmod(journal, 0o666)
    proc = _cli(journal, "ls")
    assert proc.returncode == 1 and "writable by others" in proc.stderr and "chmod 600" in proc.stderr


def test_a_dangling_symlink_is_refused_not_followed(tmp_path):
    target = tmp_path / "elsewhere" / "j.duckdb"
    link = tmp_path / "j.duckdb"
    link.symlink_to(target)
    with pytest.raises(zart.JournalError, match="symlink"):
        zart.run(lambda x: x, 1, journal=link)
    assert not target.exists() and not target.parent.exists()


def test_a_directory_as_journal_path_is_a_clear_error(tmp_path):
    proc = _cli(tmp_path, "ls")
    assert proc.returncode == 1 and "is a directory" in proc.stderr, proc.stderr
    assert "IsADirectoryError" not in proc.stderr and "Traceback" not in proc.stderr


# --- one Journal per file ------------------------------------------------------------------------


def test_a_hard_link_names_the_same_journal(tmp_path):
    journal = tmp_path / "j.duckdb"
    assert zart.run(lambda x: x + 1, 1, execution_id="first", journal=journal) == 2
    other = tmp_path / "linked.duckdb"
    os.link(journal, other)
    assert runtime.journal(other) is runtime.journal(journal)
    assert runtime.journal(other).identity == runtime.journal(journal).identity
    assert zart.run(lambda x: x + 2, 1, execution_id="second", journal=other) == 3
    runtime.journal(journal).close()
    ids = {r.execution_id for r in zart.journal(journal).list_executions()}
    assert ids == {"first", "second"}


# --- creation ------------------------------------------------------------------------------------


def _partial(size):
    def make(path):
        conn = duckdb.connect(str(path))
        conn.close()
        data = path.read_bytes()[:size]
        path.write_bytes(data)
    return make


@pytest.mark.parametrize("leftover", ["marker-only", "empty", "4096", "8192", "no-tables"])
def test_a_kill_during_creation_leaves_a_journal_that_opens(tmp_path, leftover):
    journal = tmp_path / "j.duckdb"
    makers = {"marker-only": None, "empty": _partial(0), "4096": _partial(4096), "8192": _partial(8192),
              "no-tables": lambda path: duckdb.connect(str(path)).close()}
    if makers[leftover] is not None:
        makers[leftover](journal)
    # what the killed creator left: its marker, naming it
    (tmp_path / "j.duckdb.creating").write_text(f"{os.uname().nodename}:{_dead_pid()}")
    assert zart.run(lambda x: x * 2, 21, execution_id="after", journal=journal) == 42
    assert not (tmp_path / "j.duckdb.creating").exists()


def test_a_creation_killed_for_real_leaves_a_journal_that_opens(tmp_path):
    journal = tmp_path / "j.duckdb"
    script = textwrap.dedent(f"""
        import os, zart_nb as zart
        from zart_nb._journal import schema
        def killed(*args):  # the file exists, its schema never came
            os._exit(9)
        schema.migrate = killed
        import zart_nb._journal.journal as jm
        jm.migrate = killed
        zart.run(lambda x: x, 1, journal={str(journal)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 9, proc.stderr
    assert journal.exists() and (tmp_path / "j.duckdb.creating").exists()
    assert zart.run(lambda x: x * 2, 21, execution_id="after", journal=journal) == 42


def test_two_processes_creating_one_journal_both_succeed(tmp_path):
    script = textwrap.dedent("""
        import sys, time, zart_nb as zart
        start = float(sys.argv[2])
        while time.time() < start:
            pass
        print(zart.run(lambda x: x + 1, 1, execution_id=sys.argv[3], journal=sys.argv[1]))
    """)
    for round_ in range(3):
        journal = tmp_path / f"j{round_}.duckdb"
        start = f"{__import__('time').time() + 1.0}"
        procs = [subprocess.Popen([sys.executable, "-c", script, str(journal), start, f"p{i}"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, "ZART_LOCK_TIMEOUT": "60"}) for i in range(2)]
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0 and out.strip() == "2", err
            assert "CatalogException" not in err


# --- orphans, meta table, lock timeout -----------------------------------------------------------


def test_marking_orphaned_runs_is_one_transaction(tmp_path):
    journal = tmp_path / "j.duckdb"
    j = runtime.journal(journal)
    with j.hold():
        j.begin_run("orphan", "wf", "d", b"", "h", "", "rerun")
    j.close()
    conn = duckdb.connect(str(journal))
    conn.execute(f"UPDATE executions SET owner_pid = {_dead_pid()}")
    conn.execute("ALTER TABLE runs RENAME TO runs_gone")  # the second statement of the marking fails
    conn.close()
    with pytest.raises(zart.JournalCorrupt, match="nothing was changed"):
        zart.journal(journal).list_executions()
    conn = duckdb.connect(str(journal), read_only=True)
    assert conn.execute("SELECT status FROM executions").fetchall() == [("running",)]
    conn.close()


@pytest.mark.parametrize("damage", [
    "DELETE FROM zart_meta WHERE key = 'journal_id'",
    "UPDATE zart_meta SET value = 'x' WHERE key = 'schema_version'",
    "DROP TABLE zart_meta; CREATE TABLE zart_meta (k INTEGER)",
], ids=["no-journal-id", "bad-version", "wrong-columns"])
def test_a_damaged_meta_table_is_a_clear_error_and_the_file_is_not_written(tmp_path, damage):
    journal = tmp_path / "j.duckdb"
    zart.run(lambda x: x, 1, execution_id="e", journal=journal)
    runtime.journal(journal).close()
    conn = duckdb.connect(str(journal))
    conn.execute(damage)
    conn.close()
    digest = _sha(journal)
    for attempt in (lambda: zart.journal(journal).list_executions(),
                    lambda: zart.run(lambda x: x, 2, execution_id="f", journal=journal)):
        with pytest.raises(zart.JournalCorrupt, match="zart_meta"):
            attempt()
    assert _sha(journal) == digest


@pytest.mark.parametrize("value", ["abc", "nan", "-1", "inf"])
def test_a_bad_lock_timeout_names_the_variable(tmp_path, monkeypatch, value):
    monkeypatch.setenv("ZART_LOCK_TIMEOUT", value)
    with pytest.raises(zart.ConfigurationError, match="ZART_LOCK_TIMEOUT"):
        runtime.journal(tmp_path / f"{uuid.uuid4().hex}.duckdb")


# --- the file under a run, read-only media, a full disk ------------------------------------------


def _unlink(path):
    os.unlink(path)
    return "done"


def test_a_journal_deleted_while_an_execution_runs_is_said(tmp_path):
    journal = tmp_path / "j.duckdb"

    @zart.workflow
    def deleting(path):
        return zart.wait([zart.schedule(zart.step(_unlink), path)])

    with pytest.raises(zart.JournalError, match="deleted or replaced"):
        zart.run(deleting, str(journal), execution_id="gone", journal=journal)


def test_an_archived_journal_on_read_only_media_is_listed(tmp_path):
    with _tmpfs(tmp_path / "mnt") as mnt:
        journal = mnt / "j.duckdb"
        zart.run(lambda x: x, 1, execution_id="archived", journal=journal)
        runtime.journal(journal).close()
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        listed = _cli(journal, "ls")
        assert listed.returncode == 0 and "archived" in listed.stdout, listed.stderr
        shown = _cli(journal, "show", "archived")
        assert shown.returncode == 0 and "completed" in shown.stdout, shown.stderr
        ran = subprocess.run([sys.executable, "-c", f"import zart_nb as z; z.run(lambda x: x, 2, "
                              f"execution_id='new', journal={str(journal)!r})"],
                             capture_output=True, text=True, timeout=60)
        assert ran.returncode == 1 and "read-only" in ran.stderr, ran.stderr
        assert "JournalCorrupt" not in ran.stderr


def test_a_full_disk_is_a_clear_error_and_loses_nothing(tmp_path):
    script = textwrap.dedent("""
        import os, sys, zart_nb as zart
        @zart.step
        def big(i):
            return os.urandom(250_000)
        @zart.workflow
        def fill(n):
            return len(zart.wait([zart.schedule(big, i) for i in range(n)]))
        try:
            print(zart.run(fill, 8, execution_id="fill", journal=sys.argv[1]))
        except zart.ZartError as exc:
            print("ERROR", type(exc).__name__, exc)
    """)
    with _tmpfs(tmp_path / "mnt", size="8m") as mnt:
        journal = mnt / "j.duckdb"
        filler = mnt / "filler"
        filler.write_bytes(b"x" * 6_500_000)
        full = subprocess.run([sys.executable, "-c", script, str(journal)], capture_output=True,
                              text=True, timeout=120)
        assert "ERROR" in full.stdout and "disk is full" in full.stdout, (full.stdout, full.stderr)
        assert "Traceback" not in full.stderr and "Exception in thread" not in full.stderr, full.stderr
        filler.unlink()
        done = subprocess.run([sys.executable, "-c", script, str(journal)], capture_output=True,
                              text=True, timeout=120)
        assert done.stdout.strip() == "8", (done.stdout, done.stderr)
        runs = zart.journal(journal).list_runs("fill")
        assert runs[-1].status is zart.ExecutionStatus.COMPLETED
        assert runs[-1].reused > 0, runs  # the steps journaled before the disk filled were kept


def test_a_journal_moved_away_is_not_mistaken_for_the_file_now_at_its_inode(tmp_path):
    # A deleted journal's inode can be reused by the next file created; renaming gives the same
    # situation deterministically: the inode is now another path's, and the old path is gone.
    first, moved = tmp_path / "first.duckdb", tmp_path / "moved.duckdb"
    assert zart.run(lambda x: x + 1, 1, execution_id="before", journal=first) == 2
    runtime.journal(first).close()
    os.rename(first, moved)
    assert runtime.journal(moved).path == moved.resolve()
    assert zart.run(lambda x: x + 2, 1, execution_id="after", journal=moved) == 3
    runtime.journal(moved).close()
    assert {r.execution_id for r in zart.journal(moved).list_executions()} == {"before", "after"}
    assert not first.exists()


def test_a_full_disk_when_the_next_run_folds_what_the_last_left_is_a_clear_error(tmp_path):
    left = textwrap.dedent("""
        import os, sys
        import zart_nb._journal.journal as jm
        jm.FOLD_INTERVAL = 3600; jm.FOLD_BATCH = 10**9  # never fold: the rows stay in the side log
        import zart_nb as zart
        @zart.step
        def row(i):
            return "x" * 2000 + str(i)
        @zart.workflow
        def rows(n):
            return len([row(i) for i in range(n)])
        zart.run(rows, 150, execution_id="left", journal=sys.argv[1])
        os._exit(0)  # no fold, no close: as if killed
    """)
    nxt = textwrap.dedent("""
        import sys, zart_nb as zart
        try:
            print(zart.run(lambda x: x, 5, execution_id="next", journal=sys.argv[1]))
        except zart.JournalError as exc:
            print("ERROR", type(exc).__name__, exc)
    """)
    with _tmpfs(tmp_path / "mnt", size="8m") as mnt:
        journal = mnt / "j.duckdb"
        subprocess.run([sys.executable, "-c", left, str(journal)], check=True, timeout=120)
        assert (mnt / "j.duckdb.steps.log").stat().st_size > 150 * 2000
        descriptor = os.open(mnt / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(descriptor, b"\1" * 65536)
        except OSError:
            pass
        finally:
            os.close(descriptor)
        full = subprocess.run([sys.executable, "-c", nxt, str(journal)], capture_output=True, text=True,
                              timeout=120)
        assert full.stdout.startswith("ERROR JournalError") and "disk is full" in full.stdout, \
            (full.stdout, full.stderr)
        assert "nothing journaled before was lost" in full.stdout
        assert "TransactionException" not in full.stderr + full.stdout, full.stderr
        listed = _cli(journal, "ls")
        assert "disk is full" in listed.stderr and "TransactionException" not in listed.stderr, listed.stderr
        (mnt / "filler").unlink()
        done = subprocess.run([sys.executable, "-c", nxt, str(journal)], capture_output=True, text=True,
                              timeout=120)
        assert done.stdout.strip() == "5", (done.stdout, done.stderr)
        steps = zart.journal(journal).list_steps("left", limit=1000)
        assert len(steps) == 150 and {s.status for s in steps} == {zart.StepStatus.COMPLETED}


def test_only_a_wait_of_a_second_or_more_for_a_held_journal_is_announced(tmp_path, caplog):
    # zart-tui and the monitor read with a 0.3 s lock timeout at every refresh: a line each time ("waiting
    # up to 0s") said nothing a user could act on; the CLI's and a run's waits (10 s, 120 s) are announced.
    import logging
    import time

    from zart_nb._journal import file

    path = tmp_path / "j.duckdb"
    with caplog.at_level(logging.WARNING, logger="zart_nb"):
        assert file._wait(path, "process 1", time.monotonic() + 60, 0.3, False)
        assert not [r for r in caplog.records if "waiting up to" in r.getMessage()]
        assert file._wait(path, "process 1", time.monotonic() + 60, 2.5, False)
        assert [r.getMessage() for r in caplog.records if "waiting up to" in r.getMessage()] == [
            f"zart: journal {path} is in use by process 1; waiting up to 2.5s for it to be released..."]
