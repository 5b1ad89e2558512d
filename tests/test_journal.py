"""The journal file: side log recovery, torn tails, schema version, owner-only files."""
import os
import subprocess
import sys
import textwrap

import duckdb
import pytest

import zart_nb as zart
from zart_nb._journal import SCHEMA_VERSION, STEP_COLUMNS, StepRow
from zart_nb._journal.reader import FileJournalReader
from zart_nb._journal.sidelog import SideLog, Tag
from zart_nb._runtime import runtime


def _row(execution_id, key, status="completed", run=1):
    values = dict.fromkeys(STEP_COLUMNS)
    values.update(execution_id=execution_id, step_key=key, run_number=run, seq=0, name="s", def_id="d",
                  args=b"", args_hash="h", args_preview="", status=status, output=b"\x80\x05N.",
                  output_preview="None", attempts=1, reason="new", current=True)
    return StepRow(**values)


def test_side_log_ignores_a_torn_tail(tmp_path):
    log = SideLog(tmp_path / "x.log")
    log.append([(1, "s", ("a",)), (2, "s", ("b",))])
    log.append([(3, "s", ("c",))])
    log.close()
    data = (tmp_path / "x.log").read_bytes()
    (tmp_path / "x.log").write_bytes(data[:-3])  # the process died in the middle of a write
    assert [r[0] for r in SideLog(tmp_path / "x.log").read().records] == [1, 2]


def test_rows_in_the_side_log_survive_a_crash_before_folding(tmp_path):
    journal = tmp_path / "j.duckdb"
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        import zart_nb._journal.journal
        from zart_nb import _journal, _runtime
        from test_journal import _row
        _journal.journal.FOLD_INTERVAL = 3600  # never fold: the rows live only in the side log
        j = _runtime.runtime.journal({str(journal)!r})
        with j.hold():
            j.begin_run("e1", "wf", "d", b"", "h", "", "rerun")
            j.record([_row("e1", "k#0"), _row("e1", "k#1")])
            os._exit(0)  # no close, no fold: as if killed
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert os.path.getsize(str(journal) + ".steps.log") > 0
    j = zart.journal(journal)
    assert [s.step_key for s in j.list_steps("e1")] == ["k#0", "k#1"]
    j.close()
    assert os.path.getsize(str(journal) + ".steps.log") == 0
    # folding again (a second recovery) never duplicates rows
    assert len(zart.journal(journal).list_steps("e1")) == 2


def test_superseded_rows_stop_being_current(journal):
    j = runtime.journal(journal)
    with j.hold():
        j.record([_row("e", "k#0", status="failed")])
        j.record([_row("e", "k#0", run=2)], supersede=[("e", "k#0")])
        current = FileJournalReader(j).list_steps("e")
        history = FileJournalReader(j).list_steps("e", current_only=False)
    assert [(s.run_number, s.status.value) for s in current] == [(2, "completed")]
    assert [(s.run_number, s.status.value) for s in history] == [(1, "failed"), (2, "completed")]


def test_side_log_records_carry_their_tags_as_plain_letters_and_fold_by_them(journal, monkeypatch):
    import zart_nb._journal.journal

    monkeypatch.setattr(zart_nb._journal.journal, "FOLD_INTERVAL", 3600.0)  # the rows stay in the side log
    monkeypatch.setattr(zart_nb._journal.journal, "FOLD_BATCH", 10**9)
    j = runtime.journal(journal)
    with j.hold():
        j.record([_row("e", "k#0", status="failed")])
        j.save_definition("code-1", "step", "s", "def s(): ...", b"\x80\x05N.")
        j.record([_row("e", "k#0", run=2)], supersede=[("e", "k#0")])
        logged = SideLog(j._sidelog.path).read().records
        assert [kind for _, kind, _ in logged] == [Tag.STEP, Tag.DEFINITION, Tag.SUPERSEDE, Tag.STEP]
        assert {type(kind) for _, kind, _ in logged} == {str}  # the log holds plain values only
        assert [kind for _, kind, _ in logged] == ["s", "d", "x", "s"]  # what older logs hold too
        current = FileJournalReader(j).list_steps("e")  # folded on the way
        history = FileJournalReader(j).list_steps("e", current_only=False)
    assert [(s.run_number, s.status.value) for s in current] == [(2, "completed")]
    assert [(s.run_number, s.status.value) for s in history] == [(1, "failed"), (2, "completed")]
    j.close()
    conn = duckdb.connect(str(journal), read_only=True)
    try:
        assert conn.execute("SELECT def_id FROM definitions").fetchall() == [("code-1",)]
        assert conn.execute("SELECT total, completed, failed FROM step_counts").fetchall() == [(1, 1, 0)]
    finally:
        conn.close()


