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


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, every core counted (busy:
    neither idle nor waiting for I/O): the difference of two readings over the wall time
    between them is how many cores were busy."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    total = sum(ticks[:8])  # guest time is counted in user time already
    return (total - ticks[3] - ticks[4]) / tick, total / tick


def own_cpu() -> float:
    """User + system CPU seconds of this process (all its threads)."""
    t = os.times()
    return t.user + t.system
