"""Where code runs: the workflow's run and the step's context are context variables."""
import contextvars

import pytest

from zart_nb import _context
from zart_nb._errors import NotInWorkflow


class _FakeRun:
    execution_id = "e-1"
    run_number = 3
    cancelled = False


def test_inside_a_run_the_context_names_the_execution_and_run():
    token = _context.enter_run(_FakeRun())  # type: ignore[arg-type]
    try:
        ctx = _context.context()
        assert (ctx.execution_id, ctx.step_key, ctx.attempt, ctx.run_number) == ("e-1", None, None, 3)
        assert not _context.in_step()
    finally:
        _context.leave_run(token)
    with pytest.raises(NotInWorkflow):
        _context.context()


def test_inside_a_step_the_step_wins_and_other_contexts_do_not_see_it():
    token = _context.enter_step("e-1", "k#0", 2)
    try:
        assert _context.context().step_key == "k#0" and _context.in_step()
        assert contextvars.Context().run(_context.in_step) is False
    finally:
        _context.leave_step(token)
    with pytest.raises(NotInWorkflow, match="schedule"):
        _context.require_run("schedule")
