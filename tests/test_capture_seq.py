"""A journaled choice (``RunState.capture``: ``zart.wait_first``, ``zart.as_completed``) takes its place in
the run's call order from the same sequence as steps and the other durable calls, so no two records of
a run share a seq and the order a fork or ``rerun --after`` reads is the order of the calls (it counted
the steps alone: a choice after a publish took the seq of the step before it). Real worker processes, a
real DuckDB file."""
from __future__ import annotations

import zart_nb as zart
from zart_nb._runtime import runtime


@zart.step("one")
def one(x: int) -> int:
    return x + 1


@zart.workflow("choice-between-steps")
def choice_between_steps(x: int) -> int:
    first = one(x)
    zart.publish("seen", first)  # a durable call of another kind: it takes a place in the order too
    done = zart.wait_first([zart.schedule(one, first), zart.schedule(one, first + 10)])
    last = one(done.result())
    return last


def _order(journal, execution_id: str) -> list[tuple[str, int]]:
    runtime.journal(journal).close()
    import duckdb

    with duckdb.connect(str(journal), read_only=True) as conn:
        return [(key, seq) for key, seq in conn.execute(
            "SELECT step_key, seq FROM steps WHERE execution_id = ? AND current ORDER BY seq",
            [execution_id]).fetchall()]


def test_a_journaled_choice_takes_its_seq_in_call_order(journal):
    out = zart.run(choice_between_steps, 1, execution_id="c", journal=journal, display=False)
    assert out in (4, 14)
    order = _order(journal, "c")
    seqs = [seq for _, seq in order]
    assert len(set(seqs)) == len(seqs), order  # no two records share a place
    keys = [key for key, _ in order]
    assert keys.index("one#0") < keys.index("publish:seen#0") < keys.index("one#1") < keys.index("one#2") \
        < keys.index("wait:first#0") < keys.index("one#3"), order
    # The replay reuses every record (the choice too) and journals nothing new.
    assert zart.run(choice_between_steps, 1, execution_id="c", journal=journal, display=False) == out
    assert _order(journal, "c") == order

