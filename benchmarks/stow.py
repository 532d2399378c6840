"""STOW-RS throughput: the node vs Orthanc's DICOMweb plugin, same files, same client.

Generates CT slices (default 500 of 512x512, 16-bit, ~250 MB) and sends them by STOW-RS
with 1 and 4 concurrent clients (the files dealt out among them, ``--batch`` instances per
request, each request body streamed from the files) to (a) a fresh node (durable: fsync,
index row, assembly) and (b) a fresh Orthanc with its DICOMweb plugin and SQLite index.
Prints instances/s, MB/s and the ratio node/Orthanc per client count, and the CPU time
each server used per instance (user + system, all threads, from /proc): on a machine with
few cores, the server that needs less CPU per instance is the one that scales with clients.
It also prints how many of the machine's cores were busy during each run (from
/proc/stat), with the server's and this script's (the clients') shares: a run that leaves
cores idle is bound by the server's structure, one that fills them by the machine.

Then the node's memory while streaming: one request holding every file (~250 MB), and the
node's peak RSS during it against its RSS just before (the peak is reset first through
/proc/PID/clear_refs).

Then QIDO-RS latency: ``--qido-studies`` studies (default 10,000) written straight into
a node's SQLite index, and study-level queries of several shapes timed from the client.

    python benchmarks/stow.py [--instances 500] [--size 512] [--batch 50] [--rounds 1]
                              [--clients 1 4] [--qido-studies 10000] [--queries 200]
                              [--node-database sqlite|postgresql]

``--node-database postgresql`` runs the node's index on a PostgreSQL server started for
the run (a fresh database per node), as a node at scale would; Orthanc keeps its SQLite
index, as the issue's comparison names it.

With ``--rounds N`` each server runs N times per client count, alternating which goes
first; the figures are medians, and each round's ratio is printed too (a 2-core machine
shared with other work varies by +-20% from one run to the next).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dicom_node.synthetic import Patient, iter_ct_series, write_files  # noqa: E402
from tests.support.node_process import NodeProcess  # noqa: E402
from tests.support.orthanc import Orthanc  # noqa: E402
from tests.support.postgres import PostgresServer  # noqa: E402
from tests.support.proc_cpu import cpu_split, machine_busy, own_cpu  # noqa: E402

NODE_CONFIG = {
    "models": {"bundled": False},
    "http": {"max_request_mb": 4096, "web_source": {"quiet_seconds": 60}},
}


def body(files: list[Path], boundary: str) -> Iterator[bytes]:
    """A multipart/related body streamed from ``files``."""
    for f in files:
        yield f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 20):
                yield chunk
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


def stow(url: str, files: list[Path]) -> None:
    """One STOW-RS request; raises unless every instance was stored."""
    boundary = uuid.uuid4().hex
    r = requests.post(
        url,
        data=body(files, boundary),
        timeout=600,
        headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Accept": "application/dicom+json",
        },
    )
    if r.status_code != 200:
        raise RuntimeError(f"STOW-RS to {url}: HTTP {r.status_code}: {r.text[:300]}")


def send(url: str, files: list[Path], clients: int, batch: int) -> float:
    """Deal ``files`` to ``clients`` threads, each posting ``batch`` per request; wall s."""
    shares = [files[i::clients] for i in range(clients)]
    errors: list[Exception] = []

    def client(share: list[Path]) -> None:
        try:
            for i in range(0, len(share), batch):
                stow(url, share[i : i + batch])
        except Exception as err:  # noqa: BLE001 - every client's failure is reported
            errors.append(err)

    threads = [threading.Thread(target=client, args=(s,)) for s in shares]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - t0


def rss_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


@dataclass(frozen=True, order=True)
class Run:
    wall: float  # s to store every file
    user: float  # user CPU s the server used meanwhile
    sys: float  # kernel CPU s (socket reads, page-cache writes, fsync)
    client: float = 0.0  # CPU s this script's client threads used
    busy: float = 0.0  # cores of the whole machine busy meanwhile (mean)

    @property
    def cpu(self) -> float:
        return self.user + self.sys


def timed_send(url: str, pid: int, files: list[Path], clients: int, batch: int) -> Run:
    user0, sys0 = cpu_split(pid)
    busy0, total0 = machine_busy()
    client0 = own_cpu()
    wall = send(url, files, clients, batch)
    client1 = own_cpu()
    busy1, total1 = machine_busy()
    user1, sys1 = cpu_split(pid)
    cores = (busy1 - busy0) / max(total1 - total0, 1e-9) * (os.cpu_count() or 1)
    return Run(wall, user1 - user0, sys1 - sys0, client1 - client0, cores)


# The node's index: SQLite in its data directory, or a database on this server.
POSTGRES: PostgresServer | None = None


def node_config() -> dict[str, object]:
    if POSTGRES is None:
        return NODE_CONFIG
    return {**NODE_CONFIG, "database_url": POSTGRES.create_database()}


def node_throughput(files: list[Path], run: Path, clients: int, batch: int) -> Run:
    with NodeProcess(run / "node", node_config()) as node:
        return timed_send(f"{node.http_url}/dicomweb/studies", node.pid, files, clients, batch)


def orthanc_throughput(files: list[Path], run: Path, clients: int, batch: int) -> Run:
    with Orthanc(run / "orthanc", dicomweb=True) as orthanc:
        assert orthanc.proc is not None
        url = f"{orthanc.dicomweb_url}/studies"
        orthanc_run = timed_send(url, orthanc.proc.pid, files, clients, batch)
        stored = orthanc.instance_count()
        if stored != len(files):
            raise RuntimeError(f"Orthanc stored {stored} of {len(files)}")
    return orthanc_run


def throughput(
    files: list[Path], work: Path, clients: int, batch: int, node_first: bool = True
) -> tuple[Run, Run]:
    """The node's and Orthanc's runs, each fresh, for the same files (``node_first``:
    which one runs first; rounds alternate it, so neither always gets the warmer disk)."""
    run = work / f"c{clients}"
    if node_first:
        node_run = node_throughput(files, run / "a", clients, batch)
        orthanc_run = orthanc_throughput(files, run / "a", clients, batch)
    else:
        orthanc_run = orthanc_throughput(files, run / "b", clients, batch)
        node_run = node_throughput(files, run / "b", clients, batch)
    for d in (run / "a", run / "b"):
        shutil.rmtree(d, ignore_errors=True)
    return node_run, orthanc_run


def streaming_memory(files: list[Path], work: Path) -> tuple[int, int]:
    """(RSS before, peak RSS during) one request of every file, in kB."""
    with NodeProcess(work / "memory", node_config()) as node:
        requests.get(f"{node.http_url}/health", timeout=10)
        Path(f"/proc/{node.pid}/clear_refs").write_text("5")  # reset VmHWM
        idle = rss_kb(node.pid, "VmRSS")
        stow(f"{node.http_url}/dicomweb/studies", files)
        return idle, rss_kb(node.pid, "VmHWM")


def fill_index(data_dir: Path, studies: int) -> None:
    """Write ``studies`` studies (2 instances each) straight into a node's SQLite index."""
    from sqlalchemy import insert

    from dicom_node.db import Database, sqlite_url
    from dicom_node.index.tables import Group, Instance
    from dicom_node.node import DB_FILENAME  # noqa: F401  (registers every table)

    data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(sqlite_url(data_dir / "index.sqlite"))
    db.create_all()
    now = datetime(2026, 1, 1)
    rnd = random.Random(5)
    with db.engine.begin() as conn:
        gid = conn.execute(
            insert(Group.__table__).values(
                state="complete",
                called_ae="BENCH",
                calling_ae="BENCH",
                group_by="study",
                group_key="x",
                study_uid="x",
                modalities="CT",
                first_received=now,
                last_received=now,
                deadline=now,
            )
        ).inserted_primary_key[0]
        rows = []
        for s in range(studies):
            study = f"1.2.826.0.1.3680043.8.498.{s + 1}"
            for i in range(2):
                rows.append(
                    dict(
                        sop_instance_uid=f"{study}.1.{i + 1}",
                        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
                        study_uid=study,
                        series_uid=f"{study}.1",
                        patient_id=f"P{s % 3000:05d}",
                        patient_name=f"{rnd.choice(['SMITH', 'JONES', 'DOE', 'MILLER'])}^{s}",
                        accession_number=f"A{s:07d}",
                        study_date=f"2025{(s % 12) + 1:02d}{(s % 28) + 1:02d}",
                        modality=rnd.choice(["CT", "CR", "MR"]),
                        transfer_syntax="1.2.840.10008.1.2.1",
                        calling_ae="BENCH",
                        called_ae="BENCH",
                        received_at=now,
                        path="/nonexistent",
                        size=0,
                        group_id=gid,
                        instance_number=i + 1,
                    )
                )
        conn.execute(insert(Instance.__table__), rows)
    db.dispose()


