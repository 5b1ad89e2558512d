"""The notebooks of notebooks/ as a user runs them (nbclient, a real kernel): the saved widget state,
step output in the cell, and a kernel killed in the middle of resume.ipynb's fan-out, then re-run."""
import os
import shutil
import signal
import threading
from pathlib import Path

import nbformat
import pytest
from conftest import wait_until
from nbhelpers import bar_of, progress_bars, run_notebook, text

import zart_nb as zart

pytestmark = pytest.mark.filterwarnings("ignore")
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def _copy(name, folder):
    shutil.copy(NOTEBOOKS / name, folder / name)
    return nbformat.read(folder / name, as_version=4)


def test_health_check_saves_a_finished_widget_and_the_steps_output(tmp_path):
    nb = run_notebook(_copy("health_check.ipynb", tmp_path), tmp_path)
    bars = progress_bars(nb)
    assert bars and all(bar["value"] == bar["max"] and bar["bar_style"] == "success" for bar in bars)
    run_cell = next(cell for cell in nb.cells if "start_and_wait_for(\"health-check-run-1\"" in cell.source
                    and "again" not in cell.source)
    assert bar_of(nb, run_cell)["value"] == 3
    lines = text(run_cell, "stdout").splitlines()
    assert sorted(lines) == ["[check-service#0] checking auth-api", "[check-service#1] checking payments",
                             "[check-service#2] checking users-db"]
    report = next(cell for cell in nb.cells if "Services checked" in cell.source)
    assert "  Service: payments — status: degraded (156ms)\n    Issue: high latency detected" in text(report)


def test_a_kernel_killed_mid_fan_out_resumes_without_redoing_completed_steps(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    env = {"ZART_NB_WORKDIR": str(work)}
    log = work / "calls.log"
    nb = _copy("resume.ipynb", tmp_path)
    died: list[BaseException] = []

    def first_run():
        try:
            run_notebook(nb, tmp_path, env=env)
        except BaseException as exc:  # DeadKernelError once the kernel is killed
            died.append(exc)

    thread = threading.Thread(target=first_run)
    thread.start()
    wait_until(lambda: log.exists() and len(log.read_text().split()) >= 3, timeout=90,
               what="three steps of the fan-out to finish")
    os.kill(int((work / "kernel.pid").read_text()), signal.SIGKILL)
    thread.join(120)
    assert died, "the first run should have ended with its kernel"
    reader = zart.journal(work / "resume.duckdb")
    try:
        completed = {s.step_key for s in reader.list_steps("squares") if s.status.value == "completed"}
    finally:
        reader.close()
    assert completed  # some steps were journaled before the kill
    done_before = {int(key.split("#")[1]) for key in completed}

    second = run_notebook(_copy("resume.ipynb", tmp_path), tmp_path, env=env)
    final = next(cell for cell in second.cells if 'print("total:", total)' in cell.source)
    assert text(final) == f"total: {sum(i * i for i in range(16))}\n"  # as an uninterrupted run prints
    calls = [int(line) for line in log.read_text().split()]
    assert set(calls) == set(range(16))
    assert all(calls.count(i) == 1 for i in done_before)  # journaled steps never ran again
