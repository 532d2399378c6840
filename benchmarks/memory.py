"""Node memory: RSS of a default ``serve`` when idle and after inference jobs.

Starts the node (bundled demo model loaded, as by default) on a fresh data directory
(``cold``: the demo package is built first) and reads its RSS and peak RSS (VmHWM) once
it listens; stops it and starts it again on the same directory (``warm``: package
cached). Then sends CR chest studies with storescu one after another, reading RSS and
peak after each job, and finally ``--burst`` studies at once (concurrent jobs).

    python benchmarks/memory.py [--studies 3] [--burst 5] [--rows 1024]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dicom_node import synthetic  # noqa: E402
from tests.support.dcmtk import dcmtk_tool  # noqa: E402
from tests.support.node_process import NodeProcess  # noqa: E402

CONFIG = {
    "logging": {"level": "WARNING"},
    "ae_titles": [{"ae_title": "DICOM_NODE", "quiet_seconds": 0.5}],
}


def status_mb(pid: int) -> dict[str, float]:
    """VmRSS, VmHWM, RssAnon and RssFile of ``pid`` in MB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            out[key] = int(value.split()[0]) / 1024
    return out


def fmt(label: str, m: dict[str, float]) -> str:
    return (
        f"{label:14s} RSS {m['VmRSS']:6.1f} MB  peak {m['VmHWM']:6.1f} MB  "
        f"(anon {m['RssAnon']:.1f}, file {m['RssFile']:.1f})"
    )


def finished_jobs(db: Path, want: int, timeout: float = 120.0) -> list[float]:
    """Wait until ``want`` jobs are done; their durations (started -> finished), in s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(db) as con:
                rows = con.execute(
                    "SELECT state, (julianday(finished_at) - julianday(started_at)) * 86400 "
                    "FROM jobs WHERE state IN ('done', 'dead') ORDER BY id"
                ).fetchall()
        except sqlite3.OperationalError:
            rows = []
        if any(state == "dead" for state, _ in rows):
            raise RuntimeError("a job failed; see the node log")
        if len(rows) >= want:
            time.sleep(0.3)  # the worker finishes its bookkeeping after marking the job
            return [secs or 0.0 for _, secs in rows]
        time.sleep(0.1)
    raise TimeoutError(f"fewer than {want} job(s) finished in {timeout:.0f} s")


def send_studies(node: NodeProcess, folder: Path, first: int, count: int, rows: int) -> None:
    """``count`` one-image CR studies over one association."""
    files = []
    for i in range(first, first + count):
        ds = synthetic.make_cr(
            synthetic.Patient(patient_id=f"MEM{i:04d}"), seed=i + 1, rows=rows, cols=rows
        )
        files += synthetic.write_files([ds], folder / str(i))
    subprocess.run(
        [
            dcmtk_tool("storescu"),
            "-aec",
            "DICOM_NODE",
            "127.0.0.1",
            str(node.port),
            *map(str, files),
        ],
        check=True,
        capture_output=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=3, help="studies sent one after another")
    ap.add_argument("--burst", type=int, default=5, help="studies then sent at once")
    ap.add_argument("--rows", type=int, default=1024, help="CR image size (square)")
    ap.add_argument("--settle", type=float, default=2.0, help="seconds to wait after start")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        work = Path(tmp)
        for start in ("cold", "warm"):
            t0 = time.perf_counter()
            node = NodeProcess(work / "node", CONFIG).start()
            listening = time.perf_counter() - t0
            time.sleep(args.settle)
            print(
                fmt(f"{start} idle", status_mb(node.pid)) + f"  [listening after {listening:.1f} s]"
            )
            if start == "cold":
                node.stop()
        db = node.data_dir / "index.sqlite"
        try:
            for i in range(args.studies):
                send_studies(node, work / "src", i, 1, args.rows)
                secs = finished_jobs(db, i + 1)[-1]
                print(fmt(f"after job {i + 1}", status_mb(node.pid)) + f"  [job {secs:.2f} s]")
            if args.burst:
                send_studies(node, work / "src", args.studies, args.burst, args.rows)
                secs = finished_jobs(db, args.studies + args.burst)[args.studies :]
                print(
                    fmt(f"after {args.burst} more", status_mb(node.pid))
                    + f"  [jobs median {statistics.median(secs):.2f} s]"
                )
        finally:
            node.stop()


if __name__ == "__main__":
    main()
