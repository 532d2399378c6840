"""STOW-RS same-run A/B: this checkout's node against another checkout's, in ABBA cycles.

Each run starts a fresh node (``NodeProcess`` with ``root`` = the checkout), sends
``--sets`` sets of ``--instances`` CT slices by STOW-RS with ``--clients`` threads
(``--batch`` per request) and prints instances/s and the node's CPU ms per instance.
Each cycle runs baseline, this, this, baseline; the summary gives each cycle's change
(this over baseline, in %) and the medians. The VM varies by +-20% from run to run:
judge by the median and how many cycles agree, not by one run.

    python benchmarks/stow_ab.py --baseline /work/main [--clients 4] [--cycles 3]
                                 [--node-database sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

import stow as S  # benchmarks/stow.py: the sender and the node config

from dicom_node.synthetic import Patient, iter_ct_series, write_files
from tests.support.node_process import NodeProcess
from tests.support.postgres import PostgresServer
from tests.support.proc_cpu import cpu_seconds


def one_run(
    root: Path, sets: list[list[Path]], clients: int, batch: int, work: Path
) -> tuple[float, float]:
    """(instances/s, node CPU ms per instance) of a fresh node from checkout ``root``."""
    with NodeProcess(work / "node", S.node_config(), root=root) as node:
        n, secs, cpu0 = 0, 0.0, cpu_seconds(node.pid)
        for files in sets:
            secs += S.send(f"{node.http_url}/dicomweb/studies", files, clients, batch)
            n += len(files)
        cpu_ms = (cpu_seconds(node.pid) - cpu0) / n * 1e3
    shutil.rmtree(work / "node")
    return n / secs, cpu_ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", type=Path, required=True, help="the other checkout")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--cycles", type=int, default=3)
    ap.add_argument("--sets", type=int, default=3)
    ap.add_argument("--instances", type=int, default=500)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--node-database", choices=["sqlite", "postgresql"], default="sqlite")
    args = ap.parse_args()
    if args.node_database == "postgresql":
        with PostgresServer() as S.POSTGRES:
            compare(args)
    else:
        compare(args)


def compare(args: argparse.Namespace) -> None:
    """The ABBA cycles and their summary."""
    with tempfile.TemporaryDirectory(prefix="stow-ab-") as tmp:
        work = Path(tmp)
        sets = [  # distinct UIDs per set: nothing is a duplicate of an earlier run's
            write_files(iter_ct_series(args.instances, Patient(), seed=s), work / f"ct{s}")
            for s in range(1, args.sets + 1)
        ]
        changes, rates = [], {"this": [], "baseline": []}
        for cycle in range(args.cycles):
            got: dict[str, list[float]] = {"this": [], "baseline": []}
            for which in ("baseline", "this", "this", "baseline"):
                root = args.baseline if which == "baseline" else S.ROOT
                rate, cpu = one_run(root, sets, args.clients, args.batch, work)
                got[which].append(rate)
                rates[which].append(rate)
                print(f"cycle {cycle + 1} {which:8s} {rate:6.0f} inst/s  {cpu:.2f} ms CPU/inst")
            changes.append((sum(got["this"]) / sum(got["baseline"]) - 1) * 100)
        print(
            f"{args.clients} client(s): change per cycle "
            + ", ".join(f"{c:+.0f}%" for c in changes)
            + f"; median {statistics.median(changes):+.0f}%, "
            f"{sum(c > 0 for c in changes)} of {len(changes)} positive; median inst/s "
            f"this {statistics.median(rates['this']):.0f}, "
            f"baseline {statistics.median(rates['baseline']):.0f}"
        )


if __name__ == "__main__":
    main()
