"""Cost of the origin records (``dicom_node.store.origin``) on the receive path, on this
disk: what :meth:`OriginRecords.note` adds to a C-STORE whose series already has its
record (every instance but the first: a read of the series record and a ``stat``), to
the first instance of a series (an atomic, fsynced write of the series record), and to
an instance of another origin than its series' first (a record of its own); and what
holding the series directory against retention costs a C-STORE
(:func:`dicom_node.store.series_lock.placing`: open, ``flock``, two ``stat``s, close).
No peer does this; the figures are absolute (median of R rounds).

    python benchmarks/origin_records.py [--instances 2000] [--series 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dicom_node.store.origin import DIMSE, STOWRS, Origin, OriginRecords
from dicom_node.store.series_lock import placing
from dicom_node.store.writer import InstanceStore

MODX = Origin(DIMSE, "DICOM_NODE", "MODX", "127.0.0.1")
WEB = Origin(STOWRS, "DICOMWEB", "http", "127.0.0.1")


Note = Callable[[OriginRecords, InstanceStore, int], object]


def _per_call(n: int, rounds: int, one: Note) -> float:
    """Median over ``rounds`` of the µs per call of ``one(records, store, i)`` for
    i < n, each round on a fresh store (in the temporary directory, as receive.py)."""
    figures = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="bench-origin-") as tmp:
            store = InstanceStore(Path(tmp))
            store.open()
            records = OriginRecords(store)
            records.note(store.path_for("1", "1.1", "1.1.0"), MODX)  # the series' owner
            t0 = time.perf_counter()
            for i in range(n):
                one(records, store, i)
            figures.append((time.perf_counter() - t0) / n * 1e6)
            store.close()
    return statistics.median(figures)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=2000)
    ap.add_argument("--series", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    same = _per_call(
        args.instances,
        args.rounds,
        lambda r, s, i: r.note(s.path_for("1", "1.1", f"1.1.{i + 1}"), MODX),
    )
    first = _per_call(
        args.series,
        args.rounds,
        lambda r, s, i: r.note(s.path_for("1", f"1.{i + 2}", "1.9.1"), MODX),
    )
    other = _per_call(
        args.series,
        args.rounds,
        lambda r, s, i: r.note(s.path_for("1", "1.1", f"1.1.{i + 1}"), WEB),
    )
    series = Path("1") / "1.1"

    def hold(r: OriginRecords, s: InstanceStore, i: int) -> None:
        with placing(s, s.instances / series):
            pass

    held = _per_call(args.instances, args.rounds, hold)
    print(f"instance of a series with its record  : {same:8.1f} us")
    print(f"first instance of a series (fsync)    : {first:8.1f} us (with its directory)")
    print(f"instance of another origin (fsync)    : {other:8.1f} us")
    print(f"series lock held for a placement      : {held:8.1f} us")
    print("(medians; the machine may be shared: noisy)")


if __name__ == "__main__":
    main()
