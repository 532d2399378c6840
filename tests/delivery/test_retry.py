"""The backoff policy's pure functions."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from pydantic import ValidationError

from dicom_node.delivery.retry import RetryPolicy, delay, next_attempt, should_retry


def test_exponential_growth_and_cap_without_jitter() -> None:
    p = RetryPolicy(base_s=2, factor=3, cap_s=50, jitter=0, max_attempts=10)
    assert [delay(p, n) for n in range(1, 7)] == [2, 6, 18, 50, 50, 50]
    assert delay(p, 10_000) == 50  # no overflow for absurd counts


def test_jitter_stays_within_bounds_and_is_reproducible() -> None:
    p = RetryPolicy(base_s=10, factor=2, cap_s=1000, jitter=0.25)
    values = [delay(p, 3, random.Random(seed)) for seed in range(200)]
    assert all(30 <= v <= 50 for v in values)
    assert max(values) - min(values) > 10  # jitter really spreads the retries
    assert delay(p, 3, random.Random(7)) == delay(p, 3, random.Random(7))
    capped = RetryPolicy(base_s=10, factor=2, cap_s=40, jitter=0.5)
    assert all(delay(capped, 5, random.Random(s)) <= 40 for s in range(100))


def test_attempts_are_bounded_and_permanent_faults_are_not_retried() -> None:
    p = RetryPolicy(base_s=1, factor=2, cap_s=10, jitter=0, max_attempts=3)
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert next_attempt(p, 1, now) == now + dt.timedelta(seconds=1)
    assert next_attempt(p, 2, now) == now + dt.timedelta(seconds=2)
    assert next_attempt(p, 3, now) is None  # three attempts made: dead
    assert next_attempt(p, 1, now, transient=False) is None
    assert should_retry(p, 2, True) and not should_retry(p, 3, True)


@pytest.mark.parametrize(
    "bad",
    [
        {"base_s": 0},
        {"factor": 0.5},
        {"jitter": 1.5},
        {"max_attempts": 0},
        {"base_s": 10, "cap_s": 5},
        {"x": 1},
    ],
)
def test_invalid_policies_are_refused(bad: dict) -> None:
    with pytest.raises(ValidationError):
        RetryPolicy(**bad)


def test_delay_needs_a_failure() -> None:
    with pytest.raises(ValueError):
        delay(RetryPolicy(), 0)
