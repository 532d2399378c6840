"""Is a given process listening on a TCP port? (Linux /proc; no test connection made.)"""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.ports import accepting


def _socket_inodes(pid: int) -> set[str]:
    inodes: set[str] = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        entries = list(fd_dir.iterdir())
    except OSError:
        return inodes
    for fd in entries:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def listening(port: int, pid: int | None = None) -> bool:
    """Whether something (process ``pid``, if given) listens on TCP ``port``.

    Reads the kernel's socket tables instead of connecting: a test connection would make
    a DICOM peer log a failed association. Falls back to connecting where /proc is
    missing (then ``pid`` is not checked).
    """
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not tables[0].exists():
        return accepting(port)
    want = f":{port:04X}"
    inodes = _socket_inodes(pid) if pid is not None else None
    for table in tables:
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            mine = inodes is None or (len(fields) > 9 and fields[9] in inodes)
            if len(fields) > 3 and fields[1].endswith(want) and fields[3] == "0A" and mine:
                return True  # state 0A = LISTEN
    return False
