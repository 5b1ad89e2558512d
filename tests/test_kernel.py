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
