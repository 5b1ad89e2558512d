"""Async workflow bodies: an ``async def`` step called there is an awaitable (``asyncio.gather`` runs calls
in parallel), ``await zart.call(step, x)`` for any step, ``await handle``; plain steps return values
(real worker processes, a real DuckDB file)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from waiting_lib import async_flow, meet, plus_one, sync_calls_async

import zart_nb as zart


def test_async_steps_gathered_in_an_async_body_run_in_parallel_and_replay(journal, tmp_path):
    p = {"dir": str(tmp_path), "flag": str(tmp_path / "flag")}
    Path(p["flag"]).touch()
    with pytest.raises(zart.TaskError, match="flag is set"):
        # Each meet() finishes only once the other has started: run one after the other, they would
        # time out; gathered, they run at the same time on two workers.
        zart.run(async_flow, p, execution_id="af", journal=journal, display=False, workers=2)
    reader = zart.journal(journal, live=False)
    try:
        keys = [(s.step_key, s.status) for s in reader.list_steps("af")]
    finally:
        reader.close()
    assert sorted(keys) == sorted([("meet#0", zart.StepStatus.COMPLETED), ("meet#1", zart.StepStatus.COMPLETED),
                                   ("plus-one#0", zart.StepStatus.COMPLETED), ("plus-one#1", zart.StepStatus.COMPLETED),
                                   ("plus-one#2", zart.StepStatus.COMPLETED)])
    os.unlink(p["flag"])
    out = zart.run(async_flow, p, execution_id="af", journal=journal, display=False, workers=2)
    assert out == {"met": ["a met b", "b met a"], "called": 2, "awaited": 11, "plain": 101}
    # The replay reused every step under the same keys: none ran again.
    assert [(tmp_path / f"calls-{me}").read_text() for me in "ab"] == ["x", "x"]


def test_an_async_step_in_a_plain_body_returns_its_value(journal, tmp_path):
    assert zart.run(sync_calls_async, {"dir": str(tmp_path)}, journal=journal, display=False,
                    workers=1) == "solo met solo"


def test_call_needs_a_workflow_and_a_step(journal):
    with pytest.raises(zart.NotInWorkflow):
        zart.call(plus_one, 1)

    @zart.workflow("calls-a-lambda")
    async def bad(_: None) -> None:
        await zart.call(lambda x: x, 1)

    with pytest.raises(zart.DefinitionError, match="needs a @zart.step"):
        zart.run(bad, None, journal=journal, display=False, workers=1)
    assert meet.name == "meet"  # outside a workflow a step is its plain function


def test_an_execution_from_start_can_be_awaited(journal, tmp_path):
    import asyncio

    from waiting_lib import plus_one_flow

    async def main() -> list:
        started = [zart.start(plus_one_flow, n, execution_id=f"aw-{n}", journal=journal, display=False,
                              workers=2) for n in (1, 2)]
        return list(await asyncio.gather(*started))

    assert asyncio.run(main()) == [2, 3]


def test_the_api_loads_no_asyncio_until_an_awaitable_is_made():
    import subprocess
    import sys

    code = "import sys, zart_nb as zart; zart.run, zart.call, zart.as_completed; print('asyncio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "False"  # ~50 ms of a cold start: only async bodies pay for it
