"""Cost of the destination status (``dicom_node.jobs.destination_status``) on a SQLite
index with a long delivery history.

Builds N delivery attempts (one response each) to 10 destinations, 30 s apart, one in
50 failed with an error, then times the status of every destination as
``GET /api/destinations/status`` asks it (the destinations on record, then the status
of each), R times. No peer does this; the figures are absolute. ``--code DIR`` imports
the node from another checkout (e.g. one before migration 0004), to compare the two in
the same minutes.

    python benchmarks/destination_status.py [--attempts 200000] [--rounds 7] [--code DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attempts", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--code", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args()
    sys.path.insert(0, str(args.code.resolve()))

    from sqlalchemy import insert

    from dicom_node.db import Database, sqlite_url, utcnow
    from dicom_node.jobs.destination_status import destination_status, known_destinations
    from dicom_node.jobs.models import DeliveryAttempt, DeliveryResponse, Job

    n, now = args.attempts, utcnow()
    names = [f"DEST{i}" for i in range(10)]
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(sqlite_url(Path(tmp) / "index.sqlite"))
        db.create_all()
        job = dict(group_id=1, rule_name="r", action="forward", models=[], instance_uids=[])
        attempts = [
            dict(
                id=i + 1,
                job_id=1,
                destination=names[i % 10],
                started_at=now - dt.timedelta(seconds=(n - i) * 30),
                finished_at=now - dt.timedelta(seconds=(n - i) * 30 - 1),
                outcome="transient" if i % 50 == 0 else "delivered",
                planned=1,
                sent=1,
                accepted=0 if i % 50 == 0 else 1,
                error="association rejected" if i % 50 == 0 else None,
            )
            for i in range(n)
        ]
        with db.engine.begin() as conn:
            conn.execute(
                insert(Job.__table__),
                [dict(id=1, **job, destinations=names, study_uid="1.2", state="done")],
            )
            conn.execute(insert(DeliveryAttempt.__table__), attempts)
            conn.execute(
                insert(DeliveryResponse.__table__),
                [
                    dict(
                        attempt_id=a["id"],
                        sop_instance_uid="1.2.3",
                        outcome=a["outcome"],
                        code=0,
                        warning=False,
                        error=a["error"],
                        elapsed_s=0.0,
                        at=a["finished_at"],
                    )
                    for a in attempts
                ],
            )
        times = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            statuses = destination_status(db, [*names, *known_destinations(db)])
            times.append((time.perf_counter() - start) * 1000)
        db.dispose()
    assert len(statuses) == 10
    print(
        f"{n} attempts to 10 destinations ({args.code}): status of all, "
        f"median of {args.rounds}: {statistics.median(times):.1f} ms "
        f"(min {min(times):.1f}, max {max(times):.1f})"
    )


if __name__ == "__main__":
    main()
