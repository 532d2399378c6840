"""Exponential backoff for delivery (and any transient job fault), as pure functions.

``delay(policy, failures)`` is the wait before the next attempt after ``failures`` failed
attempts: ``min(cap, base * factor**(failures-1))``, then scaled by a random factor in
``[1 - jitter, 1 + jitter]`` (and capped again). ``next_attempt`` returns ``None`` once
``max_attempts`` attempts were made: the job is then dead.
"""

from __future__ import annotations

import datetime as dt
import random

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["RetryPolicy", "delay", "next_attempt", "should_retry"]


class RetryPolicy(BaseModel):
    """Backoff parameters (usable as a config section)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_s: float = Field(5.0, gt=0, description="Wait after the first failure.")
    factor: float = Field(2.0, ge=1.0, description="Growth per further failure.")
    cap_s: float = Field(600.0, gt=0, description="Longest wait.")
    jitter: float = Field(0.2, ge=0.0, le=1.0, description="± fraction of randomness.")
    max_attempts: int = Field(8, ge=1, description="Attempts in all, the first included.")

    @model_validator(mode="after")
    def _cap(self) -> RetryPolicy:
        if self.cap_s < self.base_s:
            raise ValueError("cap_s is smaller than base_s")
        return self


def delay(policy: RetryPolicy, failures: int, rng: random.Random | None = None) -> float:
    """Seconds to wait after ``failures`` (>= 1) failed attempts."""
    if failures < 1:
        raise ValueError("failures must be at least 1")
    # Avoid float overflow for silly attempt counts: stop growing once past the cap.
    raw = policy.base_s
    for _ in range(failures - 1):
        raw *= policy.factor
        if raw >= policy.cap_s:
            break
    raw = min(raw, policy.cap_s)
    if policy.jitter:
        r = (rng or random).uniform(1.0 - policy.jitter, 1.0 + policy.jitter)
        raw *= r
    return min(raw, policy.cap_s)


def should_retry(policy: RetryPolicy, attempts: int, transient: bool) -> bool:
    """Whether another attempt is due after ``attempts`` attempts that all failed."""
    return transient and attempts < policy.max_attempts


def next_attempt(
    policy: RetryPolicy,
    attempts: int,
    now: dt.datetime,
    transient: bool = True,
    rng: random.Random | None = None,
) -> dt.datetime | None:
    """When to try again after ``attempts`` failed attempts, or ``None`` (give up)."""
    if not should_retry(policy, attempts, transient):
        return None
    return now + dt.timedelta(seconds=delay(policy, attempts, rng))
