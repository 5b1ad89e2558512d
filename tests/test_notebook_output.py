"""What steps print: captured in the worker, shown live with the step key, journaled per attempt."""
import os
import subprocess
import sys

import duckdb
import pytest
from nbhelpers import execute, text
from output_helpers import parts

import zart_nb as zart
from zart_nb._journal import SCHEMA_VERSION

PROGRAM = r"""
import os, sys
import zart_nb as zart

@zart.step("talk")
def talk(i):
    print(f"out {i} line 1")
    print(f"out {i} line 2")
    print(f"err {i}", file=sys.stderr)
    return i

@zart.step("flaky", retries=1)
def flaky(marker):
    print("trying", zart.context().attempt)
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("first attempt fails")
    return "ok"

@zart.step("loud")
def loud():
    for n in range(20000):
        print(f"line {n:05d} " + "x" * 20)
    return "done"

@zart.workflow("chatty")
def chatty(marker):
    handles = [zart.schedule(talk, i) for i in range(4)]
    return zart.wait(handles) + [flaky(marker), loud()]

print("result", zart.run(chatty, sys.argv[1], execution_id="chatty-1", journal="j.duckdb", workers=2))
"""


def test_step_output_is_prefixed_live_and_journaled_per_attempt(tmp_path):
    proc = subprocess.run([sys.executable, "-c", PROGRAM, str(tmp_path / "marker")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out, err = proc.stdout.splitlines(), proc.stderr.splitlines()
    for i in range(4):  # whole lines, each with its step key, on the stream it was written to
        assert f"[talk#{i}] out {i} line 1" in out and f"[talk#{i}] out {i} line 2" in out
        assert f"[talk#{i}] err {i}" in err
    assert "[flaky#0] trying 1" in out and "[flaky#0 attempt 2] trying 2" in out
    assert out[-1] == "result [0, 1, 2, 3, 'ok', 'done']"
    reader = zart.journal(tmp_path / "j.duckdb")
    try:
        steps = {s.step_key: s for s in reader.list_steps("chatty-1")}
        assert steps["talk#2"].log == "out 2 line 1\nout 2 line 2\nerr 2\n"
        assert steps["flaky#0"].log == "trying 2\n"
        (attempt,) = reader.list_attempts("chatty-1")
        assert (attempt.step_key, attempt.attempt, attempt.log) == ("flaky#0", 1, "trying 1\n")
        loud = steps["loud#0"].log
        head, skipped, tail = parts(loud)  # its first 16 KiB and last 64 KiB, and the count between
        assert head == "".join(f"line {n:05d} " + "x" * 20 + "\n" for n in range(512))
        assert tail == "".join(f"line {n:05d} " + "x" * 20 + "\n" for n in range(20000 - 2048, 20000))
        assert skipped == (20000 - 512 - 2048) * 32
    finally:
        reader.close()
    cli = subprocess.run([sys.executable, "-m", "zart_nb._cli", "show", "chatty-1", "--output",
                          "--journal", "j.duckdb"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert "Output of flaky#0 (run 1, attempt 1):\ntrying 1" in cli.stdout
    assert "Output of talk#3 (run 1, attempt 1):\nout 3 line 1" in cli.stdout


@pytest.mark.filterwarnings("ignore")
def test_step_output_lands_in_the_cell_that_runs_the_workflow(tmp_path):
    nb = execute([
        "import zart_nb as zart\n"
        "@zart.step('say')\n"
        "def say(i):\n"
        "    print('hello', i)\n"
        "    return i\n"
        "@zart.workflow('greet')\n"
        "def greet(n):\n"
        "    return zart.wait([zart.schedule(say, i) for i in range(n)])",
        "print('before')\nout = zart.run(greet, 6, journal='j.duckdb', workers=2)\nprint('after', out)",
        "print('next cell')",
    ], tmp_path)
    lines = text(nb.cells[1], "stdout").splitlines()
    assert lines[0] == "before" and lines[-1] == "after [0, 1, 2, 3, 4, 5]"
    assert sorted(lines[1:-1]) == [f"[say#{i}] hello {i}" for i in range(6)]
    assert text(nb.cells[2]) == "next cell\n"


def test_a_version_1_journal_is_upgraded_and_keeps_its_rows(tmp_path):
    path = tmp_path / "j.duckdb"
    proc = subprocess.run([sys.executable, "-c", PROGRAM, str(tmp_path / "marker")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    conn = duckdb.connect(str(path))  # make it what version 1 wrote
    conn.execute("ALTER TABLE steps DROP COLUMN log")
    conn.execute("ALTER TABLE attempts DROP COLUMN log")
    conn.execute("DROP TABLE step_counts")  # (added by version 3)
    conn.execute("DROP TABLE in_flight")  # (added by version 4, with three columns of runs)
    for column in ("ended_by", "end_detail", "alive_at", "trigger", "trigger_detail"):  # (versions 4 and 6)
        conn.execute(f"ALTER TABLE runs DROP COLUMN {column}")
    conn.execute("DROP INDEX executions_status")  # (DuckDB drops no column of an indexed table)
    conn.execute("ALTER TABLE executions DROP COLUMN deadline")  # (added by version 5)
    conn.execute("ALTER TABLE executions DROP COLUMN parent_execution_id")  # (added by version 8)
    for column in ("waits_for", "wake_at", "lease_owner", "lease_until"):  # (added by version 10)
        conn.execute(f"ALTER TABLE executions DROP COLUMN {column}")
    conn.execute("CREATE INDEX executions_status ON executions(status)")
    conn.execute("DROP TABLE schedules")  # (added by version 7)
    conn.execute("DROP TABLE events")  # (added by version 9)
    conn.execute("DROP TABLE value_stores")  # (added by version 11)
    conn.execute("UPDATE zart_meta SET value = '1' WHERE key = 'schema_version'")
    conn.close()
    reader = zart.journal(path)
    try:
        steps = reader.list_steps("chatty-1")
        assert len(steps) == 6 and all(s.log is None for s in steps)
        assert reader.execution_record("chatty-1").output_preview == "[0, 1, 2, 3, 'ok', 'done']"
    finally:
        reader.close()
    conn = duckdb.connect(str(path), read_only=True)
    assert conn.execute("SELECT value FROM zart_meta WHERE key = 'schema_version'").fetchone() == (
        str(SCHEMA_VERSION),)
    conn.close()
    os.unlink(tmp_path / "marker")


TOGETHER = r"""
import os, time
import zart_nb as zart

@zart.step("tick")
def tick(name, workdir):
    open(os.path.join(workdir, name + ".started"), "w").close()
    deadline = time.monotonic() + 60  # both executions run now: each prints once the other's step started
    while not all(os.path.exists(os.path.join(workdir, n + ".started")) for n in ("c-0", "c-1")):
        if time.monotonic() > deadline:
            raise TimeoutError("the other execution's step")
        time.sleep(0.01)
    print("tick of", name)
    return name

@zart.workflow("together")
def together(params):
    return zart.wait([zart.schedule(tick, *params)])[0]
"""


def test_lines_of_two_executions_running_together_name_their_execution(tmp_path):
    """Two executions started together in a script (and in one cell) print side by side: each line
    names its execution as well as its step. (Before, both printed ``[tick#0]``.) An execution
    running alone keeps the short prefix (the tests above)."""
    program = TOGETHER + (
        "handles = [zart.start(together, (f'c-{k}', os.getcwd()), execution_id=f'c-{k}', journal='j.duckdb',"
        " workers=2) for k in range(2)]\n"
        "print('result', [h.result() for h in handles])\n")
    proc = subprocess.run([sys.executable, "-c", program], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert sorted(lines[:-1]) == ["[tick#0 of c-0] tick of c-0", "[tick#0 of c-1] tick of c-1"]
    assert lines[-1] == "result ['c-0', 'c-1']"

    cell = tmp_path / "cell"
    cell.mkdir()
    nb = execute([
        "import os\n" + TOGETHER,
        "handles = [zart.start(together, (f'c-{k}', os.getcwd()), execution_id=f'c-{k}', journal='j.duckdb',"
        " workers=2) for k in range(2)]\n"
        "print('result', [h.result() for h in handles])",
    ], cell)
    lines = text(nb.cells[1], "stdout").splitlines()
    assert sorted(line for line in lines if line.startswith("[")) == [
        "[tick#0 of c-0] tick of c-0", "[tick#0 of c-1] tick of c-1"]


@zart.step("say-when")
def say_when(workdir: str) -> str:
    import time

    deadline = time.monotonic() + 60
    while not os.path.exists(os.path.join(workdir, "go")):  # the sinks are added before it prints
        if time.monotonic() > deadline:
            raise TimeoutError("go")
        time.sleep(0.01)
    print("said")
    return "ok"


@zart.workflow("say-when-flow")
def say_when_flow(workdir: str) -> str:
    return say_when(workdir)


def test_an_output_sink_of_four_parameters_still_gets_the_lines(tmp_path):
    """``Execution.add_output_sink`` calls a sink with a fifth argument now (the execution's id to name,
    or None); a sink written for the four it took before is called with those four."""
    four: list = []
    five: list = []
    execution = zart.start(say_when_flow, str(tmp_path), execution_id="sinks", journal=tmp_path / "j.duckdb")
    execution.add_output_sink(lambda key, attempt, stream, text: four.append((key, attempt, stream, text)))
    execution.add_output_sink(lambda *line: five.append(line))
    (tmp_path / "go").touch()
    assert execution.result(timeout=60) == "ok"
    assert four == [("say-when#0", 1, "stdout", "said\n")]
    assert five == [("say-when#0", 1, "stdout", "said\n", None)]
