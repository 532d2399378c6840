"""Cost of the File Meta pynetdicom builds and writes for each spooled C-STORE, through
the node's hooks (``dicom_node.network.file_meta``), with the association's AE titles
recorded (a C-STORE's DUL thread) and without (no association on the thread), memoised
(the ``file_meta`` tweak) and not; prints the best of R rounds per call.

    python benchmarks/file_meta.py [--calls 200000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import io
import sys
import threading
import timeit
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dicom_node.network import file_meta

CT = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT = "1.2.840.10008.1.2.1"
UID = "1.2.826.0.1.3680043.8.498.12345678901234567890"


def _per_call(calls: int, rounds: int) -> float:
    out = io.BytesIO()

    def one() -> None:
        meta = file_meta._create_file_meta(
            sop_class_uid=CT, sop_instance_uid=UID, transfer_syntax=EXPLICIT
        )
        out.seek(0)
        file_meta._write_file_meta_info(out, meta)

    return min(timeit.repeat(one, number=calls, repeat=rounds)) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    thread = threading.current_thread()
    assoc = SimpleNamespace(
        requestor=SimpleNamespace(
            ae_title="MODALITY", primitive=SimpleNamespace(called_ae_title="DICOM_NODE")
        )
    )
    for memoise in (True, False):
        calls = args.calls if memoise else args.calls // 20
        file_meta.install(memoise=memoise)
        thread.assoc = assoc  # type: ignore[attr-defined]
        with_titles = _per_call(calls, args.rounds)
        del thread.assoc  # type: ignore[attr-defined]
        without = _per_call(calls, args.rounds)
        print(
            f"{'memoised' if memoise else 'pydicom '}: with AE titles {with_titles:.2f} us, "
            f"without {without:.2f} us per File Meta (ratio {with_titles / without:.2f})"
        )


if __name__ == "__main__":
    main()