def test_new_journal_records_its_schema_version_and_is_owner_only(journal):
    j = runtime.journal(journal)
    with j.hold():
        version = j._conn.execute("SELECT value FROM zart_meta WHERE key = 'schema_version'").fetchone()
    j.close()
    assert version == (str(SCHEMA_VERSION),)
    assert (journal.stat().st_mode & 0o777) == 0o600
    assert (journal.parent.stat().st_mode & 0o777) == 0o700


def test_execution_left_running_by_a_dead_process_reads_as_interrupted(journal):
    j = runtime.journal(journal)
    with j.hold():
        j.begin_run("orphan", "wf", "d", b"", "h", "", "rerun")
        j._conn.execute("UPDATE executions SET owner_pid = 999999999 WHERE execution_id = 'orphan'")
    j.close()
    assert zart.journal(journal).execution_record("orphan").status is zart.ExecutionStatus.INTERRUPTED
    assert [r.status for r in zart.journal(journal).list_runs("orphan")] == [zart.ExecutionStatus.INTERRUPTED]


def test_journal_read_by_plain_duckdb_after_release(journal):
    zart.run(lambda x: x + 1, 1, execution_id="plain", journal=journal)
    zart.journal(journal).close()
    conn = duckdb.connect(str(journal), read_only=True)
    try:
        assert conn.execute("SELECT status FROM executions").fetchall() == [("completed",)]
    finally:
        conn.close()


def test_one_journal_object_per_file_per_process(journal, tmp_path):
    """Two objects would both fold the same side log (duplicate rows, write conflicts)."""
    assert runtime.journal(journal) is runtime.journal(str(journal))
    assert runtime.journal(tmp_path / "other.duckdb") is not runtime.journal(journal)


def test_side_log_of_a_deleted_journal_is_never_folded_into_a_new_one(tmp_path):
    journal = tmp_path / "j.duckdb"
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        import zart_nb._journal.journal
        from zart_nb import _journal, _runtime
        from test_journal import _row
        _journal.journal.FOLD_INTERVAL = 3600
        j = _runtime.runtime.journal({str(journal)!r})
        with j.hold():
            j.record([_row("old", "k#0")])
            os._exit(0)
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    for leftover in (journal, tmp_path / "j.duckdb.wal"):
        if leftover.exists():
            leftover.unlink()  # the user deletes the database, the side log stays behind
    assert (tmp_path / "j.duckdb.steps.log").stat().st_size > 0
    fresh = zart.journal(journal)
    assert fresh.list_steps("old") == []
    assert (tmp_path / "j.duckdb.steps.log.orphaned").exists()


def test_paths_naming_the_same_file_share_one_journal(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "link").symlink_to(tmp_path)
    plain = runtime.journal(tmp_path / "j.duckdb")
    assert runtime.journal(tmp_path / "sub" / ".." / "j.duckdb") is plain
    assert runtime.journal(tmp_path / "link" / "j.duckdb") is plain


