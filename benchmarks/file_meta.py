"""Cost of the File Meta pynetdicom builds and writes for each spooled C-STORE, through
the node's hooks (``dicom_node.network.file_meta``): memoised (the ``file_meta`` tweak)
and not (pydicom's encoding); prints the best of R rounds per call and their ratio.

    python benchmarks/file_meta.py [--calls 200000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import io
import sys
import timeit
from pathlib import Path

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
    per_call = {}
    for memoise in (True, False):
        calls = args.calls if memoise else args.calls // 20
        file_meta.install(memoise=True)  # the hooks, then memoising on or off
        file_meta.install(memoise=memoise)
        per_call[memoise] = _per_call(calls, args.rounds)
    print(
        f"memoised {per_call[True]:.2f} us, pydicom {per_call[False]:.2f} us per File Meta "
        f"(ratio {per_call[False] / per_call[True]:.0f})"
    )


if __name__ == "__main__":
    main()