def qido_latency(work: Path, studies: int, queries: int) -> dict[str, list[float]]:
    """Latencies (ms) of study-level queries of several shapes."""
    data = work / "qido" / "data"
    fill_index(data, studies)
    shapes = {
        "all, limit 100": lambda i: {"limit": "100"},
        "PatientID": lambda i: {"PatientID": f"P{i % 3000:05d}"},
        "PatientName wildcard": lambda i: {"PatientName": "SMITH*", "limit": "50"},
        "StudyDate range": lambda i: {"StudyDate": "20250301-20250315", "limit": "100"},
        "AccessionNumber": lambda i: {"AccessionNumber": f"A{(i * 37) % studies:07d}"},
        "ModalitiesInStudy": lambda i: {"ModalitiesInStudy": "MR", "limit": "100"},
    }
    out: dict[str, list[float]] = {}
    with NodeProcess(work / "qido", NODE_CONFIG) as node:
        session = requests.Session()
        url = f"{node.http_url}/dicomweb/studies"
        for name, params in shapes.items():
            times = []
            for i in range(queries):
                t0 = time.perf_counter()
                r = session.get(url, params=params(i), timeout=30)
                times.append((time.perf_counter() - t0) * 1000)
                r.raise_for_status()
            out[name] = times
    return out


