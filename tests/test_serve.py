"""`zart serve` as a real process: it continues runs whose process died (not those their user interrupted),
runs one catch-up tick for missed ticks, shows what it runs, and on SIGTERM leaves what it ran resumable
by the next `zart serve`."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import processes
import serve_lib
from conftest import wait_until

import zart_nb as zart
from zart_nb._journal import schedules as sql
from zart_nb._runtime import runtime

TESTS = Path(__file__).parent


def _read(journal: Path, fn):
    """``fn(reader)``, through serve's engine while it runs an execution, else from the file; read again when
    the engine released the journal between the connect and the read (its run ended)."""
    for _ in range(50):
        reader = zart.journal(journal)
        try:
            return fn(reader)
        except zart.MonitorError:
            continue
        finally:
            reader.close()
    raise AssertionError(f"{journal} could not be read")


def _status(journal: Path, execution_id: str):
    record = _read(journal, lambda r: r.execution_record(execution_id))
    return None if record is None else record.status


def test_serve_continues_a_run_whose_process_died_and_not_one_its_user_interrupted(tmp_path):
    journal = tmp_path / ".zart" / "journal.duckdb"
    gate, died_log, user_log = tmp_path / "gate", tmp_path / "died.log", tmp_path / "user.log"
    # interrupted by its user (as Ctrl-C does), in this process
    execution = zart.start(serve_lib.gated, {"gate": str(gate), "log": str(user_log)}, execution_id="by-user",
                           journal=journal, display=False)
    wait_until(lambda: serve_lib.lines(user_log), what="the user's step to start")
    execution.interrupt()
    assert execution.wait_done(30)
    runtime.journal(journal).close()
    # a driver process killed while its step runs
    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent(f"""
        import serve_lib, zart_nb as zart
        zart.run(serve_lib.gated, {{"gate": {str(gate)!r}, "log": {str(died_log)!r}}}, execution_id="died",
                 journal={str(journal)!r}, display=False)
    """))
    proc = subprocess.Popen([sys.executable, str(driver)], cwd=tmp_path, env=processes.env())
    try:
        wait_until(lambda: serve_lib.lines(died_log), timeout=60, what="the driver's step to start")
    finally:
        proc.kill()
        proc.wait()

    serve_log = tmp_path / "serve.log"
    serve = processes.serve(journal, tmp_path, serve_log)
    try:
        wait_until(lambda: len([x for x in serve_lib.lines(died_log) if x.startswith("started")]) == 2, timeout=60,
                   what="zart serve to run the died execution's step again")
        assert "running 1 (died)" in serve_log.read_text()
        gate.touch()
        wait_until(lambda: "running 0" in serve_log.read_text().splitlines()[-1], timeout=60,
                   what="the resumed execution to end")
    finally:
        code = processes.stop(serve)
    assert code == 0, serve_log.read_text()
    runs = _read(journal, lambda r: r.list_runs("died"))
    assert [(r.status, r.ended_by) for r in runs] == [
        (zart.ExecutionStatus.INTERRUPTED, zart.RunEnd.PROCESS_DIED),
        (zart.ExecutionStatus.COMPLETED, zart.RunEnd.COMPLETED)]
    assert _status(journal, "by-user") is zart.ExecutionStatus.INTERRUPTED
    assert len(_read(journal, lambda r: r.list_runs("by-user"))) == 1
    assert "zart serve: stopped" in serve_log.read_text()


def test_missed_ticks_give_one_run_and_sigterm_leaves_it_to_the_next_serve(tmp_path):
    journal = tmp_path / ".zart" / "journal.duckdb"
    gate, log = tmp_path / "gate", tmp_path / "steps.log"
    zart.recurring(serve_lib.gated, "0 0 1 1 *", data={"gate": str(gate), "log": str(log)}, journal=journal)
    three_years_ago = time.time() - 3 * 366 * 86400  # three new years missed while nothing served

    def rewind(conn):
        conn.execute("UPDATE schedules SET last_tick = ?", [three_years_ago])

    runtime.journal(journal).transact(rewind)
    runtime.journal(journal).close()
    year = time.gmtime().tm_year
    tick = f"gated@{year}-01-01T00:00:00+00:00"

    serve_log = tmp_path / "serve.log"
    serve = processes.serve(journal, tmp_path, serve_log)
    try:
        wait_until(lambda: serve_lib.lines(log), timeout=60, what="the catch-up tick's step to start")
        wait_until(lambda: f"running 1 ({tick})" in serve_log.read_text(), what="the status line")
        assert f"next: gated@{year + 1}-01-01T00:00:00+00:00" in serve_log.read_text()
    finally:
        code = processes.stop(serve)
    assert code == 0, serve_log.read_text()
    assert [r.execution_id for r in _read(journal, lambda r: r.list_executions())] == [tick]  # one catch-up run
    runs = _read(journal, lambda r: r.list_runs(tick))
    assert [(r.status, r.ended_by) for r in runs] == [(zart.ExecutionStatus.INTERRUPTED, zart.RunEnd.INTERRUPTED)]
    assert runs[0].end_detail.startswith(sql.STOPPED_BY_SERVE)

    serve = processes.serve(journal, tmp_path, serve_log)
    try:
        wait_until(lambda: len([x for x in serve_lib.lines(log) if x.startswith("started")]) == 2, timeout=60,
                   what="the next zart serve to run the interrupted tick again")
        gate.touch()
        wait_until(lambda: "passed" in serve_lib.lines(log) and
                   "running 0" in serve_log.read_text().splitlines()[-1], timeout=60, what="the tick to end")
    finally:
        code = processes.stop(serve)
    assert code == 0, serve_log.read_text()
    assert [(r.execution_id, r.status) for r in _read(journal, lambda r: r.list_executions())] == \
        [(tick, zart.ExecutionStatus.COMPLETED)]
    assert [r.run_number for r in _read(journal, lambda r: r.list_runs(tick))] == [1, 2]
    schedule = zart.schedules(journal)[0]
    assert schedule.last_execution == tick and schedule.next_tick.year == year + 1


def test_a_notebook_and_serve_take_turns_on_a_journal(tmp_path):
    """serve holds the journal only around due work: with nothing due, this process runs workflows on the
    journal it serves without waiting for it."""
    journal = tmp_path / ".zart" / "journal.duckdb"
    zart.recurring(serve_lib.ticker, "0 0 1 1 *", journal=journal)  # nothing due for months
    runtime.journal(journal).close()
    serve_log = tmp_path / "serve.log"
    serve = processes.serve(journal, tmp_path, serve_log)
    try:
        wait_until(lambda: "next: ticker@" in serve_log.read_text(), what="serve to look at the journal")
        runtime.journal(journal, lock_timeout=5.0)
        for n in range(3):
            assert zart.run(serve_lib.ticker, n, execution_id=f"here-{n}", journal=journal, display=False) == \
                {"data": n}
            runtime.journal(journal).close()
        assert serve.poll() is None  # serve did not fail on the journal this process held
    finally:
        code = processes.stop(serve)
    assert code == 0, serve_log.read_text()


def test_serve_refuses_a_journal_that_does_not_exist(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "zart_nb", "serve", "--journal", str(tmp_path / "typo.duckdb")],
                          capture_output=True, text=True, cwd=tmp_path, env=processes.env(), timeout=60)
    assert proc.returncode != 0 and "no journal at" in proc.stderr
    assert not (tmp_path / "typo.duckdb").exists()
    empty = subprocess.run([sys.executable, "-m", "zart_nb", "serve"], capture_output=True, text=True, cwd=tmp_path,
                           env=processes.env(), timeout=60)
    assert empty.returncode == 2 and "no journal to serve in ./.zart/" in empty.stderr


def test_serve_of_the_folder_picks_up_a_journal_made_after_it_started(tmp_path):
    first = tmp_path / ".zart" / "journal.duckdb"
    zart.recurring(serve_lib.ticker, "0 0 1 1 *", journal=first)
    runtime.journal(first).close()
    serve_log = tmp_path / "serve.log"
    with serve_log.open("ab") as stderr:
        serve = subprocess.Popen([sys.executable, "-m", "zart_nb", "serve", "--poll", "0.5"],
                                 stdout=subprocess.DEVNULL, stderr=stderr, cwd=tmp_path, env=processes.env())
    try:
        wait_until(lambda: "zart serve: 1 journal |" in serve_log.read_text(), what="serve to start")
        later = tmp_path / ".zart" / "later.duckdb"  # a notebook's first run makes a journal of its own
        zart.recurring(serve_lib.ticker, every=1, data="later", journal=later)
        runtime.journal(later).close()
        wait_until(lambda: "zart serve: 2 journals |" in serve_log.read_text(), what="serve to find it")
        wait_until(lambda: any(r.status is zart.ExecutionStatus.COMPLETED and r.execution_id.startswith("ticker@")
                               for r in _read(later, lambda reader: reader.list_executions())),
                   what="a tick of the new journal to complete")
    finally:
        code = processes.stop(serve)
    assert code == 0, serve_log.read_text()
    assert _read(first, lambda reader: reader.list_executions()) == []
