"""The corpus runner's worker processes are spawned, never forked from the test process
(which has live threads: a forked child can inherit a lock one of them held)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from tests.support.corpus import corpus_files, run_corpus

FORKS: list[int] = []  # pids that forked while a test here listened
_LISTENING = threading.Event()


def _before_fork() -> None:
    if _LISTENING.is_set():
        FORKS.append(os.getpid())


os.register_at_fork(before=_before_fork)  # a process-wide hook: it only records


def test_run_corpus_does_not_fork_with_live_threads(tmp_path: Path) -> None:
    (small,) = [f for f in corpus_files() if f.name == "pydicom/MR_small.dcm"]
    stop = threading.Event()
    live = threading.Thread(target=stop.wait, daemon=True)  # as a full test run has
    live.start()
    _LISTENING.set()
    try:
        outcomes = list(run_corpus([small], tmp_path, check=False, workers=1))
    finally:
        _LISTENING.clear()
        stop.set()
    assert [o.status for o in outcomes] in (["ok"], ["skipped"], ["failed"]), outcomes
    assert FORKS == []