def cpu_ms(run: Run, n: int) -> str:
    """A run's CPU per instance, with its user and kernel shares."""
    return (
        f"{run.cpu / n * 1e3:.2f} ms (user {run.user / n * 1e3:.2f} + sys {run.sys / n * 1e3:.2f})"
    )


def busy(run: Run, server: str) -> str:
    """The machine's busy cores during ``run``, and the server's and client's shares."""
    return (
        f"with {server} {run.busy:.2f} ({server} {run.cpu / run.wall:.2f}, client "
        f"{run.client / run.wall:.2f})"
    )


def stow_part(args: argparse.Namespace, work: Path) -> None:
    """Throughput against Orthanc, then the streaming memory figure."""
    files = write_files(
        iter_ct_series(args.instances, Patient(), rows=args.size, cols=args.size, seed=1),
        work / "ct",
    )
    mb = sum(f.stat().st_size for f in files) / 2**20
    print(f"{len(files)} CT slices, {mb:.0f} MB, {args.batch} per request")
    for clients in args.clients:
        runs = [
            throughput(files, work, clients, args.batch, node_first=r % 2 == 0)
            for r in range(args.rounds)
        ]
        n = len(files)
        t_node = statistics.median(r[0].wall for r in runs)
        t_orthanc = statistics.median(r[1].wall for r in runs)
        node_run = statistics.median_low(r[0] for r in runs)  # by wall: one whole run
        orthanc_run = statistics.median_low(r[1] for r in runs)
        print(
            f"  {clients} client(s): node {n / t_node:7.1f} inst/s {mb / t_node:6.1f} "
            f"MB/s | Orthanc {n / t_orthanc:7.1f} inst/s {mb / t_orthanc:6.1f} MB/s"
            f" | ratio node/Orthanc {t_orthanc / t_node:.2f}"
            + (f" (median of {args.rounds} rounds)" if args.rounds > 1 else "")
        )
        if args.rounds > 1:
            print(
                "    within each round, node/Orthanc: "
                + ", ".join(f"{o.wall / nd.wall:.2f}" for nd, o in runs)
            )
        print(
            f"    server CPU per instance: node {cpu_ms(node_run, n)} | Orthanc "
            f"{cpu_ms(orthanc_run, n)} | ratio Orthanc/node "
            f"{orthanc_run.cpu / max(node_run.cpu, 1e-9):.2f}"
        )
        print(
            f"    cores busy (of {os.cpu_count()}): {busy(node_run, 'node')} | "
            f"{busy(orthanc_run, 'Orthanc')}"
        )
    idle, peak = streaming_memory(files, work)
    print(
        f"  one request of {mb:.0f} MB: node RSS {idle / 1024:.0f} MB before, peak "
        f"{peak / 1024:.0f} MB during (+{(peak - idle) / 1024:.0f} MB)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=500)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--batch", type=int, default=50, help="instances per STOW-RS request")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4])
    ap.add_argument(
        "--rounds", type=int, default=1, help="runs of each server per client count (medians)"
    )
    ap.add_argument("--qido-studies", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=200, help="per query shape")
    ap.add_argument("--qido-only", action="store_true", help="skip the STOW-RS part")
    ap.add_argument(
        "--node-database",
        choices=["sqlite", "postgresql"],
        default="sqlite",
        help="the node's index for the STOW-RS part (Orthanc keeps SQLite)",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="stow-bench-") as tmp:
        work = Path(tmp)
        if not args.qido_only:
            if args.node_database == "postgresql":
                global POSTGRES
                with PostgresServer() as POSTGRES:
                    print("node index: PostgreSQL (Orthanc: SQLite)")
                    stow_part(args, work)
                POSTGRES = None
            else:
                stow_part(args, work)
        if args.qido_studies:
            lat = qido_latency(work, args.qido_studies, args.queries)
            print(
                f"QIDO-RS study level, {args.qido_studies} studies in SQLite, "
                f"{args.queries} queries per shape (ms):"
            )
            for name, times in lat.items():
                q = statistics.quantiles(times, n=20)
                print(f"  {name:22s} p50 {statistics.median(times):6.1f}  p95 {q[18]:6.1f}")


if __name__ == "__main__":
    main()
