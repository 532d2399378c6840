"""DCMTK command-line peers run by the tests: storescu, echoscu and their logs."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.support.storescp import dcmtk_env

ENV = dcmtk_env()


def _storescu_command(
    port: int, files: Sequence[Path], called: str, calling: str, extra: Sequence[str]
) -> list[str]:
    """The storescu command line: verbose, one association to 127.0.0.1:``port``."""
    return [
        "storescu",
        "-v",
        "-aet",
        calling,
        "-aec",
        called,
        *extra,
        "127.0.0.1",
        str(port),
        *map(str, files),
    ]


def storescu(
    port: int,
    files: list[Path],
    called: str = "DICOM_NODE",
    calling: str = "STORESCU",
    *extra: str,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run DCMTK storescu verbosely over one association; ``check`` raises on a failed run."""
    return subprocess.run(
        _storescu_command(port, files, called, calling, extra),
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
        check=check,
    )


def storescu_background(
    port: int,
    files: Sequence[Path],
    called: str = "DICOM_NODE",
    calling: str = "STORESCU",
    *extra: str,
) -> subprocess.Popen[str]:
    """Start DCMTK storescu verbosely over one association, in the background.

    Its output (``-v`` log and errors) is a text pipe: read it with ``communicate()``
    and :func:`storescu_successes`.
    """
    return subprocess.Popen(
        _storescu_command(port, files, called, calling, extra),
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def storescu_at_once(
    port: int, batches: Sequence[Sequence[Path]], *extra: str, timeout: float = 120
) -> list[tuple[int, str]]:
    """Send each batch of files on its own association, all at the same time.

    The calling AE titles are ``SCU0``, ``SCU1``, ...; returns each storescu's exit
    status and ``-v`` output, in batch order, once all have finished.
    """
    senders = [
        storescu_background(port, files, "DICOM_NODE", f"SCU{i}", *extra)
        for i, files in enumerate(batches)
    ]
    outs = [s.communicate(timeout=timeout)[0] for s in senders]
    return [(s.returncode, out) for s, out in zip(senders, outs, strict=True)]


def echoscu(port: int, called: str, calling: str = "ECHOSCU") -> subprocess.CompletedProcess[str]:
    """Run DCMTK echoscu."""
    return subprocess.run(
        ["echoscu", "-aet", calling, "-aec", called, "127.0.0.1", str(port)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )


def storescu_successes(storescu_log: str) -> list[str]:
    """Files storescu got a Success response for (its -v log pairs file and response)."""
    done, current = [], None
    for line in storescu_log.splitlines():
        m = re.match(r"I: Sending file: (.+)$", line)
        if m:
            current = m.group(1).strip()
        elif "Received Store Response (Success)" in line and current:
            done.append(current)
            current = None
    return done


def skip_peer_tests_without_dcmtk(items: list[pytest.Item]) -> None:
    """Mark the ``peer`` tests skipped where DCMTK is not installed."""
    if shutil.which("storescu") is None:
        skip = pytest.mark.skip(reason="DCMTK not installed (scripts/install-system-deps.sh)")
        for item in items:
            if "peer" in item.keywords:
                item.add_marker(skip)