def test_a_bare_read_releases_the_file_after_the_grace(journal):
    j = zart.journal(journal)
    j.list_executions()  # no hold() by the caller
    code = (f"from zart_nb._runtime import runtime; from zart_nb._journal.reader import FileJournalReader; "
            f"j = runtime.journal({str(journal)!r}, lock_timeout=30); "
            "print(len(FileJournalReader(j).list_executions()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0"


def test_step_counts_follow_folds_and_supersedes(journal):
    j = runtime.journal(journal)
    with j.hold():
        j.begin_run("e", "wf", "d", b"", "h", "", "rerun")
        j.record([_row("e", "k#0", status="failed"), _row("e", "k#1")])
        j.record([_row("e", "k#0", run=2)], supersede=[("e", "k#0")])
        record = FileJournalReader(j).execution_record("e")
    assert (record.steps_total, record.steps_completed, record.steps_failed) == (2, 2, 0)


def test_a_journal_of_the_previous_schema_is_upgraded_with_its_step_counts(journal):
    j = runtime.journal(journal)
    with j.hold():
        j.begin_run("old", "wf", "d", b"", "h", "", "rerun")
        j.record([_row("old", "k#0"), _row("old", "k#1", status="failed")])
    j.close()
    conn = duckdb.connect(str(journal))  # as zart_nb of schema 2 left it
    conn.execute("DROP TABLE step_counts")
    _drop_schema_4(conn)
    conn.execute("UPDATE zart_meta SET value = '2' WHERE key = 'schema_version'")
    conn.close()
    record = zart.journal(journal).execution_record("old")
    assert (record.steps_total, record.steps_completed, record.steps_failed) == (2, 1, 1)
    runtime.journal(journal).close()
    conn = duckdb.connect(str(journal), read_only=True)
    assert conn.execute("SELECT value FROM zart_meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)
    conn.close()


def _drop_schema_11(conn):
    conn.execute("DROP TABLE value_stores")


def _drop_schema_10(conn):
    _drop_schema_11(conn)
    conn.execute("DROP INDEX executions_status")  # DuckDB drops no column of an indexed table
    for column in ("waits_for", "wake_at", "lease_owner", "lease_until"):
        conn.execute(f"ALTER TABLE executions DROP COLUMN {column}")
    conn.execute("CREATE INDEX executions_status ON executions(status)")


def _drop_schema_9(conn):
    _drop_schema_10(conn)
    conn.execute("DROP TABLE events")


def _drop_schema_8(conn):
    _drop_schema_9(conn)
    conn.execute("DROP INDEX executions_status")  # DuckDB drops no column of an indexed table
    conn.execute("ALTER TABLE executions DROP COLUMN parent_execution_id")
    conn.execute("CREATE INDEX executions_status ON executions(status)")


def _drop_schema_7(conn):
    _drop_schema_8(conn)
    conn.execute("DROP TABLE schedules")


def _drop_schema_6(conn):
    _drop_schema_7(conn)
    for column in ("trigger", "trigger_detail"):
        conn.execute(f"ALTER TABLE runs DROP COLUMN {column}")


def _drop_schema_5(conn):
    _drop_schema_6(conn)
    conn.execute("DROP INDEX executions_status")
    conn.execute("ALTER TABLE executions DROP COLUMN deadline")
    conn.execute("CREATE INDEX executions_status ON executions(status)")


def _drop_schema_4(conn):
    _drop_schema_5(conn)
    conn.execute("DROP TABLE in_flight")
    for column in ("ended_by", "end_detail", "alive_at"):
        conn.execute(f"ALTER TABLE runs DROP COLUMN {column}")


def test_a_journal_of_schema_3_gets_run_ends_and_keeps_its_runs(journal):
    j = runtime.journal(journal)
    with j.hold():
        j.begin_run("old", "wf", "d", b"", "h", "", "rerun")
        j.finish_run("old", 1, zart.ExecutionStatus.COMPLETED, executed=0, reused=0)
    j.close()
    conn = duckdb.connect(str(journal))
    _drop_schema_4(conn)
    conn.execute("UPDATE zart_meta SET value = '3' WHERE key = 'schema_version'")
    conn.close()
    runs = zart.journal(journal).list_runs("old")
    assert [(r.run_number, r.status, r.ended_by) for r in runs] == [(1, zart.ExecutionStatus.COMPLETED, None)]
    runtime.journal(journal).close()
    conn = duckdb.connect(str(journal), read_only=True)
    assert conn.execute("SELECT value FROM zart_meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)
    conn.close()


def test_a_journal_of_schema_4_gets_deadlines_and_keeps_its_executions(journal):
    j = runtime.journal(journal)
    with j.hold():
        j.begin_run("old", "wf", "d", b"", "h", "", "rerun")
        j.finish_run("old", 1, zart.ExecutionStatus.COMPLETED, executed=0, reused=0)
    j.close()
    conn = duckdb.connect(str(journal))
    _drop_schema_5(conn)
    conn.execute("UPDATE zart_meta SET value = '4' WHERE key = 'schema_version'")
    conn.close()
    assert zart.journal(journal).execution_record("old").status is zart.ExecutionStatus.COMPLETED
    j = runtime.journal(journal)
    with j.hold():  # a new run of it: no deadline journaled, none given
        assert j.begin_run("old", "wf", "d", b"", "h", "", "rerun")[:2] == (2, None)
    j.close()
    conn = duckdb.connect(str(journal), read_only=True)
    assert conn.execute("SELECT value FROM zart_meta WHERE key = 'schema_version'").fetchone() == \
        (str(SCHEMA_VERSION),)
    assert conn.execute("SELECT deadline FROM executions").fetchall() == [(None,)]
    conn.close()


def test_a_journal_of_schema_5_gets_run_triggers_and_keeps_its_runs(journal):
    j = runtime.journal(journal)
    with j.hold():
        j.begin_run("old", "wf", "d", b"", "h", "", "rerun")
        j.finish_run("old", 1, zart.ExecutionStatus.COMPLETED, executed=0, reused=0)
    j.close()
    conn = duckdb.connect(str(journal))
    _drop_schema_6(conn)
    conn.execute("UPDATE zart_meta SET value = '5' WHERE key = 'schema_version'")
    conn.close()
    runs = zart.journal(journal).list_runs("old")
    assert [(r.run_number, r.trigger) for r in runs] == [(1, None)]  # not known for a run of schema 5
    j = runtime.journal(journal)
    with j.hold():
        j.begin_run("old", "wf", "d", b"", "h", "", "rerun", trigger=zart.RunTrigger.RESTART, trigger_detail="x")
    j.close()
    runs = zart.journal(journal).list_runs("old")
    assert [(r.run_number, r.trigger, r.trigger_detail) for r in runs] == [
        (1, None, None), (2, zart.RunTrigger.RESTART, "x")]
    runtime.journal(journal).close()


def test_a_journal_of_schema_7_gets_parents_and_keeps_its_executions(journal):
    j = runtime.journal(journal)
    with j.hold():
        j.begin_run("old", "wf", "d", b"", "h", "", "rerun")
        j.finish_run("old", 1, zart.ExecutionStatus.COMPLETED, executed=0, reused=0)
    j.close()
    conn = duckdb.connect(str(journal))
    _drop_schema_8(conn)
    conn.execute("UPDATE zart_meta SET value = '7' WHERE key = 'schema_version'")
    conn.close()
    record = zart.journal(journal).execution_record("old")
    assert record.status is zart.ExecutionStatus.COMPLETED and record.parent_execution_id is None
    j = runtime.journal(journal)
    with j.hold():
        j.set_parent("old", "its-parent")
    j.close()
    assert [r.execution_id for r in zart.journal(journal).list_executions(parent="its-parent")] == ["old"]


def test_a_journal_of_schema_8_gets_an_event_inbox_and_keeps_its_executions(journal):
    j = runtime.journal(journal)
    with j.hold():
        j.begin_run("old", "wf", "d", b"", "h", "", "rerun")
    j.close()
    conn = duckdb.connect(str(journal))
    _drop_schema_9(conn)
    conn.execute("UPDATE zart_meta SET value = '8' WHERE key = 'schema_version'")
    conn.close()
    assert zart.send_event("old", "go", {"n": 1}, journal=journal) is True
    runtime.journal(journal).close()
    conn = duckdb.connect(str(journal), read_only=True)
    assert conn.execute("SELECT value FROM zart_meta WHERE key = 'schema_version'").fetchone() == \
        (str(SCHEMA_VERSION),)
    assert conn.execute("SELECT execution_id, name, payload FROM events").fetchall() == [("old", "go", '{"n":1}')]
    conn.close()


def test_a_journal_of_schema_9_gets_the_suspension_columns_and_keeps_its_executions(journal):
    j = runtime.journal(journal)
    with j.hold():
        j.begin_run("old", "wf", "d", b"", "h", "", "rerun")
    j.close()
    conn = duckdb.connect(str(journal))
    _drop_schema_10(conn)
    conn.execute("UPDATE zart_meta SET value = '9' WHERE key = 'schema_version'")
    conn.close()
    assert zart.journal(journal).execution_record("old").status == "running"
    runtime.journal(journal).close()
    conn = duckdb.connect(str(journal), read_only=True)
    assert conn.execute("SELECT value FROM zart_meta WHERE key = 'schema_version'").fetchone() == \
        (str(SCHEMA_VERSION),)
    assert conn.execute("SELECT waits_for, wake_at, lease_owner, lease_until FROM executions").fetchall() == \
        [(None, None, None, None)]
    conn.close()


def test_a_journal_of_schema_10_gets_the_value_stores_table_and_keeps_its_executions(journal):
    j = runtime.journal(journal)
    with j.hold():
        j.begin_run("old", "wf", "d", b"", "h", "", "rerun")
    j.close()
    conn = duckdb.connect(str(journal))
    _drop_schema_11(conn)
    conn.execute("UPDATE zart_meta SET value = '10' WHERE key = 'schema_version'")
    conn.close()
    assert zart.journal(journal).execution_record("old").status == "running"
    assert zart.stored(journal=journal) == []  # the listing joins the new table
    runtime.journal(journal).close()
    conn = duckdb.connect(str(journal), read_only=True)
    assert conn.execute("SELECT value FROM zart_meta WHERE key = 'schema_version'").fetchone() == \
        (str(SCHEMA_VERSION),)
    assert conn.execute("SELECT * FROM value_stores").fetchall() == []
    conn.close()


def _catalog(conn):
    columns = conn.execute("SELECT table_name, column_index, column_name, data_type, is_nullable "
                           "FROM duckdb_columns() WHERE NOT internal ORDER BY ALL").fetchall()
    indexes = conn.execute("SELECT table_name, index_name, is_unique, expressions FROM duckdb_indexes() "
                           "ORDER BY ALL").fetchall()
    constraints = conn.execute("SELECT table_name, constraint_type, constraint_column_names "
                               "FROM duckdb_constraints() ORDER BY ALL").fetchall()
    return columns, indexes, constraints


def test_a_new_journal_has_the_schema_every_upgrade_ends_at(tmp_path):
    from zart_nb._journal.schema import MIGRATIONS, migrate

    created = runtime.journal(tmp_path / "new.duckdb")
    with created.hold():  # created at the latest schema directly
        pass
    created.close()
    upgraded = duckdb.connect(str(tmp_path / "upgraded.duckdb"))
    for version in range(1, SCHEMA_VERSION + 1):
        for statement in MIGRATIONS[version]:
            upgraded.execute(statement)
    upgraded.execute("INSERT INTO zart_meta VALUES ('schema_version', ?), ('journal_id', 'x'), "
                     "('folded_seq', '0')", [str(SCHEMA_VERSION)])
    assert migrate(upgraded, {"schema_version": str(SCHEMA_VERSION)})["schema_version"] == str(SCHEMA_VERSION)
    new = duckdb.connect(str(tmp_path / "new.duckdb"), read_only=True)
    expected = _catalog(upgraded)
    assert len(expected[0]) > 50 and expected[1]  # the catalog query sees the tables and the index
    assert _catalog(new) == expected
    new.close()
    upgraded.close()


def test_a_fold_recovers_a_connection_left_in_an_aborted_transaction(journal):
    # What an interrupted statement leaves behind: DuckDB refuses everything, BEGIN included, until a
    # ROLLBACK. The fold used to fail that way on every retry for the life of the process.
    j = runtime.journal(journal)
    with j.hold():
        j.begin_run("e", "wf", "d", b"", "h", "", "rerun")
        j._conn.execute("BEGIN")
        with pytest.raises(duckdb.Error):
            j._conn.execute("SELECT * FROM no_such_table")
        j.record([_row("e", "k#0")])
        j.flush()
        assert j._conn.execute("SELECT step_key FROM steps").fetchall() == [("k#0",)]
    j.close()


def test_journals_are_closed_before_duckdbs_own_exit_handlers_run(tmp_path):
    # DuckDB registers exit handlers when it is imported; atexit runs the last registered first, and
    # those handlers interrupted a fold still running on the writer thread. Stand-in handler here:
    # registered once DuckDB is imported, it must find the journal folded and closed already.
    program = textwrap.dedent("""
        import atexit, sys
        import zart_nb as zart
        from zart_nb._runtime import runtime
        zart.run  # loads the engine (and registers its exit handler) before DuckDB is imported
        import _duckdb

        def like_duckdbs():
            journal = runtime.journal(sys.argv[1])
            print("closed" if journal._conn is None else "still open", flush=True)

        atexit.register(like_duckdbs)

        @zart.step("one")
        def one(x):
            return x

        @zart.workflow("w")
        def w(x):
            return one(x)

        assert zart.run(w, 1, journal=sys.argv[1], display=False) == 1
    """)
    proc = subprocess.run([sys.executable, "-c", program, str(tmp_path / "j.duckdb")], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["closed"]


def test_a_journal_opened_for_writing_checkpoints_its_wal_past_a_few_megabytes(journal):
    """DuckDB's WAL is checkpointed into the file once past ``CHECKPOINT_THRESHOLD`` (DuckDB's default is 16
    MiB): what a process's exit checkpoints as it releases the journal is bounded by it."""
    from zart_nb._journal import file as journal_file

    j = runtime.journal(journal)
    with j.hold():
        j.record([_row("e", "k#0")])
        with j.borrow() as cursor:
            setting = cursor.execute("SELECT current_setting('checkpoint_threshold')").fetchone()[0]
    assert journal_file.CHECKPOINT_THRESHOLD == "4MB" and setting == "3.8 MiB"
