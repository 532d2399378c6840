"""Spool files prepared ahead (dicom_node.store.ready_files) on a real directory, and on
a real filesystem out of inodes."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from dicom_node.store.ready_files import ReadyFiles
from tests.support.tmpfs import mounted_tmpfs, use_every_inode


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


@pytest.fixture
def few_inodes(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of its own with 16 inodes (needs root, as in CI)."""
    with mounted_tmpfs(tmp_path / "fs", "size=1m,nr_inodes=16") as mnt:
        yield mnt


def _failures() -> float:
    value = REGISTRY.get_sample_value("dicom_node_ready_files_failures_total", {"pool": "stow"})
    return value or 0.0


def test_running_out_of_inodes_warns_once_per_episode_and_says_when_it_recovers(
    few_inodes: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No inode left: each part's take fails, and the thread's try to prepare files
    after it fails too (counted each time); one WARNING for the episode, DEBUG for the
    repeats, one line when files are prepared again. The next exhaustion is a new
    episode, with its WARNING."""
    caplog.set_level(logging.DEBUG, logger="dicom_node.store.ready_files")
    before = _failures()
    fillers = use_every_inode(few_inodes)
    ready = ReadyFiles(few_inodes, ".stow", size=2)
    try:
        for n in range(1, 4):
            with pytest.raises(OSError):
                ready.take()
            assert _wait_for(lambda n=n: _failures() == before + n)
        for path in fillers[:3]:  # room for the part's file and two ready ones
            path.unlink()
        taken, fd = ready.take()
        os.close(fd)
        assert _wait_for(lambda: len(list(few_inodes.glob("*.stow"))) == 1 + 2)
        assert _wait_for(lambda: "prepared again" in caplog.text)
        taken, fd = ready.take()  # a ready one: the thread's refill finds no inode
        os.close(fd)
        assert _wait_for(lambda: _failures() == before + 4)
    finally:
        ready.close()
    lines = [
        (r.levelno, r.getMessage())
        for r in caplog.records
        if r.name == "dicom_node.store.ready_files"
    ]
    assert [level for level, _ in lines] == [
        logging.WARNING,
        logging.DEBUG,
        logging.DEBUG,
        logging.INFO,
        logging.WARNING,
    ], lines
    assert str(few_inodes) in lines[0][1] and "after 3 failure" in lines[3][1], lines


class _Want(threading.Event):
    """The pool's wake-up; ``idle`` is set when its thread waits with nothing to do."""

    def __init__(self) -> None:
        super().__init__()
        self.idle = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        if not self.is_set():
            self.idle.set()
        return super().wait(timeout)


class _Stepped(ReadyFiles):
    """A pool whose thread stops after each file it tries to make (made or failed), until
    the test lets it go on: a take can land exactly mid-refill."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, ".stow", size=2)
        self._want = self.want = _Want()
        self.tries = 0
        self.tried = threading.Semaphore(0)
        self.go = threading.Semaphore(0)

    def _create(self) -> tuple[Path, int]:
        if threading.current_thread().name != "ready-files":
            return super()._create()
        self.tries += 1
        try:
            return super()._create()
        finally:
            self.tried.release()
            self.go.acquire(timeout=10)


def test_a_take_that_a_refill_saw_is_not_tried_again(few_inodes: Path) -> None:
    """A part taken while the thread refills, before its next look at the pool: that look
    sees the take, so the take costs one try (one failure counted when no inode is left),
    not a second one after the refill."""
    for path in use_every_inode(few_inodes)[:3]:  # the part's own file, two ready ones
        path.unlink()
    ready = _Stepped(few_inodes)
    before = _failures()
    try:
        _, fd = ready.take()  # none ready: the part's own file; the thread starts
        os.close(fd)
        assert ready.tried.acquire(timeout=10)  # first ready file made
        ready.go.release()
        assert ready.tried.acquire(timeout=10)  # second one made, not in the pool yet
        _, fd = ready.take()  # takes the first, before the thread's next look
        os.close(fd)
        ready.want.idle.clear()
        ready.go.release()
        assert ready.tried.acquire(timeout=10)  # its next look: one short, no inode left
        ready.go.release()
        assert _wait_for(lambda: ready.want.idle.is_set() or ready.tries > 3)
        assert (ready.tries, _failures()) == (3, before + 1)
    finally:
        ready.go.release(10)  # never leave the thread stopped
        ready.close()
