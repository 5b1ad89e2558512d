"""A step's unfinished last line (no newline yet: a prompt, a progress bar) reaches the driver once it
waited ``capture.PARTIAL_SECONDS`` on the inline executor and on Dask too, as on the local pool
(``test_killed_step_output``): a step abandoned by a cancel or its timeout keeps that line in its
journaled output, and it is shown live. Threads of this process for the inline executor; a real
``LocalCluster`` (one worker process) for Dask. Each step waits for a release file, created at the end
of its test, so no thread outlives it for long."""
from __future__ import annotations

import logging

import pytest
from conftest import wait_for_release, wait_until

import zart_nb as zart
from zart_nb._handles import run_of

UNFINISHED = "connecting\nloading 90%; waiting for the server..."
LIVE = ["connecting", "loading 90%; waiting for the server..."]
DEADLINE = 60.0


def _mid_line(workdir: str) -> str:
    print("connecting", flush=True)
    for percent in (10, 50, 90):  # a progress bar: one line rewritten
        print(f"\rloading {percent}%", end="", flush=True)
    print("; waiting for the server...", end="", flush=True)
    wait_for_release(workdir)
    return "released"


mid_line = zart.step("mid-line")(_mid_line)
mid_line_timed = zart.step("mid-line-timed", timeout=2.5)(_mid_line)


@zart.workflow("unfinished-line")
def flow(workdir: str) -> list[str]:
    return zart.wait([zart.schedule(mid_line, workdir)])


@zart.workflow("unfinished-line-timed")
def timed_flow(workdir: str) -> str:
    return mid_line_timed(workdir)


def _cancelled_mid_line(execution: zart.Execution, journal) -> zart.StepRecord:
    """Wait until the unfinished line reached the driver, cancel, and read the step back."""
    def seen():
        run = run_of(execution)
        found = None if run is None else run.output_so_far("mid-line#0")
        return found if found and "waiting for the server..." in found[1] else None

    _, so_far = wait_until(seen, timeout=DEADLINE, what="the unfinished line to reach the driver")
    assert so_far == UNFINISHED
    execution.cancel(origin="a test")
    with pytest.raises(zart.Cancelled):
        execution.result(timeout=DEADLINE)
    (step,) = zart.journal(journal).list_steps(execution.execution_id)
    assert step.status == zart.StepStatus.CANCELLED
    return step


def _live(out: str, key: str) -> list[str]:
    return [line.removeprefix(f"[{key}] ") for line in out.splitlines() if line.startswith(f"[{key}] ")]


# --- the inline executor -------------------------------------------------------------------------


def test_inline_a_step_cancelled_mid_line_keeps_its_unfinished_line(inline, journal, tmp_path, capsys):
    execution = zart.start(flow, str(tmp_path), execution_id="inl-1", journal=journal, display=False)
    try:
        step = _cancelled_mid_line(execution, journal)
    finally:
        (tmp_path / "release").touch()
    assert step.log == UNFINISHED
    assert _live(capsys.readouterr().out, "mid-line#0") == LIVE  # shown live too, from another thread


def test_inline_a_step_past_its_timeout_keeps_its_unfinished_line(inline, journal, tmp_path, capsys):
    try:
        with pytest.raises(zart.StepTimeout):
            zart.run(timed_flow, str(tmp_path), execution_id="inl-2", journal=journal, display=False)
    finally:
        (tmp_path / "release").touch()
    (step,) = zart.journal(journal).list_steps("inl-2")
    assert step.status == zart.StepStatus.FAILED and step.log == UNFINISHED
    assert _live(capsys.readouterr().out, "mid-line-timed#0") == LIVE


def test_inline_lines_come_before_the_outcome_and_none_after_it(inline, journal, tmp_path, capsys):
    (tmp_path / "release").touch()  # it returns at once: its last line is passed on when it ends
    assert zart.run(flow, str(tmp_path), execution_id="inl-3", journal=journal, display=False) == ["released"]
    (step,) = zart.journal(journal).list_steps("inl-3")
    # journaled from its own capture, as printed (carriage returns too); shown live as a terminal shows it
    assert step.status == zart.StepStatus.COMPLETED
    assert step.log == "connecting\n\rloading 10%\rloading 50%\rloading 90%; waiting for the server..."
    assert _live(capsys.readouterr().out, "mid-line#0") == LIVE


# --- Dask ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    local = distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=":0",
                                     silence_logs=logging.ERROR)
    client = distributed.Client(local, set_as_default=False)
    try:
        client.wait_for_workers(1, timeout=DEADLINE)
        yield client
    finally:
        from zart_nb._runtime import runtime

        runtime.shutdown_remote_executors()
        client.close()
        local.close()


def test_dask_a_step_cancelled_mid_line_keeps_its_unfinished_line(client, journal, tmp_path, capsys):
    execution = zart.start(flow, str(tmp_path), execution_id="dsk-1", journal=journal, executor=client,
                           display=False)
    try:
        step = _cancelled_mid_line(execution, journal)
    finally:
        (tmp_path / "release").touch()
    assert step.log == UNFINISHED
    assert _live(capsys.readouterr().out, "mid-line#0") == LIVE
    wait_until(lambda: not any(client.processing().values()), timeout=DEADLINE, what="the cluster idle")


def test_dask_a_step_past_its_timeout_keeps_its_unfinished_line(client, journal, tmp_path, capsys):
    try:
        with pytest.raises(zart.StepTimeout):
            zart.run(timed_flow, str(tmp_path), execution_id="dsk-2", journal=journal, executor=client,
                     display=False)
    finally:
        (tmp_path / "release").touch()
    (step,) = zart.journal(journal).list_steps("dsk-2")
    assert step.status == zart.StepStatus.FAILED and step.log == UNFINISHED
    assert _live(capsys.readouterr().out, "mid-line-timed#0") == LIVE
    wait_until(lambda: not any(client.processing().values()), timeout=DEADLINE, what="the cluster idle")
