"""DCMTK command-line peers run by the tests: storescu, echoscu and their logs."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.storescp import dcmtk_env

ENV = dcmtk_env()


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
        [
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
        ],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
        check=check,
    )


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
