"""Replay's pure rules: keys in call order, one sequence per kind, and the reuse decision."""
import pytest

from zart_nb._errors import DefinitionError, NonDeterminism
from zart_nb._journal import StoredStep
from zart_nb._records import RunReason
from zart_nb._replay import Keys, Kind, check_change, decide
from zart_nb._status import StepStatus


def test_keys_count_occurrences_per_name_in_call_order():
    keys = Keys("e-1")
    assert [keys.step_key(n) for n in ("a", "b", "a", "a", "b")] == ["a#0", "b#0", "a#1", "a#2", "b#1"]


def test_an_explicit_key_does_not_shift_the_counted_ones():
    keys = Keys("e-1")
    assert keys.step_key("fetch", "fetch-eu") == "fetch-eu"
    assert keys.step_key("fetch") == "fetch#0"


def test_a_key_used_twice_is_refused_naming_it_and_the_execution():
    keys = Keys("e-1")
    keys.step_key("a", "same")
    with pytest.raises(DefinitionError, match=r"'same'.*'e-1'"):
        keys.step_key("b", "same")
    keys.step_key("a")  # a#0
    with pytest.raises(DefinitionError, match="a#0"):
        keys.step_key("x", "a#0")


def test_each_kind_has_its_own_sequence_and_namespace():
    keys = Keys("e-1")
    later = Kind.SLEEP  # a kind added after steps: its keys and sequence are its own
    assert keys.key(Kind.STEP, "nap") == "nap#0"
    assert keys.key(later, "nap") == "sleep:nap#0"
    assert keys.key(later, "nap") == "sleep:nap#1"
    assert keys.step_key("nap") == "nap#1"  # the step of the same name is not shifted
    assert [keys.next_seq(), keys.next_seq(), keys.next_seq(later)] == [0, 1, 0]
    keys.key(later, "n", "x")
    with pytest.raises(DefinitionError, match="sleep:x"):
        keys.key(later, "n", "x")


def _stored(status, args_hash="A", code_hash="C"):
    return StoredStep(StepStatus(status), args_hash, code_hash, b"output")


@pytest.mark.parametrize(("stored", "expected"), [
    (None, RunReason.NEW),
    (_stored("completed"), None),
    (_stored("completed", args_hash="other"), RunReason.ARGS_CHANGED),
    (_stored("completed", code_hash="other"), RunReason.CODE_CHANGED),
    (_stored("completed", args_hash="other", code_hash="other"), RunReason.CODE_CHANGED),
    (_stored("failed"), RunReason.FAILED_BEFORE),
    (_stored("failed", code_hash="other"), RunReason.FAILED_BEFORE),
    (_stored("cancelled"), RunReason.CANCELLED_BEFORE),
])
def test_the_reuse_decision(stored, expected):
    assert decide(stored, "A", "C") is expected


def test_a_change_is_refused_only_with_on_change_error():
    for reason in (RunReason.CODE_CHANGED, RunReason.ARGS_CHANGED):
        check_change(reason, "rerun", "e-1", "a#0")
        with pytest.raises(NonDeterminism, match=f"'a#0' of execution 'e-1': {reason.value}"):
            check_change(reason, "error", "e-1", "a#0")
    for reason in (RunReason.NEW, RunReason.FAILED_BEFORE, RunReason.CANCELLED_BEFORE):
        check_change(reason, "error", "e-1", "a#0")  # running again is not a change of the history
