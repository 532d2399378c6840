"""CPU time of a process from /proc, for benchmarks that compare servers' CPU per item."""

from __future__ import annotations

import os
from pathlib import Path


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds process ``pid`` has used so far (all its threads, live
    and ended)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid``."""
    return sum(cpu_split(pid))
