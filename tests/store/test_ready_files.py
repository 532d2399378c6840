"""Spool files prepared ahead (dicom_node.store.ready_files) on a real directory."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dicom_node.store.ready_files import ReadyFiles


def _wait_for(predicate: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_taken_files_are_new_empty_and_writable_and_the_pool_refills(tmp_path: Path) -> None:
    ready = ReadyFiles(tmp_path, ".stow", size=3)
    try:
        taken = [ready.take() for _ in range(5)]
        paths = [p for p, _ in taken]
        assert len(set(paths)) == 5
        for path, fd in taken:
            assert path.parent == tmp_path and path.suffix == ".stow"
            assert os.write(fd, b"DICM") == 4
            os.close(fd)
            assert path.read_bytes() == b"DICM"
        # the background thread keeps `size` empty files ready beside the taken ones
        assert _wait_for(lambda: len(list(tmp_path.iterdir())) == 5 + 3)
        spare = set(tmp_path.iterdir()) - set(paths)
        assert all(p.stat().st_size == 0 for p in spare)
    finally:
        ready.close()
    # closing removes the prepared files, never the taken ones
    assert sorted(tmp_path.iterdir()) == sorted(paths)


def test_take_after_close_still_creates_a_file(tmp_path: Path) -> None:
    ready = ReadyFiles(tmp_path, ".stow", size=2)
    ready.close()
    path, fd = ready.take()
    os.close(fd)
    assert list(tmp_path.iterdir()) == [path]


def test_a_missing_directory_fails_the_take_and_not_the_thread(tmp_path: Path) -> None:
    gone = tmp_path / "incoming"
    ready = ReadyFiles(gone, ".stow", size=2)
    try:
        with pytest.raises(FileNotFoundError):
            ready.take()
        gone.mkdir()  # the directory is back: the pool works again
        path, fd = ready.take()
        os.close(fd)
        assert path.parent == gone
        assert _wait_for(lambda: len(list(gone.iterdir())) == 1 + 2)
    finally:
        ready.close()


def test_a_ready_file_whose_name_was_removed_is_not_handed_out(tmp_path: Path) -> None:
    ready = ReadyFiles(tmp_path, ".stow", size=3)
    try:
        first, fd = ready.take()
        os.close(fd)
        assert _wait_for(lambda: len(list(tmp_path.iterdir())) == 1 + 3)
        for p in tmp_path.iterdir():  # another process cleaning the directory
            p.unlink()
        path, fd = ready.take()
        os.close(fd)
        assert path.exists()  # a new file, not one of the removed ones
    finally:
        ready.close()
