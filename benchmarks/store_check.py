"""Cost of the structural check of a received dataset (``dicom_node.store.check``).

Writes one synthetic 512x512 CT slice (Explicit VR Little Endian) and one JPEG-encoded
pydicom test file, then times, per call, the check on the file as the C-STORE path runs
it (open, mmap, walk, close) and, for scale, the index header parse the same path
already runs on the same file; prints the medians of R rounds and their ratio.

    python benchmarks/store_check.py [--calls 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pydicom.data import get_testdata_file
from pydicom.filereader import dcmread

from dicom_node.index.header import parse_header
from dicom_node.network.spool import dataset_offset
from dicom_node.store.check import check_file
from dicom_node.synthetic import iter_ct_series, write_files


def _per_call(fn, calls: int) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


def _header(path: Path, ts: str, offset: int) -> None:
    with open(path, "rb") as fh:
        parse_header(fh, ts, offset)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ct = write_files(iter_ct_series(1, rows=512, cols=512), Path(tmp))[0]
        for label, path in (
            ("CT 512x512 native", ct),
            (
                "JPEG baseline (pydicom SC_rgb_jpeg_gdcm)",
                Path(get_testdata_file("SC_rgb_jpeg_gdcm.dcm")),
            ),
        ):
            ts = str(dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)
            offset = dataset_offset(path.read_bytes()[:144])
            checks, headers = [], []
            for _ in range(args.rounds):
                checks.append(_per_call(lambda p=path, t=ts: check_file(p, t), args.calls))
                headers.append(
                    _per_call(lambda p=path, t=ts, o=offset: _header(p, t, o), args.calls)
                )
            check, header = statistics.median(checks), statistics.median(headers)
            print(
                f"{label} ({path.stat().st_size} bytes): check {check * 1e6:.1f} us, "
                f"header parse {header * 1e6:.1f} us, check/header {check / header:.2f}"
            )


if __name__ == "__main__":
    main()
