"""Hypothesis settings for the fuzz suites: a fixed seed and a small budget in CI, more
(and fresh) examples with ``pytest --long`` or FUZZ_LONG=1, a chosen seed with
``--fuzz-seed N``. No example database is kept (nothing is written to the repository)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import HealthCheck, seed, settings

F = TypeVar("F", bound=Callable[..., Any])

LONG = os.environ.get("FUZZ_LONG") == "1"  # tests/conftest.py sets these from the options
SEED: int | None = None


def configure(long: bool, fuzz_seed: int | None) -> None:
    global LONG, SEED
    LONG = LONG or long
    SEED = fuzz_seed


def budget(ci: int, long: int) -> Callable[[F], F]:
    """Run a Hypothesis test on ``ci`` examples derived from its name (the same ones on
    every run), or on ``long`` random ones with --long; --fuzz-seed fixes the seed."""

    def decorate(test: F) -> F:
        chosen = settings(
            max_examples=long if LONG else ci,
            derandomize=SEED is None and not LONG,
            deadline=None,
            database=None,
            print_blob=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )(test)
        return seed(SEED)(chosen) if SEED is not None else chosen

    return decorate
