"""The `zart` command, run as a user runs it (a real subprocess)."""
import os
import re
import subprocess
import sys

SEED_OUTPUT = """\
=== Zart Parallel Steps Example ===

Starting execution 'parallel-demo-test'...
  Services: ["auth-api", "payments", "users-db"]

Worker started. Steps executing...

Execution completed!
  Services checked: 3
  Total issues:     1

  Service: auth-api — status: healthy (42ms)
  Service: payments — status: degraded (156ms)
    Issue: high latency detected
  Service: users-db — status: healthy (28ms)
"""


def zart_cli(*args, cwd, env=None):
    return subprocess.run([sys.executable, "-m", "zart_nb._cli", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd, env={**os.environ, **(env or {})})


def test_demo_prints_the_seed_output_on_the_default_journal(tmp_path):
    env = {"ZART_JOURNAL": ""}
    proc = zart_cli("demo", "--execution-id", "parallel-demo-test", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == SEED_OUTPUT
    journal = tmp_path / ".zart" / "journal.duckdb"
    assert journal.exists()
    assert (journal.stat().st_mode & 0o777) == 0o600
    assert ((tmp_path / ".zart").stat().st_mode & 0o777) == 0o700


def test_demo_default_id_and_journal_option(tmp_path):
    journal = tmp_path / "elsewhere.duckdb"
    proc = zart_cli("demo", "--journal", str(journal), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"Starting execution 'parallel-demo-\d+'", proc.stdout)
    assert journal.exists() and not (tmp_path / ".zart").exists()


def test_ls_and_show_print_without_unpickling(tmp_path):
    journal = tmp_path / "j.duckdb"
    assert zart_cli("--journal", str(journal), "demo", "--execution-id", "d1", cwd=tmp_path).returncode == 0
    ls = zart_cli("--journal", str(journal), "ls", cwd=tmp_path)
    assert ls.returncode == 0, ls.stderr
    assert re.search(r"^d1\s+health-check\s+completed\s+3/3\s+1\s", ls.stdout, re.M)
    show = zart_cli("show", "d1", "--journal", str(journal), cwd=tmp_path)
    assert show.returncode == 0, show.stderr
    assert "Execution d1  [completed]" in show.stdout
    assert re.search(r"check-service#1\s+completed\s+1\s+\S+\s+executed \(new\)\s+worker-\d+:pid\d+\s+'payments'\s+"
                     r"ServiceResult\(name='payments', status='degraded'", show.stdout)
    # a second demo run of the same id is reused
    again = zart_cli("--journal", str(journal), "demo", "--execution-id", "d1", cwd=tmp_path)
    assert again.returncode == 0 and "Total issues:     1" in again.stdout


def test_unknown_execution_and_bad_journal_are_clear_errors(tmp_path):
    journal = tmp_path / "j.duckdb"
    missing = zart_cli("--journal", str(journal), "show", "nope", cwd=tmp_path)
    assert missing.returncode == 1 and "no execution 'nope'" in missing.stderr
    bogus = tmp_path / "bogus.duckdb"
    bogus.write_text("not a database at all")
    bad = zart_cli("--journal", str(bogus), "ls", cwd=tmp_path)
    assert bad.returncode == 1
    assert "not a DuckDB database" in bad.stderr and str(bogus) in bad.stderr
    assert bogus.read_text() == "not a database at all"


def test_cancel_marks_an_unfinished_execution(tmp_path, journal):
    import zart_nb as zart
    from zart_nb._runtime import runtime

    j = runtime.journal(journal)
    with j.hold():
        j.begin_run("stuck-1", "wf", "def", b"", "h", "None", "rerun")
    j.close()
    proc = zart_cli("--journal", str(journal), "cancel", "stuck-1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "cancelled" in proc.stdout
    assert zart.journal(journal).list_executions()[0].status is zart.ExecutionStatus.CANCELLED


def test_the_installed_zart_command_runs_the_demo(tmp_path):
    """The README's first command: `pip install . && zart demo` (the console script, not -m)."""
    import shutil

    zart_bin = shutil.which("zart", path=os.path.dirname(sys.executable))
    assert zart_bin, "the `zart` console script is not installed next to this Python"
    proc = subprocess.run([zart_bin, "demo", "--execution-id", "parallel-demo-test"], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path, env={**os.environ, "ZART_JOURNAL": ""})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == SEED_OUTPUT


def test_ls_and_show_escape_control_characters(tmp_path, journal):
    import zart_nb as zart

    @zart.step
    def hostile(x):
        raise ValueError("\x1b[2J\x1b]0;pwned\x07 cleared")

    @zart.workflow
    def flow(x):
        return zart.wait([zart.schedule(hostile, x)])

    evil_id = "id\x1b[31m-red\u202e"
    try:
        zart.run(flow, 1, execution_id=evil_id, journal=journal)
    except zart.StepError:
        pass
    zart.journal(journal).close()
    listed = zart_cli("--journal", str(journal), "ls", cwd=tmp_path)
    shown = zart_cli("--journal", str(journal), "show", evil_id, "--traceback", cwd=tmp_path)
    for proc, code in ((listed, 0), (shown, 3)):  # show exits 3: the execution failed
        assert proc.returncode == code, proc.stderr
        assert "\x1b" not in proc.stdout and "\x07" not in proc.stdout and "\u202e" not in proc.stdout
        assert "\\x1b[31m-red\\u202e" in proc.stdout
    assert "\\x1b[2J\\x1b]0;pwned\\x07 cleared" in shown.stdout


# --- issue 13 item 6: paging, runs, stats, --json, delete, exit codes -------------------------------

STEP_ROW = re.compile(r"^n#(\d+)\s+completed\s", re.M)


def _fan_out(journal, execution_id, count):
    import zart_nb as zart

    @zart.step("n")
    def n(i):
        return i

    @zart.workflow("fan")
    def fan(k):
        return len(zart.wait([zart.schedule(n, i) for i in range(k)]))

    zart.run(fan, count, execution_id=execution_id, journal=journal)
    zart.journal(journal).close()


def test_show_pages_a_long_execution_and_says_how_to_see_the_rest(tmp_path):
    import json
    from datetime import datetime

    journal = tmp_path / "j.duckdb"
    _fan_out(journal, "big", 1200)
    first = zart_cli("show", "big", "--journal", str(journal), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert [int(i) for i in STEP_ROW.findall(first.stdout)] == list(range(50))
    assert "Steps (1-50 of 1200)" in first.stdout
    assert "1150 more: `zart show big --offset 50` for the next 50" in first.stdout and "--all" in first.stdout
    last = zart_cli("show", "big", "--offset", "1190", "--limit", "20", "--journal", str(journal), cwd=tmp_path)
    assert [int(i) for i in STEP_ROW.findall(last.stdout)] == list(range(1190, 1200))
    assert "more:" not in last.stdout
    every = zart_cli("show", "big", "--all", "--journal", str(journal), cwd=tmp_path)
    assert every.returncode == 0 and len(STEP_ROW.findall(every.stdout)) == 1200

    page = json.loads(zart_cli("show", "big", "--json", "--journal", str(journal), cwd=tmp_path).stdout)
    assert page["execution"]["status"] == "completed" and page["execution"]["steps_total"] == 1200
    assert [s["step_key"] for s in page["steps"]] == [f"n#{i}" for i in range(50)] and page["more"] == 1150
    assert datetime.fromisoformat(page["execution"]["started_at"]).tzinfo is not None
    assert [r["run_number"] for r in page["runs"]] == [1]
    whole = json.loads(zart_cli("show", "big", "--all", "--json", "--journal", str(journal), cwd=tmp_path).stdout)
    assert len(whole["steps"]) == 1200 and whole["steps"][-1]["step_key"] == "n#1199"

    # `| head`: the reader goes away after a line; no traceback, and an exit code that says so
    proc = subprocess.Popen([sys.executable, "-m", "zart_nb._cli", "show", "big", "--all", "--journal", str(journal)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    assert proc.stdout.readline().startswith(b"Execution big")
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_show_all_reads_keyset_chunks_after_the_last_step_printed(tmp_path, monkeypatch, capsys):
    from zart_nb import _cli, _cli_read
    from zart_nb._journal.reader import FileJournalReader

    journal = tmp_path / "j.duckdb"
    _fan_out(journal, "chunked", 1200)
    monkeypatch.setattr(_cli_read, "CHUNK", 500)
    asked = []
    list_steps = FileJournalReader.list_steps

    def recording(self, execution_id, **kwargs):
        asked.append((kwargs.get("offset", 0), kwargs.get("after")))
        return list_steps(self, execution_id, **kwargs)

    monkeypatch.setattr(FileJournalReader, "list_steps", recording)
    assert _cli.main(["show", "chunked", "--all", "--offset", "100", "--journal", str(journal)]) == 0
    assert [int(i) for i in STEP_ROW.findall(capsys.readouterr().out)] == list(range(100, 1200))
    # the first chunk from --offset, then each after the last key printed (never an OFFSET past them)
    assert asked == [(100, None), (0, "n#599"), (0, "n#1099"), (0, "n#1199")]


def test_runs_stats_json_and_exit_codes_say_what_happened(tmp_path):
    import json

    import zart_nb as zart

    flag = tmp_path / "fixed"

    @zart.step("ok")
    def ok(x):
        return x

    @zart.step("fragile")
    def fragile(path):
        if not os.path.exists(path):
            raise ValueError("not yet")
        return "fine"

    @zart.workflow("mend")
    def mend(path):
        return [ok(1), fragile(path)]

    a, b = tmp_path / ".zart" / "a.duckdb", tmp_path / ".zart" / "b.duckdb"
    for journal in (a, b):
        try:
            zart.run(mend, str(flag), execution_id="broken" if journal == b else "mended", journal=journal)
        except zart.StepError:
            pass
    flag.touch()
    zart.run(mend, str(flag), execution_id="mended", journal=a)
    zart.run(lambda x: x, 1, execution_id="dup", journal=a)
    zart.run(lambda x: x, 2, execution_id="dup", journal=b)
    for journal in (a, b):
        zart.journal(journal).close()

    runs = zart_cli("runs", "mended", cwd=tmp_path)  # found in a.duckdb without --journal
    assert runs.returncode == 0, runs.stderr
    lines = runs.stdout.splitlines()
    assert lines[0].split() == ["RUN", "STATUS", "STARTED", "FINISHED", "DURATION", "EXECUTED", "REUSED", "PID",
                                "TRIGGER", "ENDED"]
    assert [(line.split()[0], line.split()[1], line.split()[-5], line.split()[-4], line.split()[-2],
             line.split()[-1]) for line in lines[1:]] == [("1", "failed", "2", "0", "initial", "failed"),
                                                          ("2", "completed", "1", "1", "resume", "completed")]
    as_json = json.loads(zart_cli("runs", "mended", "--json", cwd=tmp_path).stdout)
    assert [(r["status"], r["executed"], r["reused"], r["ended_by"], r["trigger"]) for r in as_json["runs"]] == [
        ("failed", 2, 0, "failed", "initial"), ("completed", 1, 1, "completed", "resume")]
    assert as_json["journal"] == str(a) and as_json["status"] == "completed"
    assert zart_cli("runs", "broken", cwd=tmp_path).returncode == 3  # 3: failed
    assert zart_cli("show", "broken", cwd=tmp_path).returncode == 3

    both = zart_cli("show", "dup", cwd=tmp_path)
    assert both.returncode == 1 and "in 2 journals" in both.stderr
    assert str(a.relative_to(tmp_path)) in both.stderr and str(b.relative_to(tmp_path)) in both.stderr
    assert zart_cli("show", "dup", "--journal", str(b), cwd=tmp_path).returncode == 0

    stats = zart_cli("stats", cwd=tmp_path)
    assert stats.returncode == 0, stats.stderr
    table = {line.split()[0]: line.split()[1:] for line in stats.stdout.splitlines()}
    assert table["JOURNAL"] == ["PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "INTERRUPTED", "SLEEPING",
                                "WAITING", "TOTAL", "STORE"]
    assert table["a"] == ["0", "0", "2", "0", "0", "0", "0", "0", "2", "-"]  # no value store: "-"
    assert table["b"] == ["0", "0", "1", "1", "0", "0", "0", "0", "2", "-"]
    assert table["all"][-2] == "4"
    counted = json.loads(zart_cli("stats", "--json", cwd=tmp_path).stdout)
    assert counted["stats"] == {"completed": 3, "failed": 1} and counted["total"] == 4
    assert [(j["name"], j["state"], j["executions"]) for j in counted["journals"]] == [("a", "file", 2),
                                                                                       ("b", "file", 2)]
    listed = json.loads(zart_cli("ls", "--json", cwd=tmp_path).stdout)
    assert sorted((e["execution_id"], os.path.basename(e["journal"])) for e in listed["executions"]) == [
        ("broken", "b.duckdb"), ("dup", "a.duckdb"), ("dup", "b.duckdb"), ("mended", "a.duckdb")]
    assert listed["total"] == 4
    resumed = zart_cli("resume", "broken", cwd=tmp_path)  # found in b.duckdb, as show and cancel find it
    assert resumed.returncode == 0 and "Execution completed (run 2)" in resumed.stdout, resumed.stderr
    assert zart_cli("show", "broken", cwd=tmp_path).returncode == 0
    cut = zart_cli("ls", "--limit", "1", cwd=tmp_path)
    assert len(cut.stdout.splitlines()) == 2 and "1 of 4 executions shown" in cut.stderr, cut.stderr
    assert "3 failed, 4 running, 5 pending, 6 cancelled, 7 interrupted" in zart_cli("show", "--help",
                                                                                    cwd=tmp_path).stdout


def test_delete_asks_on_a_terminal_and_wants_yes_elsewhere(tmp_path):
    import pty

    import zart_nb as zart

    journal = tmp_path / ".zart" / "nb.duckdb"
    for name in ("d1", "d2", "d3"):
        zart.run(lambda x: x, 1, execution_id=name, journal=journal)
    zart.journal(journal).close()

    def ids():
        reader = zart.journal(journal)
        try:
            return sorted(r.execution_id for r in reader.list_executions())
        finally:
            reader.close()

    def on_terminal(answer, *args):
        master, slave = pty.openpty()
        try:
            os.write(master, answer)
            return subprocess.run([sys.executable, "-m", "zart_nb._cli", "delete", *args], stdin=slave,
                                  capture_output=True, text=True, timeout=60, cwd=tmp_path)
        finally:
            os.close(master)
            os.close(slave)

    piped = subprocess.run([sys.executable, "-m", "zart_nb._cli", "delete", "d1"], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert piped.returncode == 2 and "--yes" in piped.stderr and "stdin is not a terminal" in piped.stderr
    assert ids() == ["d1", "d2", "d3"]
    refused = on_terminal(b"n\n", "d1")
    assert refused.returncode == 1 and "Delete 'd1' (completed, nb)" in refused.stderr
    assert ids() == ["d1", "d2", "d3"]
    agreed = on_terminal(b"y\n", "d1", "d2")
    assert agreed.returncode == 0, agreed.stderr
    assert "deleted 'd1' (completed)" in agreed.stdout and "deleted 'd2' (completed)" in agreed.stdout
    assert ids() == ["d3"]
    mixed = zart_cli("delete", "nope", "d3", "--yes", cwd=tmp_path)
    assert mixed.returncode == 1 and "no execution 'nope'" in mixed.stderr and "deleted 'd3'" in mixed.stdout
    assert ids() == []


def test_one_duration_formatter_for_the_cli_and_the_tui():
    from zart_tui import fmt

    import zart_nb as zart
    from zart_nb import _cli_format

    assert _cli_format.fmt_duration is zart.format_duration and fmt.seconds_text is zart.format_duration
    cases = {None: "-", 0.35: "350ms", 12.5: "12.5s", 180: "3.0m", 9000: "2.5h"}
    assert {seconds: zart.format_duration(seconds) for seconds in cases} == cases


FAILING_TWICE = r"""
import zart_nb as zart

@zart.step("shaky", retries=1)
def shaky():
    print("trying", zart.context().attempt)
    raise RuntimeError("no luck")

@zart.workflow("shaky-flow")
def flow(_):
    return shaky()

try:
    zart.run(flow, None, execution_id="s1", journal="j.duckdb")
except zart.StepFailed:
    pass
"""


def test_show_output_prints_each_attempt_of_a_failed_step_once(tmp_path):
    """A step whose attempts all failed: ``zart show --output`` prints each attempt's output once (the
    step's own record holds its last attempt's output, also listed among the failed attempts: before,
    that attempt was printed twice)."""
    proc = subprocess.run([sys.executable, "-c", FAILING_TWICE], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    show = zart_cli("show", "s1", "--output", "--journal", "j.duckdb", cwd=tmp_path)
    assert show.returncode == 3, show.stderr  # 3: failed
    headings = [line for line in show.stdout.splitlines() if line.startswith("Output of ")]
    assert headings == ["Output of shaky#0 (run 1, attempt 1):", "Output of shaky#0 (run 1, attempt 2):"]
    assert "Output of shaky#0 (run 1, attempt 2):\ntrying 2" in show.stdout
