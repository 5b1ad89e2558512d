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
    from zart_nb._journal import Journal

    j = Journal(journal)
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
