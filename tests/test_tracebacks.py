"""`zart show --traceback` as the notebook shows a failure: the user's frames with their source lines,
zart_nb's own frames hidden with a note; a step's `<dynamic-code>` frames get their file back."""
import os
import subprocess
import sys
import textwrap

from zart_nb._tracebacks import locate_dynamic, short_lines

SCRIPT = textwrap.dedent("""\
    import zart_nb as zart

    def helper(x):
        return 1 / x

    @zart.step("flaky")
    def flaky(x):
        y = x - 1
        return helper(y)

    @zart.workflow("wf")
    def wf(x):
        return flaky(x)

    zart.run(wf, 1, execution_id="f1", journal="j.duckdb")
""")


def test_zart_show_traceback_shows_the_users_frames_with_their_source_and_hides_zarts(tmp_path):
    (tmp_path / "fail.py").write_text(SCRIPT)
    ran = subprocess.run([sys.executable, "fail.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 1 and "ZeroDivisionError" in ran.stderr
    shown = subprocess.run([sys.executable, "-m", "zart_nb._cli", "show", "f1", "--traceback", "--journal",
                            "j.duckdb"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert shown.returncode != 2, shown.stderr
    text = shown.stdout[shown.stdout.index("Traceback of flaky#0:"):]
    script = str(tmp_path / "fail.py")
    assert "<dynamic-code>" not in text
    assert f'File "{script}", line 9, in flaky\n    return helper(y)\n' in text
    assert f'File "{script}", line 4, in helper\n    return 1 / x\n' in text
    assert f'File "{script}", line 13, in wf\n    return flaky(x)\n' in text
    assert "zart_nb/_" not in text and "zart_nb" + os.sep + "_" not in text
    assert "(most recent call last; 1 frame of zart_nb's own hidden)" in text  # the worker's frame
    assert "(most recent call last; 3 frames of zart_nb's own hidden)" in text  # the engine's


REMOTE = """Traceback (most recent call last):
  File "/elsewhere/venv/lib/python3.11/site-packages/zart_nb/_executors/worker.py", line 114, in run
    result = fn(*args, **kwargs)
             ^^^^^^^^^^^^^^^^^^^
  File "<dynamic-code>", line 9, in flaky
  File "<dynamic-code>", line 4, in helper
ZeroDivisionError: division by zero
"""


def test_frames_of_a_zart_nb_installed_elsewhere_are_hidden_and_unknown_dynamic_frames_kept():
    lines = short_lines(REMOTE)
    assert lines == ["Traceback (most recent call last; 1 frame of zart_nb's own hidden):",
                     '  File "<dynamic-code>", line 9, in flaky',
                     '  File "<dynamic-code>", line 4, in helper',
                     "ZeroDivisionError: division by zero"]


def test_dynamic_frames_are_located_in_the_step_functions_file(tmp_path):
    source = tmp_path / "cell.py"
    source.write_text(SCRIPT.replace("zart.run(", "# zart.run("))
    namespace = {"__name__": "cellmod"}
    exec(compile(source.read_text(), str(source), "exec"), namespace)
    located = locate_dynamic(REMOTE, namespace["flaky"])
    assert f'  File "{source}", line 9, in flaky\n    return helper(y)\n' in located
    assert f'  File "{source}", line 4, in helper\n    return 1 / x\n' in located
    assert locate_dynamic(REMOTE, None).count("<dynamic-code>") in (0, 2)  # found elsewhere or kept
    assert locate_dynamic(None) is None and locate_dynamic("no frames") == "no frames"


def test_a_notebook_steps_traceback_names_its_cells_source_lines_in_zart_show(tmp_path):
    from nbhelpers import execute

    cells = ["import zart_nb as zart\n\ndef helper(x):\n    return 1 / x",
             '@zart.step("flaky")\ndef flaky(x):\n    y = x - 1\n    return helper(y)',
             '@zart.workflow("wf")\ndef wf(x):\n    return flaky(x)\n\n'
             'zart.run(wf, 1, execution_id="nb1", journal="j.duckdb")']
    nb = execute(cells, tmp_path, allow_errors=True)
    assert any(o.get("ename") == "StepFailed" for o in nb.cells[2].outputs), nb.cells[2].outputs
    shown = subprocess.run([sys.executable, "-m", "zart_nb._cli", "show", "nb1", "--traceback", "--journal",
                            "j.duckdb"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    text = shown.stdout[shown.stdout.index("Traceback of flaky#0:"):shown.stdout.index("Traceback of the workflow")]
    assert "<dynamic-code>" not in text and "zart_nb/_" not in text, text
    assert ", line 4, in flaky\n    return helper(y)\n" in text and ", line 4, in helper\n    return 1 / x\n" in text
