"""Steps defined in notebook cells, run in a real Jupyter kernel; a new kernel resumes the execution."""
import os

import nbformat
import pytest
from nbclient import NotebookClient

SETUP = """
import os
import zart_nb as zart
from dataclasses import dataclass

@dataclass
class ServiceResult:
    name: str
    status: str

@zart.step("check-service")
def check_service(service, log):
    with open(log, "a") as handle:
        handle.write(service + "\\n")
    if service == "payments" and os.path.exists(log + ".fail"):
        raise RuntimeError("payments is down")
    return ServiceResult(service, "healthy")

@zart.workflow("health-check")
def health(data):
    return zart.wait([zart.schedule(check_service, s, data["log"]) for s in data["services"]])
"""


def run_notebook(tmp_path, log):
    run_cell = (f"data = {{'services': ['auth-api', 'payments', 'users-db'], 'log': {str(log)!r}}}\n"
                f"try:\n"
                f"    out = zart.run(health, data, journal={str(tmp_path / 'j.duckdb')!r}, workers=2)\n"
                f"    print('OUT', [r.name for r in out], all(isinstance(r, ServiceResult) for r in out))\n"
                f"except zart.StepFailed as exc:\n"
                f"    print('FAILED', exc.step_key)\n")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(SETUP), nbformat.v4.new_code_cell(run_cell)]
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    return "".join(o.get("text", "") for o in nb.cells[1].outputs)


@pytest.mark.filterwarnings("ignore")
def test_cell_defined_workflow_resumes_in_a_new_kernel(tmp_path):
    log = tmp_path / "calls.log"
    (tmp_path / "calls.log.fail").touch()
    first = run_notebook(tmp_path, log)
    assert "FAILED check-service#1" in first
    assert sorted(log.read_text().split()) == ["auth-api", "payments", "users-db"]
    os.unlink(tmp_path / "calls.log.fail")
    second = run_notebook(tmp_path, log)  # a fresh kernel: cells are defined again
    assert "OUT ['auth-api', 'payments', 'users-db'] True" in second
    assert sorted(log.read_text().split()) == ["auth-api", "payments", "payments", "users-db"]
    third = run_notebook(tmp_path, log)  # completed: its stored output, nothing runs
    assert "OUT ['auth-api', 'payments', 'users-db'] True" in third
    assert len(log.read_text().split()) == 4


@pytest.mark.filterwarnings("ignore")
def test_kernel_interrupt_marks_interrupted_and_the_rerun_resumes(tmp_path):
    """The notebook's stop button: Jupyter sends SIGINT to the kernel (and its process group)."""
    from conftest import wait_until
    from jupyter_client.manager import start_new_kernel

    journal, gate, started = tmp_path / "j.duckdb", tmp_path / "gate", tmp_path / "started"
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    try:
        printed: list[str] = []

        def run(code):
            hook = lambda msg: printed.append(msg["content"].get("text", ""))  # noqa: E731
            return kc.execute_interactive(code, timeout=120, output_hook=hook)["content"]

        def pool_pids():
            printed.clear()
            assert run("from zart_nb._runtime import runtime; print(*runtime.get_executor(2).pids)")["status"] == "ok"
            return set(map(int, "".join(printed).split()))

        assert run(f"""
import os, time
import zart_nb as zart

@zart.step("quick")
def quick(i):
    return i * 10

@zart.step("gated")
def gated(path, started):
    with open(started, "w") as handle:
        handle.write(str(os.getpid()))
    while not os.path.exists(path):
        time.sleep(0.01)
    return "opened"

@zart.workflow("interruptible")
def flow(paths):
    done = zart.wait([zart.schedule(quick, i) for i in range(3)])
    return done + [gated(*paths)]

call = "zart.run(flow, ({str(gate)!r}, {str(started)!r}), execution_id='int-1', journal={str(journal)!r}, workers=2)"
""")["status"] == "ok"
        before = pool_pids()
        # stop_on_error=False: after this request fails (KeyboardInterrupt) the kernel must not abort
        # the next one, which may already be on its way
        msg_id = kc.execute("out = eval(call)", stop_on_error=False)
        wait_until(lambda: started.exists() and started.read_text(), timeout=60, what="the gated step")
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=60)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = kc.get_shell_msg(timeout=60)
        assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
        after = pool_pids()
        gated_pid = int(started.read_text())
        # the worker running the interrupted step was killed and replaced; the other one ignored the
        # SIGINT sent to the process group and is still serving
        assert gated_pid in before and gated_pid not in after
        assert len(after) == 2 and len(before & after) == 1
        gate.touch()
        assert run("out = eval(call)")["status"] == "ok"
        assert run("assert out == [0, 10, 20, 'opened'], out")["status"] == "ok"
        assert run(f"zart.journal({str(journal)!r}).close()")["status"] == "ok"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    runs = zart_journal_runs(journal, "int-1")
    assert runs == [("interrupted", 4, 0), ("completed", 1, 3)]


def zart_journal_runs(journal, execution_id):
    import zart_nb as zart

    return [(r.status.value, r.executed, r.reused) for r in zart.journal(journal).list_runs(execution_id)]
