"""The live progress widget in a real kernel (nbclient, ipykernel 7), and the text line outside one."""
import os
import pty
import subprocess
import sys

import pytest
from nbhelpers import bar_of, displayed_models, execute, plain, text

pytestmark = pytest.mark.filterwarnings("ignore")

SETUP = """
import os, time
import zart_nb as zart

@zart.step("square")
def square(i):
    return i * i

@zart.step("flaky")
def flaky(i):
    if i == 2:
        raise ValueError(f"item {i} is broken")
    return i

@zart.workflow("fan")
def fan(n):
    return sum(zart.wait([zart.schedule(square, i) for i in range(n)]))

@zart.workflow("partly-broken")
def partly_broken(n):
    return zart.wait([zart.schedule(flaky, i) for i in range(n)])

J = dict(journal="j.duckdb", workers=2)
"""


def test_widget_shows_progress_and_ends_in_the_right_colour(tmp_path):
    nb = execute([
        SETUP,
        "zart.run(fan, 30, **J)",                                        # 1: blocking run
        "e = zart.start(fan, 12, **J)\nprint(e.status.value)",            # 2: returns at once
        "print(e.result(60))",                                           # 3
        "zart.run(fan, 30, **J)",                                        # 4: completed: from the journal
        "try:\n    zart.run(partly_broken, 4, **J)\nexcept zart.StepFailed as exc:\n    print('failed', exc.step_key)",
        "zart.run(fan, 5, display=False, **J)",                          # 6: no widget
        "os.environ['ZART_DISPLAY'] = '0'\nzart.run(fan, 6, **J)",        # 7: no widget
        "reg = zart.TaskRegistry(); reg.register('fan', fan)\n"
        "s = zart.DurableScheduler(reg, journal='j.duckdb', workers=2)\n"
        "del os.environ['ZART_DISPLAY']\ns.start_and_wait_for('fan-7', 'fan', 7, timeout=60)",
    ], tmp_path)
    cells = nb.cells
    bar = bar_of(nb, cells[1])
    assert (bar["value"], bar["max"], bar["bar_style"]) == (30, 30, "success")
    assert plain(cells[1])[0] == "zart: fan completed, 30/30 steps"
    assert text(cells[2]).strip() in ("running", "completed")  # right after start(): never "pending"
    bar = bar_of(nb, cells[2])
    assert (bar["value"], bar["max"], bar["bar_style"]) == (12, 12, "success")
    assert text(cells[3]).strip() == str(sum(i * i for i in range(12)))
    assert plain(cells[4])[0] == "zart: fan completed in an earlier run (output from the journal)"
    assert bar_of(nb, cells[4])["bar_style"] == "success"
    bar = bar_of(nb, cells[5])
    assert bar["bar_style"] == "danger" and bar["value"] == bar["max"] == 4
    assert plain(cells[5])[0] == "zart: fan failed, 3/4 steps (1 failed)".replace("fan", "partly-broken")
    assert "failed flaky#2" in text(cells[5])
    assert displayed_models(cells[6]) == [] and displayed_models(cells[7]) == []
    bar = bar_of(nb, cells[8])
    assert (bar["value"], bar["bar_style"]) == (7, "success")


PROGRAM = """
import zart_nb as zart
@zart.step("one")
def one(i):
    return i
@zart.workflow("w")
def w(n):
    return len(zart.wait([zart.schedule(one, i) for i in range(n)]))
print("result", zart.run(w, 20, journal="j.duckdb", workers=1))
import sys
print("ui modules", sorted(m for m in ("IPython", "ipywidgets") if m in sys.modules))
"""


def test_text_progress_on_a_terminal_and_silence_in_a_pipe(tmp_path):
    env = dict(os.environ, ZART_WORKERS="1")
    piped = subprocess.run([sys.executable, "-c", PROGRAM], cwd=tmp_path, capture_output=True, text=True,
                           env=env, timeout=120)
    assert piped.returncode == 0, piped.stderr
    assert "result 20" in piped.stdout and piped.stderr == ""
    assert "ui modules []" in piped.stdout  # a script never loads the notebook libraries
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-c", PROGRAM.replace("w, 20", "w, 21")], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=follower, env=env, timeout=120)
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
    assert proc.returncode == 0
    line = b"".join(chunks).decode().replace("\r\n", "\n").rstrip("\n").split("\r")[-1]
    assert "21/21 done" in line and "[completed]" in line and "run 1" in line
