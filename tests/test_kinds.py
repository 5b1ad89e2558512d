"""The rules of captured values and sleeps: tables of cases, no process, no journal."""
from datetime import UTC, datetime, timedelta

import pytest

from zart_nb._errors import DefinitionError
from zart_nb._journal import StoredStep
from zart_nb._kinds import check_name, duration, left, moment, recalled, wake_time
from zart_nb._replay import Keys, Kind
from zart_nb._status import StepStatus


@pytest.mark.parametrize(("stored", "expected"), [
    (None, None),
    (StoredStep(StepStatus.COMPLETED, "", "capture", b"\x80v"), b"\x80v"),
    (StoredStep(StepStatus.FAILED, "", "capture", b"\x80v"), None),
    (StoredStep(StepStatus.INTERRUPTED, "", "capture", None), None),
    (StoredStep(StepStatus.COMPLETED, "", "capture", None), None),
])
def test_a_durable_call_is_answered_from_the_journal_only_when_completed(stored, expected):
    assert recalled(stored) == expected


@pytest.mark.parametrize(("seconds", "expected"), [
    (0, 0.0), (1.5, 1.5), (timedelta(minutes=2), 120.0), (10**6, 1e6)])
def test_a_sleep_s_duration(seconds, expected):
    assert duration(seconds) == expected


@pytest.mark.parametrize("seconds", [-1, float("nan"), float("inf"), "60", None, True, timedelta(seconds=-1)])
def test_a_bad_duration_is_refused_naming_it(seconds):
    with pytest.raises(DefinitionError, match="seconds"):
        duration(seconds)


def test_a_naive_moment_is_local_time_and_an_aware_one_is_itself():
    aware = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert moment(aware) == aware.timestamp()
    naive = datetime(2030, 1, 2, 3, 4, 5)
    assert moment(naive) == naive.astimezone().timestamp()  # local time, as datetime reads it
    assert moment(1234.5) == 1234.5
    for bad in ("tomorrow", None, float("nan"), True):
        with pytest.raises(DefinitionError, match="sleep_until"):
            moment(bad)


@pytest.mark.parametrize(("journaled", "now", "seconds", "wake", "remaining"), [
    (None, 100.0, 30.0, 130.0, 30.0),  # the first call: from now
    (130.0, 120.0, 30.0, 130.0, 10.0),  # resumed: only what is left
    (130.0, 500.0, 30.0, 130.0, 0.0),  # resumed after its wake time: no sleep
    (130.0, 120.0, 999.0, 130.0, 10.0),  # the journaled wake time wins over a changed duration
])
def test_the_wake_time_is_journaled_once_and_only_what_is_left_is_slept(journaled, now, seconds, wake, remaining):
    assert wake_time(journaled, now, seconds) == wake
    assert left(wake, now) == remaining


def test_names_and_keys_of_the_new_kinds():
    assert check_name("capture", "token") == "token"
    for bad in ("", None, 3):
        with pytest.raises(DefinitionError, match="capture"):
            check_name("capture", bad)
    keys = Keys("e")
    assert [keys.key(Kind.CAPTURE, "now"), keys.key(Kind.SLEEP, "nap"), keys.key(Kind.CAPTURE, "now"),
            keys.step_key("now")] == ["capture:now#0", "sleep:nap#0", "capture:now#1", "now#0"]
