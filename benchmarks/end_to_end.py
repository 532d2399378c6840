#!/usr/bin/env python3
"""End-to-end latency: last C-STORE of a one-image CR study -> its SR at a DCMTK storescp.

Runs, in one go, on loopback:
  * the peer baseline: the same study sent by storescu straight to storescp (transfer only);
  * our node (quiet period 1 s, bundled demo model, destination = that storescp):
    N studies one after another, then N studies at once.
Prints p50/p95 latency per study, studies/minute, the ratio of the p50 to the target
(quiet period + 2 s), and the share of each stage taken from the jobs' own timestamps.

    python benchmarks/end_to_end.py [--studies 20] [--quiet 1.0]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pydicom import dcmread  # noqa: E402

from dicom_node import synthetic  # noqa: E402
from tests.support.dcmtk import dcmtk_tool  # noqa: E402
from tests.support.node_process import NodeProcess  # noqa: E402
from tests.support.storescp import StoreSCP  # noqa: E402

SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.34"
STAGES = [
    ("quiet period", "received_at", "complete_at"),
    ("queue wait", "complete_at", "started_at"),
    ("inference", "started_at", "inferred_at"),
    ("write SR/SC", "inferred_at", "written_at"),
    ("delivery", "written_at", "finished_at"),
]


def storescu(port: int, aec: str, files: list[Path]) -> float:
    """Send and return the time the last C-STORE was answered."""
    subprocess.run(
        [
            dcmtk_tool("storescu"),
            "-aet",
            "BENCH",
            "-aec",
            aec,
            "127.0.0.1",
            str(port),
            *map(str, files),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return time.time()


def make_studies(n: int, folder: Path, seed0: int) -> list[tuple[str, Path]]:
    out = []
    for i in range(n):
        ds = synthetic.make_cr(
            synthetic.Patient(patient_id=f"BENCH{seed0 + i:04d}"),
            seed=seed0 + i,
            rows=1024,
            cols=1024,
        )
        [path] = synthetic.write_files([ds], folder / str(i))
        out.append((ds.StudyInstanceUID, path))
    return out


class Arrivals:
    """Watches storescp's folder: study UID -> arrival time of its SR."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.seen: dict[Path, None] = {}
        self.sr_at: dict[str, float] = {}

    def poll(self) -> None:
        for path in self.folder.glob("*"):
            if path in self.seen:
                continue
            try:
                ds = dcmread(
                    path, stop_before_pixels=True, specific_tags=["SOPClassUID", "StudyInstanceUID"]
                )
            except Exception:  # noqa: BLE001 - a file still being written fails in any way
                continue
            self.seen[path] = None
            if ds.SOPClassUID == SR_CLASS:
                self.sr_at[ds.StudyInstanceUID] = path.stat().st_mtime

    def wait(self, studies: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll()
            if all(s in self.sr_at for s in studies):
                return
            time.sleep(0.02)
        missing = [s for s in studies if s not in self.sr_at]
        raise TimeoutError(f"{len(missing)} SR(s) did not arrive")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def stage_shares(db: Path) -> dict[str, float]:
    con = sqlite3.connect(db)
    cols = sorted({c for _, a, b in STAGES for c in (a, b)})
    rows = con.execute(f"select {', '.join(cols)} from jobs where state='done'").fetchall()
    con.close()
    totals = dict.fromkeys((s for s, _, _ in STAGES), 0.0)
    for row in rows:
        r = {c: datetime.fromisoformat(v) for c, v in zip(cols, row, strict=True) if v}
        for name, a, b in STAGES:
            if a in r and b in r:
                totals[name] += (r[b] - r[a]).total_seconds()
    whole = sum(totals.values()) or 1.0
    return {k: v / whole for k, v in totals.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--studies", type=int, default=20)
    ap.add_argument("--quiet", type=float, default=1.0)
    args = ap.parse_args()
    n, quiet = args.studies, args.quiet
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp_s:
        tmp = Path(tmp_s)
        seq = make_studies(n, tmp / "seq", 1000)
        par = make_studies(n, tmp / "par", 2000)
        with StoreSCP(tmp / "pacs", ae_title="PACS") as pacs:
            # Peer baseline: storescu -> storescp, the same one-image studies.
            direct = []
            for _, path in seq[:5]:
                t0 = time.time()
                storescu(pacs.port, "PACS", [path])
                direct.append(time.time() - t0)
            for f in pacs.out_dir.glob("*"):
                f.unlink()
            node = NodeProcess(
                tmp / "node",
                config={
                    "ae_titles": [{"ae_title": "DICOM_NODE", "quiet_seconds": quiet}],
                    # every study at once, all from 127.0.0.1: the per-address limit
                    # (half of max_associations) would reject some of them
                    "max_associations_per_peer": 32,
                },
                extra_args=["--destination", f"PACS@127.0.0.1:{pacs.port}"],
            )
            arrivals = Arrivals(pacs.out_dir)
            with node:
                print(f"node up; sending {n} studies one after another", flush=True)
                seq_lat = []
                for uid, path in seq:
                    sent = storescu(node.port, "DICOM_NODE", [path])
                    arrivals.wait([uid], timeout=120)
                    seq_lat.append(arrivals.sr_at[uid] - sent)
                print(f"sending {n} studies at once", flush=True)
                sent_at: dict[str, float] = {}

                def send(uid: str, path: Path) -> None:
                    sent_at[uid] = storescu(node.port, "DICOM_NODE", [path])

                t0 = time.time()
                threads = [threading.Thread(target=send, args=sp) for sp in par]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                arrivals.wait([u for u, _ in par], timeout=600)
                burst_wall = max(arrivals.sr_at[u] for u, _ in par) - t0
                par_lat = [arrivals.sr_at[u] - sent_at[u] for u, _ in par]
                rss = node.peak_rss_kb() / 1024
            shares = stage_shares(node.data_dir / "index.sqlite")
    target = quiet + 2.0
    p50 = statistics.median(seq_lat)
    print()
    print(
        f"peer (storescu -> storescp, 1 CR 1024x1024): {statistics.median(direct):.3f} s "
        "per study, transfer only"
    )
    print(
        f"node one at a time  : p50 {p50:.2f} s  p95 {pct(seq_lat, 0.95):.2f} s  "
        f"({60 / statistics.mean(seq_lat):.1f} studies/min)"
    )
    print(
        f"node {n} at once     : p50 {statistics.median(par_lat):.2f} s  "
        f"p95 {pct(par_lat, 0.95):.2f} s  ({n * 60 / burst_wall:.1f} studies/min)"
    )
    print(
        f"target p50 <= quiet + 2 s = {target:.1f} s; ratio p50/target = {p50 / target:.2f} "
        f"({'met' if p50 <= target else 'NOT met'})"
    )
    print(
        f"node latency minus quiet period vs peer transfer: "
        f"{(p50 - quiet) / statistics.median(direct):.1f}x"
    )
    print(f"node peak RSS: {rss:.0f} MB")
    print(
        "share of time per stage (all jobs): "
        + ", ".join(f"{k} {v:.0%}" for k, v in shares.items())
    )


if __name__ == "__main__":
    main()
