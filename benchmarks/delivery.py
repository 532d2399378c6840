"""C-STORE delivery throughput: dicom-node's DIMSE deliverer vs DCMTK storescu.

Sends the same N synthetic CT slices to a DCMTK storescp (bit-preserving, on a free
loopback port) with each sender, over one association each, R rounds alternating, and
prints the median time per sender, instances/s, MB/s and the ratio ours/storescu.
DCMTK runs with TCP_NODELAY=1 (Nagle off), as a tuned PACS would.

Our deliverer runs twice per round: bare, and as the job layer runs it, with the attempt
committed to an index before the first file and each response committed as it arrives
(``jobs/attempts.py``; SQLite in a temp dir, or ``--database-url``), so the cost of
that record is the difference of the two.

    python benchmarks/delivery.py [--instances 100] [--size 512] [--rounds 3]
                                  [--database-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dicom_node import synthetic
from dicom_node.db import Database, sqlite_url
from dicom_node.delivery import deliver
from dicom_node.index import tables  # noqa: F401 - registers the tables
from dicom_node.jobs.attempts import AttemptLog
from dicom_node.jobs.queue import JobQueue, NewJob
from dicom_node.settings.destinations import DimseDestination
from tests.support.dcmtk import dcmtk_env, dcmtk_tool
from tests.support.storescp import StoreSCP


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=100)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pdu", type=int, default=131072, help="storescp max receive PDU")
    ap.add_argument("--database-url", help="index for the recorded runs (default: SQLite)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = synthetic.write_files(
            synthetic.iter_ct_series(
                args.instances, rows=args.size, cols=args.size, study_uid=synthetic.new_uid()
            ),
            root / "src",
        )
        megabytes = sum(f.stat().st_size for f in files) / 1e6
        db = Database(args.database_url or sqlite_url(root / "index.sqlite"))
        db.create_all()
        job = JobQueue(db).enqueue(
            NewJob(group_id=0, rule_name="bench", action="forward", study_uid="1.2.3")
        )
        assert job is not None
        attempts = AttemptLog(db)
        ours: list[float] = []
        recorded: list[float] = []
        theirs: list[float] = []
        with StoreSCP(root / "scp", extra_args=["--ignore", "-pdu", str(args.pdu)]) as scp:
            dest = DimseDestination(
                name="bench", ae_title="STORESCP", host="127.0.0.1", port=scp.port
            )
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                report = deliver(dest, files)
                ours.append(time.perf_counter() - t0)
                if not report.ok:
                    raise SystemExit(f"delivery failed: {report.summary()}")
                t0 = time.perf_counter()
                attempt = attempts.start(job, "bench", planned=len(files))
                report = deliver(dest, files, on_outcomes=attempt.record)
                attempt.finish(report)
                recorded.append(time.perf_counter() - t0)
                if not report.ok:
                    raise SystemExit(f"delivery failed: {report.summary()}")
                t0 = time.perf_counter()
                subprocess.run(
                    [
                        dcmtk_tool("storescu"),
                        "-aet",
                        "DICOM_NODE",
                        "-aec",
                        "STORESCP",
                        "127.0.0.1",
                        str(scp.port),
                        *map(str, files),
                    ],
                    check=True,
                    env=dcmtk_env(),
                )
                theirs.append(time.perf_counter() - t0)
        where = db.describe()
        db.dispose()
    o, r, t = statistics.median(ours), statistics.median(recorded), statistics.median(theirs)
    print(
        f"{args.instances} CT instances {args.size}x{args.size}, {megabytes:.1f} MB, "
        f"median of {args.rounds} rounds, one association each"
    )
    print(
        f"dicom-node deliver(): {o:.3f} s  {args.instances / o:7.1f} inst/s  "
        f"{megabytes / o:6.1f} MB/s"
    )
    print(
        f"  + delivery record:  {r:.3f} s  {args.instances / r:7.1f} inst/s  "
        f"{megabytes / r:6.1f} MB/s  ({(r - o) / args.instances * 1000:.2f} ms/instance, "
        f"{where.split(':')[0]})"
    )
    print(
        f"DCMTK storescu:       {t:.3f} s  {args.instances / t:7.1f} inst/s  "
        f"{megabytes / t:6.1f} MB/s"
    )
    print(f"ratio ours/storescu (time): {o / t:.2f}; with the record: {r / t:.2f}")


if __name__ == "__main__":
    main()
