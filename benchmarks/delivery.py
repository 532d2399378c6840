"""C-STORE delivery throughput: dicom-node's DIMSE deliverer vs DCMTK storescu.

Sends the same N synthetic CT slices to a DCMTK storescp (bit-preserving, on a free
loopback port) with each sender, over one association each, R rounds alternating, and
prints the median time per sender, instances/s, MB/s and the ratio ours/storescu.
DCMTK runs with TCP_NODELAY=1 (Nagle off), as a tuned PACS would.

    python benchmarks/delivery.py [--instances 100] [--size 512] [--rounds 3]
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

from dicom_node import synthetic  # noqa: E402
from dicom_node.delivery import deliver  # noqa: E402
from dicom_node.settings.destinations import DimseDestination  # noqa: E402
from tests.support.storescp import StoreSCP, dcmtk_env  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=100)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pdu", type=int, default=131072, help="storescp max receive PDU")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = synthetic.write_files(
            synthetic.iter_ct_series(args.instances, rows=args.size, cols=args.size,
                                     study_uid=synthetic.new_uid()), root / "src")
        megabytes = sum(f.stat().st_size for f in files) / 1e6
        ours: list[float] = []
        theirs: list[float] = []
        with StoreSCP(root / "scp", extra_args=["--ignore", "-pdu", str(args.pdu)]) as scp:
            dest = DimseDestination(name="bench", ae_title="STORESCP", host="127.0.0.1",
                                    port=scp.port)
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                report = deliver(dest, files)
                ours.append(time.perf_counter() - t0)
                if not report.ok:
                    raise SystemExit(f"delivery failed: {report.summary()}")
                t0 = time.perf_counter()
                subprocess.run(["storescu", "-aet", "DICOM_NODE", "-aec", "STORESCP",
                                "127.0.0.1", str(scp.port), *map(str, files)], check=True,
                               env=dcmtk_env())
                theirs.append(time.perf_counter() - t0)
    o, t = statistics.median(ours), statistics.median(theirs)
    print(f"{args.instances} CT instances {args.size}x{args.size}, {megabytes:.1f} MB, "
          f"median of {args.rounds} rounds, one association each")
    print(f"dicom-node deliver(): {o:.3f} s  {args.instances / o:7.1f} inst/s  "
          f"{megabytes / o:6.1f} MB/s")
    print(f"DCMTK storescu:       {t:.3f} s  {args.instances / t:7.1f} inst/s  "
          f"{megabytes / t:6.1f} MB/s")
    print(f"ratio ours/storescu (time): {o / t:.2f}")


if __name__ == "__main__":
    main()
