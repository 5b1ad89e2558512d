"""zart.wait_first and zart.as_completed: handles in the order they finish, journaled so a replay gives
the same order (real worker processes, a real DuckDB file)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from waiting_lib import chain, gated, race

import zart_nb as zart


def _steps(journal: Path, execution_id: str) -> dict[str, zart.StepRecord]:
    reader = zart.journal(journal, live=False)
    try:
        return {step.step_key: step for step in reader.list_steps(execution_id)}
    finally:
        reader.close()


def test_wait_first_returns_the_first_to_finish_and_a_replay_returns_the_same_one(journal, tmp_path):
    p = {"marker": str(tmp_path / "marker"), "gate": str(tmp_path / "gate"), "flag": str(tmp_path / "flag")}
    Path(p["flag"]).touch()
    with pytest.raises(zart.TaskError, match="flag is set"):
        zart.run(race, p, execution_id="r", journal=journal, display=False, workers=2)
    choice = _steps(journal, "r")["wait:first#0"]
    assert choice.status is zart.StepStatus.COMPLETED and choice.output_preview == "first: racer#0"

    # The replay: gated#0 is reused (done at once), racer#0 runs again and is slow: the journaled
    # choice is kept all the same, and the body waits for racer#0.
    os.unlink(p["flag"])
    out = zart.run(race, p, execution_id="r", journal=journal, display=False, workers=2)
    assert out == {"first": "racer#0", "error": "None"}
    runs = zart.journal(journal, live=False).list_runs("r")
    assert runs[-1].reused == 2 and runs[-1].executed == 1  # gated#0 and the choice; racer#0 ran again


def test_as_completed_yields_in_finish_order_and_a_replay_yields_the_same_order(journal, tmp_path):
    p = {"dir": str(tmp_path), "flag": str(tmp_path / "flag")}
    Path(p["flag"]).touch()
    with pytest.raises(zart.TaskError, match="flag is set"):
        zart.run(chain, p, execution_id="c", journal=journal, display=False, workers=3)
    steps = _steps(journal, "c")
    assert [steps[f"wait:as_completed#{i}"].output_preview for i in range(3)] == [
        "first: s2", "first: s1", "first: s0"]
    os.unlink(p["flag"])
    # Every step is reused now, so all are done at once: only the journal knows the order.
    assert zart.run(chain, p, execution_id="c", journal=journal, display=False, workers=3) == ["s2", "s1", "s0"]


@zart.workflow("bad-waits")
def bad_waits(kind: str) -> str:
    if kind == "empty":
        zart.wait_first([])
    if kind == "one":
        zart.as_completed(zart.schedule(gated, "x"))
    if kind == "twice":
        handle = zart.schedule(gated, __file__)
        zart.wait_first([handle, handle])
    return "unreached"


def test_bad_arguments_are_refused_clearly(journal):
    with pytest.raises(ValueError, match="at least one handle"):
        zart.wait_first([])
    with pytest.raises(ValueError, match="at least one handle"):
        zart.as_completed([])
    with pytest.raises(zart.DefinitionError, match="step handles"):
        zart.wait_first([1, 2])
    with pytest.raises(zart.TaskError, match="at least one handle"):
        zart.run(bad_waits, "empty", execution_id="b1", journal=journal, display=False, workers=1)
    with pytest.raises(zart.DefinitionError, match="a list of handles"):
        zart.run(bad_waits, "one", execution_id="b2", journal=journal, display=False, workers=1)
    with pytest.raises(zart.DefinitionError, match="the same handle twice"):
        zart.run(bad_waits, "twice", execution_id="b3", journal=journal, display=False, workers=1)


@zart.workflow("gate-flow")
def gate_flow(gate: str) -> str:
    return zart.schedule(gated, gate).result()


def test_executions_started_from_a_notebook_come_back_as_they_finish(journal, tmp_path):
    slow = zart.start(gate_flow, str(tmp_path / "slow-gate"), execution_id="slow", journal=journal,
                      display=False, workers=2)
    (tmp_path / "fast-gate").touch()
    fast = zart.start(gate_flow, str(tmp_path / "fast-gate"), execution_id="fast", journal=journal,
                      display=False, workers=2)
    assert zart.wait_first([slow, fast], timeout=60) is fast
    assert not slow.done
    with pytest.raises(zart.WaitTimeout):
        zart.wait_first([slow], timeout=0.2)
    order = zart.as_completed([slow, fast], timeout=60)
    assert next(order) is fast
    (tmp_path / "slow-gate").touch()
    assert next(order) is slow and slow.result() == "slow-gate"
    assert list(order) == []


@zart.workflow("all-done-first")
def all_done_first(n: int) -> list[str]:
    from steps_lib import quick

    handles = [zart.schedule(quick, i) for i in range(n)]
    zart.wait(handles)  # every one finished before as_completed looks
    return [handle.key for handle in zart.as_completed(handles)]


def test_handles_found_finished_together_come_in_the_order_given_as_one_record(journal):
    assert zart.run(all_done_first, 3, execution_id="t", journal=journal, display=False,
                    workers=2) == ["quick#0", "quick#1", "quick#2"]
    waits = {key: step for key, step in _steps(journal, "t").items() if key.startswith("wait:")}
    assert list(waits) == ["wait:as_completed#0"]
    assert waits["wait:as_completed#0"].output_preview == "first: quick#0, quick#1, quick#2"


@zart.workflow("pick")
def pick(p: dict) -> str:
    from steps_lib import quick

    first = zart.wait_first([zart.schedule(quick, x) for x in p["xs"]])
    if os.path.exists(p["flag"]):
        raise RuntimeError("flag is set")
    return first.key


def test_a_choice_among_other_handles_is_made_again_or_refused_with_on_change_error(journal, tmp_path):
    flag = tmp_path / "flag"
    flag.touch()
    with pytest.raises(zart.TaskError, match="flag is set"):
        zart.run(pick, {"xs": [1, 2], "flag": str(flag)}, execution_id="k", journal=journal, display=False)
    with pytest.raises(zart.NonDeterminism, match="wait:first#0"):
        zart.run(pick, {"xs": [1, 2, 3], "flag": str(flag)}, execution_id="k", journal=journal, display=False,
                 on_change="error")
    os.unlink(flag)
    assert zart.run(pick, {"xs": [1, 2, 3], "flag": str(flag)}, execution_id="k", journal=journal,
                    display=False) in ("quick#0", "quick#1", "quick#2")
    assert _steps(journal, "k")["wait:first#0"].reason == "arguments changed"


def test_executions_started_in_a_body_come_back_in_the_journaled_order_on_replay(journal, tmp_path):
    from waiting_lib import two_children

    p = {"dir": str(tmp_path), "flag": str(tmp_path / "flag")}
    Path(p["flag"]).touch()
    with pytest.raises(zart.TaskError, match="flag is set"):
        zart.run(two_children, p, execution_id="tc", journal=journal, display=False, workers=2)
    assert _steps(journal, "tc")["wait:as_completed#0"].output_preview == "first: execution:tc/gated-child#1"
    os.unlink(p["flag"])
    # Both children are completed now, so both are done at once: the journal gives the order.
    assert zart.run(two_children, p, execution_id="tc", journal=journal, display=False, workers=2) == [
        "tc/gated-child#1", "tc/gated-child#0"]
