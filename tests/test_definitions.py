"""Step and retry options are checked when a step is defined, and each error names the step."""
import math

import pytest

import zart_nb as zart


def _noop():
    return None


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan, "abc", 0, -1, True, [1]])
def test_a_bad_timeout_is_refused_naming_the_step(bad):
    with pytest.raises(zart.DefinitionError, match="step 'slowish'.*timeout"):
        zart.step("slowish", timeout=bad)(_noop)


@pytest.mark.parametrize("bad", [-1, "abc", 1.5, None, True])
def test_bad_retries_are_refused_naming_the_step(bad):
    with pytest.raises(zart.DefinitionError, match="step 'flaky-one'.*retries"):
        zart.step("flaky-one", retries=bad)(_noop)


@pytest.mark.parametrize(("field", "bad"), [
    ("retries", -1), ("retries", "abc"), ("backoff", math.inf), ("backoff", math.nan), ("backoff", -1),
    ("backoff", "abc"), ("multiplier", 0.5), ("multiplier", math.nan), ("max_backoff", math.inf),
])
def test_a_bad_retry_policy_is_refused(field, bad):
    with pytest.raises(zart.DefinitionError, match=field):
        zart.RetryPolicy(**{field: bad})


def test_good_options_are_kept():
    step = zart.step("ok", retries=zart.RetryPolicy(retries=2, backoff=0, max_backoff=1), timeout=0.5)(_noop)
    assert (step.retry.retries, step.timeout) == (2, 0.5)
    assert zart.step("ok2", retries=3, timeout=2)(_noop).retry.retries == 3


def test_a_step_decorated_twice_is_refused_rather_than_losing_the_outer_options():
    inner = zart.step("inner")(_noop)
    with pytest.raises(zart.DefinitionError, match="already a step"):
        zart.step("outer", retries=3, timeout=5)(inner)
    with pytest.raises(zart.DefinitionError, match="already a step"):
        zart.step(inner)


def test_every_option_error_is_a_zart_error():
    for make in (lambda: zart.step("s", retries=-1)(_noop), lambda: zart.step("s", retries="abc")(_noop),
                 lambda: zart.run(_noop, None, workers=0), lambda: zart.step("", timeout=1)):
        with pytest.raises(zart.ZartError):
            make()
