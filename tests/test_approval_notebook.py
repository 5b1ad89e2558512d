"""notebooks/approval.ipynb survives its kernel's death while the workflow waits (nbclient, real kernels).

nbval runs the notebook once, top to bottom; this runs it as a user who loses the kernel would: the cells
up to the wait in a first kernel, which is then SIGKILLed (a crash), then the whole notebook again in a new
kernel. The execution continues from the journal: ``prepare`` does not run again, the link is not published
twice, and the event sent from the later cell completes it; the notebook's own outputs say so."""
from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import nbformat
import pytest
from conftest import wait_until
from nbclient import NotebookClient
from nbhelpers import run_notebook, text

import zart_nb as zart

pytestmark = pytest.mark.filterwarnings("ignore")
NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "approval.ipynb"
LINK = "https://example.test/approve/42"
RESULT = "{'request': 42, 'approved': True, 'by': 'ops'}"


def _copy(folder: Path):
    shutil.copy(NOTEBOOK, folder / NOTEBOOK.name)
    nb = nbformat.read(folder / NOTEBOOK.name, as_version=4)
    for cell in nb.cells:  # the outputs saved in the repository are not this test's
        if cell.cell_type == "code":
            cell.outputs = []
    return nb


def _cell(nb, snippet: str):
    return next(cell for cell in nb.cells if cell.cell_type == "code" and snippet in cell.source)


def _waiting(journal: Path, suspended: bool) -> bool:
    """Whether the execution's body journaled its wait for ``decision`` (read through the kernel's monitor
    while it holds the journal), and, if ``suspended``, whether the execution is suspended in that wait
    (``waiting``: the kernel let the journal go)."""
    reader = zart.journal(journal)
    try:
        waits = any(step.step_key.startswith("event:decision") for step in reader.list_steps("approval-42"))
        record = reader.execution_record("approval-42")
        return waits and (not suspended or record.status is zart.ExecutionStatus.WAITING)
    except zart.MonitorError:  # the kernel is letting the journal go as the execution suspends: look again
        return False
    finally:
        reader.close()


def _run_up_to_the_wait_and_kill(nb, folder: Path, env: dict[str, str], journal: Path, suspended: bool) -> None:
    last = nb.cells.index(_cell(nb, "print(link)"))  # the link is out; the next cell would send the event
    client = NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(folder)}})
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        with client.setup_kernel():
            for index, cell in enumerate(nb.cells[:last + 1]):
                client.execute_cell(cell, index)
            wait_until(lambda: _waiting(journal, suspended), timeout=60, what="the workflow to wait for its event")
            assert client.km is not None
            kernel = client.km.provisioner.process  # the kernel's subprocess.Popen
            os.kill(kernel.pid, signal.SIGKILL)  # a crash: nothing is told, nothing is flushed
            wait_until(lambda: kernel.poll() is not None, timeout=30, what="the kernel to die")
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.mark.parametrize("suspended", [False, True], ids=["blocked-in-its-wait", "suspended-in-its-wait"])
def test_the_approval_continues_from_the_journal_after_its_kernel_is_killed_while_it_waits(tmp_path, suspended):
    """Killed while the body blocks in its wait (the kernel holds the journal), or once the wait has
    suspended the execution (``waiting``, as it does after ``$ZART_SUSPEND_AFTER``, 60 s by default, which a
    user about to restart a kernel may well have waited)."""
    work = tmp_path / "work"
    work.mkdir()
    env = {"ZART_NB_WORKDIR": str(work), "ZART_DISPLAY": "0"}
    journal = work / "approval.duckdb"

    first = _copy(tmp_path)
    _run_up_to_the_wait_and_kill(first, tmp_path, {**env, "ZART_SUSPEND_AFTER": "0.5"} if suspended else env,
                                 journal, suspended)
    assert text(_cell(first, "print(link)")) == LINK + "\n"
    assert (work / "prepared.log").read_text().split() == ["42"]
    assert _cell(first, "zart.send_event").outputs == []  # the event was never sent by the first kernel

    second = run_notebook(_copy(tmp_path), tmp_path, env=env)  # the default threshold: run 2 does not suspend
    assert text(_cell(second, "print(link)")) == LINK + "\n"  # read from the journal, as published by run 1
    sent = _cell(second, "zart.send_event")
    assert [out["data"]["text/plain"] for out in sent.outputs] == ["True"]  # delivered once, by this kernel
    assert text(_cell(second, "execution.result(")) == f"{RESULT}\napproved\n"
    story = text(_cell(second, "reader.list_runs")).splitlines()
    assert story == ["run 1 (initial): suspended" if suspended else "run 1 (initial): process died",
                     "run 2 (resume): completed", "prepare ran 1 time(s)", f"links published: ['{LINK}']"]
    assert text(_cell(second, "zart.run(approval")) == f"{RESULT}\nprepare ran 1 time(s)\n"
    assert (work / "prepared.log").read_text().split() == ["42"]  # the step before the wait never ran again

    reader = zart.journal(journal, live=False)
    try:
        assert reader.execution_record("approval-42").status is zart.ExecutionStatus.COMPLETED
        assert [run.run_number for run in reader.list_runs("approval-42")] == [1, 2]  # the last run_notebook added none
    finally:
        reader.close()
