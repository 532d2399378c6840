"""DCMTK command-line peers run by the tests: storescu, echoscu and their logs, and where
each DCMTK tool is.

pynetdicom installs apps of the same names (``storescu``, ``storescp``, ``echoscu``,
``findscu``, ``movescu``, ``getscu``) into the virtual environment's ``bin/``: with the
environment activated, a bare ``storescu`` runs pynetdicom's, not DCMTK's. Every test,
support module and benchmark runs DCMTK tools through :func:`dcmtk_tool`, which skips
the running interpreter's ``bin/`` and checks that what it found is DCMTK.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

# DCMTK tools the tests and benchmarks run (the first six are also pynetdicom app names)
TOOLS = ("storescu", "storescp", "echoscu", "findscu", "movescu", "getscu", "dsrdump", "dcmdump")


def dcmtk_env() -> dict[str, str]:
    """The environment for DCMTK tools: Nagle's algorithm off (``TCP_NODELAY=1``).

    DCMTK leaves Nagle on unless this variable is set; with it on, each small C-STORE
    response waits for the peer's delayed ACK (~40 ms per instance on Linux loopback),
    which would dominate any timing taken against storescp/storescu.
    """
    return {**os.environ, "TCP_NODELAY": "1"}


def _interpreter_bins() -> set[Path]:
    """The running interpreter's ``bin/`` (as named and resolved): pynetdicom's apps."""
    dirs = {Path(sys.executable).parent, Path(sys.prefix) / "bin"}
    return {d.absolute() for d in dirs} | {d.resolve() for d in dirs}


def is_dcmtk(path: str | Path) -> bool:
    """Whether ``path`` is a DCMTK tool (its ``--version`` says ``$dcmtk: NAME vX``)."""
    try:
        out = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return "$dcmtk:" in out.stdout + out.stderr


@functools.cache
def find_dcmtk_tool(name: str) -> str | None:
    """The path of DCMTK's ``name`` on PATH, skipping the running interpreter's ``bin/``
    and anything that is not DCMTK; None if DCMTK's is not installed."""
    skip = _interpreter_bins()
    for entry in os.environ.get("PATH", os.defpath).split(os.pathsep):
        folder = Path(entry or ".").absolute()
        if folder in skip or folder.resolve() in skip:
            continue
        candidate = folder / name
        if candidate.is_file() and os.access(candidate, os.X_OK) and is_dcmtk(candidate):
            return str(candidate)
    return None


def dcmtk_tool(name: str) -> str:
    """The path of DCMTK's ``name`` (see :func:`find_dcmtk_tool`); FileNotFoundError if
    DCMTK's is not installed."""
    path = find_dcmtk_tool(name)
    if path is None:
        raise FileNotFoundError(
            f"DCMTK {name} not found on PATH (outside {sys.prefix}/bin): "
            "scripts/install-system-deps.sh"
        )
    return path


ENV = dcmtk_env()


def _storescu_command(
    port: int, files: Sequence[Path], called: str, calling: str, extra: Sequence[str]
) -> list[str]:
    """The storescu command line: verbose, one association to 127.0.0.1:``port``."""
    return [
        dcmtk_tool("storescu"),
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
        [dcmtk_tool("echoscu"), "-aet", calling, "-aec", called, "127.0.0.1", str(port)],
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
    import pytest

    if find_dcmtk_tool("storescu") is None:
        skip = pytest.mark.skip(reason="DCMTK not installed (scripts/install-system-deps.sh)")
        for item in items:
            if "peer" in item.keywords:
                item.add_marker(skip)
