"""Options shared by every test directory."""

from __future__ import annotations

import contextlib

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    # Fuzz suites run a fixed seed and a small budget in CI; --long runs many more cases.
    with contextlib.suppress(ValueError):  # another conftest may have added it
        parser.addoption("--long", action="store_true", default=False,
                         help="run the fuzz suites with a large budget")
    with contextlib.suppress(ValueError):
        parser.addoption("--fuzz-seed", type=int, default=None,
                         help="seed of the fuzz suites (default: fixed per suite)")
