"""Re-running an execution id resumes from the journal: reuse, re-run reasons, runs, on_change."""
import subprocess
import sys
import textwrap

import pytest
from steps_lib import add, calls, flaky_flow, square, squares

import zart_nb as zart

# Replay is the engine's business, not the pool's: steps run inline (the subprocess tests still
# start real workers in their own processes).
pytestmark = pytest.mark.usefixtures("inline")

def test_completed_execution_returns_stored_output_without_dispatch(journal, tmp_path):
    data = {"xs": [1, 2, 3], "counter_dir": str(tmp_path)}
    assert zart.run(squares, data, execution_id="sq-1", journal=journal) == 14
    first_calls = calls(tmp_path)
    assert sorted(first_calls) == ["add:14+0", "square:1", "square:2", "square:3"]
    assert zart.run(squares, data, execution_id="sq-1", journal=journal) == 14
    assert calls(tmp_path) == first_calls  # nothing ran again
    runs = zart.journal(journal).list_runs("sq-1")
    assert [r.run_number for r in runs] == [1]  # a completed execution does not even open a run


def test_failed_execution_resumes_and_reuses_completed_steps(journal, tmp_path):
    marker = tmp_path / "fail-now"
    marker.touch()
    data = {"xs": [1, 2, 3, 4], "marker": str(marker), "counter_dir": str(tmp_path)}
    with pytest.raises(zart.StepFailed, match="flaky#2"):
        zart.run(flaky_flow, data, execution_id="fl-1", journal=journal)
    assert sorted(calls(tmp_path)) == ["flaky:1", "flaky:2", "flaky:3", "flaky:4"]
    marker.unlink()
    assert zart.run(flaky_flow, data, execution_id="fl-1", journal=journal) == [10, 20, 30, 40]
    assert sorted(calls(tmp_path)) == ["flaky:1", "flaky:2", "flaky:3", "flaky:3", "flaky:4"]

    j = zart.journal(journal)
    runs = j.list_runs("fl-1")
    assert [(r.run_number, r.status.value, r.executed, r.reused) for r in runs] == [
        (1, "failed", 4, 0), (2, "completed", 1, 3)]
    steps = {s.step_key: s for s in j.list_steps("fl-1")}
    assert steps["flaky#2"].run_number == 2 and steps["flaky#2"].reason == "failed before"
    assert steps["flaky#0"].run_number == 1  # reused in run 2, executed in run 1
    history = [s for s in j.list_steps("fl-1", current_only=False) if s.step_key == "flaky#2"]
    assert [(s.run_number, s.status.value) for s in history] == [(1, "failed"), (2, "completed")]


def test_changed_arguments_rerun_and_keep_superseded_record(journal):
    @zart.workflow("args-change")
    def flow(xs):
        return zart.wait([zart.schedule(square, x) for x in xs])

    zart.run(flow, [1, 2], execution_id="ac-1", journal=journal)
    assert zart.run(flow, [1, 5], execution_id="ac-1", journal=journal) == [1, 25]
    j = zart.journal(journal)
    current = {s.step_key: s for s in j.list_steps("ac-1")}
    assert current["square#0"].run_number == 1
    assert current["square#1"].run_number == 2 and current["square#1"].reason == "arguments changed"
    all_rows = [s for s in j.list_steps("ac-1", current_only=False) if s.step_key == "square#1"]
    assert [s.output_preview for s in all_rows] == ["4", "25"]


def test_changed_step_code_reruns_only_that_step(journal):
    def make(body):
        step_v = zart.step("calc")(body)

        @zart.workflow("code-change")
        def flow(xs):
            return [step_v(x) for x in xs] + [add(1, 1)]

        return flow

    first = make(lambda x: x + 1)
    assert zart.run(first, [1, 2], execution_id="cc-1", journal=journal) == [2, 3, 2]
    second = make(lambda x: x + 100)
    assert zart.run(second, [1, 2], execution_id="cc-1", journal=journal) == [101, 102, 2]
    steps = {s.step_key: s for s in zart.journal(journal).list_steps("cc-1")}
    assert steps["calc#0"].reason == "code changed" and steps["calc#0"].run_number == 2
    assert steps["add#0"].run_number == 1


