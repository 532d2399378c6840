"""A tmpfs of a test's own, to run out of space or inodes for real (needs root, as in CI)."""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def mounted_tmpfs(where: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted on a new directory ``where`` with mount ``options`` (e.g.
    ``size=1m,nr_inodes=16``), unmounted afterwards; the test is skipped if it cannot
    be mounted."""
    where.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs: {r.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def use_every_inode(directory: Path) -> list[Path]:
    """Empty files made in ``directory`` until its filesystem has no inode left."""
    made: list[Path] = []
    while True:
        path = directory / f"filler-{len(made)}"
        try:
            path.touch(exist_ok=False)
        except OSError as err:
            assert err.errno == errno.ENOSPC, err
            return made
        made.append(path)