def test_on_change_error_refuses_changed_steps(journal):
    @zart.workflow("strict")
    def flow(xs):
        return zart.wait([zart.schedule(square, x) for x in xs])

    zart.run(flow, [1, 2], execution_id="st-1", journal=journal)
    with pytest.raises(zart.NonDeterminism, match="st-1"):
        zart.run(flow, [1, 3], execution_id="st-1", journal=journal, on_change="error")
    # the default re-runs it
    assert zart.run(flow, [1, 3], execution_id="st-1", journal=journal) == [1, 9]


def test_default_execution_id_is_stable_for_the_same_input(journal, tmp_path):
    data = {"xs": [4], "counter_dir": str(tmp_path)}
    assert zart.run(squares, data, journal=journal) == 16
    assert zart.run(squares, dict(data), journal=journal) == 16
    assert calls(tmp_path).count("square:4") == 1
    ids = [r.execution_id for r in zart.journal(journal).list_executions()]
    assert len(ids) == 1 and ids[0].startswith("squares-")


def test_zart_resume_finishes_an_execution_whose_process_is_gone(journal, tmp_path):
    """A script defines its workflow in __main__, fails midway and exits; `zart resume` finishes it."""
    marker = tmp_path / "fail-now"
    marker.touch()
    script = tmp_path / "notebook_like.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys
        import zart_nb as zart

        @zart.step("stage")
        def stage(i, marker):
            if i == 2 and os.path.exists(marker):
                raise RuntimeError("not yet")
            return i * i

        @zart.workflow("staged")
        def staged(n):
            return sum(stage(i, {str(marker)!r}) for i in range(n))

        try:
            zart.run(staged, 4, execution_id="gone-1", journal={str(journal)!r}, workers=1)
        except zart.StepFailed as exc:
            print("FAILED", exc.step_key)
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert "FAILED stage#2" in proc.stdout, proc.stderr
    script.unlink()  # the defining code is gone
    marker.unlink()
    cli = subprocess.run([sys.executable, "-m", "zart_nb._cli", "--journal", str(journal), "resume",
                          "gone-1"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert cli.returncode == 0, cli.stderr
    assert "output: 14" in cli.stdout
    runs = zart.journal(journal).list_runs("gone-1")
    assert [(r.status.value, r.executed, r.reused) for r in runs] == [("failed", 3, 0), ("completed", 2, 2)]


def test_zart_resume_after_the_driver_was_killed(journal, tmp_path):
    """SIGKILL mid-run, the notebook/script is gone: `zart resume` finishes from the journal alone."""
    import os
    import signal

    from conftest import wait_until

    gate, started, log = tmp_path / "gate", tmp_path / "started", tmp_path / "calls.log"
    script = tmp_path / "doomed.py"
    script.write_text(textwrap.dedent(f"""
        import os, time
        import zart_nb as zart

        @zart.step("part")
        def part(i):
            with open({str(log)!r}, "a") as handle:
                handle.write(f"part{{i}}\\n")
            if i == 3:
                open({str(started)!r}, "w").close()
                while not os.path.exists({str(gate)!r}):
                    time.sleep(0.01)
            return i

        @zart.workflow("doomed")
        def doomed(n):
            return [part(i) for i in range(n)]

        zart.run(doomed, 5, execution_id="kill-1", journal={str(journal)!r}, workers=1)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path)
    try:
        wait_until(started.exists, timeout=60, what="step part#3 to start")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    script.unlink()
    gate.touch()
    cli = subprocess.run([sys.executable, "-m", "zart_nb._cli", "--journal", str(journal), "resume",
                          "kill-1"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert cli.returncode == 0, cli.stderr
    assert "was interrupted" in cli.stdout and "output: [0, 1, 2, 3, 4]" in cli.stdout
    assert log.read_text().split() == ["part0", "part1", "part2", "part3", "part3", "part4"]


def test_completed_durable_execution_is_reused_in_a_new_process(tmp_path):
    journal = tmp_path / "j.duckdb"
    script = tmp_path / "cls.py"
    script.write_text(textwrap.dedent(f"""
        import zart_nb as zart

        @zart.step("twice")
        def twice(x):
            return 2 * x

        class Doubler(zart.DurableExecution):
            def __init__(self):
                self.label = "doubler"

            def run(self, data):
                return [twice(x) for x in data]

        registry = zart.TaskRegistry()
        registry.register("doubler", Doubler())
        durable = zart.DurableScheduler(registry, journal={str(journal)!r}, workers=1,
                                        on_change="error")
        print(durable.start_and_wait_for("d-1", "doubler", [1, 2], timeout=60))
        print(len(zart.journal({str(journal)!r}).list_runs("d-1")))
    """))
    outputs = [subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
               for _ in range(2)]
    for proc in outputs:
        assert proc.returncode == 0, proc.stderr
    assert outputs[0].stdout.split() == ["[2,", "4]", "1"]
    assert outputs[1].stdout.split() == ["[2,", "4]", "1"]  # reused: no second run, no NonDeterminism


def test_a_finished_rerun_starts_workers_only_when_the_journal_must_be_opened(journal, tmp_path, inline):
    from zart_nb._executors.inline import InlineExecutor

    started = []

    def counting(size, sink):
        started.append(size)
        return InlineExecutor(size, sink)

    inline.executor_factory = counting
    data = {"xs": [1, 2], "counter_dir": str(tmp_path)}
    assert zart.run(squares, data, execution_id="sq-warm", journal=journal) == 5
    inline.shutdown_executor()
    started.clear()
    opened = inline.journal(journal)
    with opened.hold():  # the journal is open (a notebook's next cell): its answer is immediate
        assert zart.run(squares, data, execution_id="sq-warm", journal=journal) == 5
    assert started == []
    opened.close()  # a new process: the pool starts while the journal opens, and stops unused
    assert zart.run(squares, data, execution_id="sq-warm", journal=journal) == 5
    assert len(started) == 1 and inline.executor is None


_CELL = """
import zart_nb as zart

def helper(x):
    return x + {helper_add}

@zart.step("double")
def double(x):
    return x * {factor}

@zart.step("keep")
def keep(x):
    return x

@zart.workflow("cells")
def flow(xs):
    return [keep(helper(double(x))) for x in xs]
"""


def _cell(helper_add=0, factor=2):
    """A notebook cell run again with an edit: the same names, new functions."""
    namespace = {"__name__": "__main__"}
    exec(compile(_CELL.format(helper_add=helper_add, factor=factor), "<cell>", "exec"), namespace)
    return namespace["flow"]


def test_on_change_error_names_the_step_whose_code_changed(journal):
    assert zart.run(_cell(), [1, 2], execution_id="c-1", journal=journal) == [2, 4]
    with pytest.raises(zart.NonDeterminism) as caught:
        zart.run(_cell(factor=3), [1, 2], execution_id="c-1", journal=journal, on_change="error")
    message = str(caught.value)
    assert "step 'double' changed" in message and "'keep'" not in message
    assert "code hash" in message and "c-1" in message


def test_on_change_error_says_the_body_or_a_helper_changed_when_no_step_did(journal):
    assert zart.run(_cell(), [1, 2], execution_id="c-2", journal=journal) == [2, 4]
    with pytest.raises(zart.NonDeterminism) as caught:
        zart.run(_cell(helper_add=1), [1, 2], execution_id="c-2", journal=journal, on_change="error")
    message = str(caught.value)
    assert "the workflow body or a helper it calls changed" in message and "step '" not in message


def test_on_change_error_names_a_changed_step_of_a_class_style_execution(journal):
    def make(factor):
        @zart.step("triple")
        def triple(x):
            return x * factor

        class Tripler(zart.DurableExecution):
            def run(self, data):
                return [triple(x) for x in data]

        return Tripler()

    assert zart.run(make(3), [1], execution_id="t-1", journal=journal) == [3]
    with pytest.raises(zart.NonDeterminism, match=r"step 'triple' changed"):
        zart.run(make(4), [1], execution_id="t-1", journal=journal, on_change="error")
