"""WADO-RS frames and bulk data: the node vs Orthanc's DICOMweb plugin, same files, same
client.

Frames: one RLE Lossless multi-frame (default 2000 frames of 64x64, 16-bit, with a Basic
Offset Table) stored in a fresh node (C-STORE) and a fresh Orthanc (REST upload). For
each, the median time of ``GET .../frames/1`` and of ``GET .../frames/{last}`` (OHIF's
Accept: octet-stream, transfer-syntax=*), and the time per frame of one request for every
frame. A frame found in time independent of its number prints a last/first ratio near 1.

Bulk data: a native multi-frame of ``--bulk-mb`` MB (default 210) in both; each one's
peak RSS while serving its Pixel Data as bulk data (``.../bulk/7FE00010``), against its
RSS just before (the peak reset through /proc/PID/clear_refs), and the seconds it took.

Decoded frames (``--decoded``): the same RLE frames, and the 120 JPEG Baseline
YBR_FULL_422 frames of 640x480 of pydicom-data's ``color3d_jpeg_baseline.dcm``, asked
for as ``application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1`` (what a client
that cannot decode asks), timed as above, with each server's peak RSS growth over all
of them in one request.

    python benchmarks/wado.py [--frames 2000] [--repeat 20] [--bulk-mb 210] [--decoded]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pydicom  # noqa: E402
from pydicom.data import get_testdata_file  # noqa: E402
from pydicom.dataset import Dataset  # noqa: E402
from pydicom.uid import RLELossless  # noqa: E402

from tests.http.support import native_multiframe  # noqa: E402
from tests.support.node_process import NodeProcess  # noqa: E402
from tests.support.orthanc import Orthanc  # noqa: E402
from tests.support.scu import store_file_raw  # noqa: E402

NODE_CONFIG = {"models": {"bundled": False}}
OHIF_ACCEPT = "multipart/related; type=application/octet-stream; transfer-syntax=*"
DECODED_ACCEPT = (
    "multipart/related; type=application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"
)


def rle_file(path: Path, frames: int) -> Dataset:
    ds = native_multiframe(frames, 64)
    ds.compress(RLELossless, encoding_plugin="pylibjpeg")  # with a Basic Offset Table
    ds.save_as(path, enforce_file_format=True)
    return ds


def _get(url: str, accept: str = OHIF_ACCEPT) -> float:
    t0 = time.perf_counter()
    r = requests.get(url, headers={"Accept": accept}, timeout=600)
    elapsed = time.perf_counter() - t0
    if r.status_code != 200:
        raise RuntimeError(f"GET {url[:120]}: HTTP {r.status_code}: {r.text[:300]}")
    return elapsed


def frame_times(
    instance_url: str, frames: int, repeat: int, accept: str = OHIF_ACCEPT
) -> tuple[float, float, float]:
    """(median s for frame 1, median s for the last frame, s per frame of all at once)."""
    _get(f"{instance_url}/frames/1", accept)  # warm up
    first = statistics.median(_get(f"{instance_url}/frames/1", accept) for _ in range(repeat))
    last = statistics.median(_get(f"{instance_url}/frames/{frames}", accept) for _ in range(repeat))
    every = ",".join(str(n) for n in range(1, frames + 1))
    return first, last, _get(f"{instance_url}/frames/{every}", accept) / frames


def decoded(pid: int, instance_url: str, frames: int, repeat: int) -> tuple[float, ...]:
    """:func:`frame_times` of frames asked for decoded, and the server's peak RSS growth
    (kB) over one request of them all."""
    times = frame_times(instance_url, frames, repeat, DECODED_ACCEPT)
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset VmHWM
    idle = rss_kb(pid, "VmRSS")
    every = ",".join(str(n) for n in range(1, frames + 1))
    _get(f"{instance_url}/frames/{every}", DECODED_ACCEPT)
    return (*times, rss_kb(pid, "VmHWM") - idle)


def rss_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def bulk_memory(pid: int, url: str) -> tuple[int, int, float]:
    """(RSS before, peak RSS during, seconds) while serving ``url``, streamed to nowhere."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset VmHWM
    idle = rss_kb(pid, "VmRSS")
    t0 = time.perf_counter()
    with requests.get(url, stream=True, timeout=600) as r:
        if r.status_code != 200:
            raise RuntimeError(f"GET {url}: HTTP {r.status_code}: {r.text[:300]}")
        size = sum(len(chunk) for chunk in r.iter_content(1 << 20))
    elapsed = time.perf_counter() - t0
    if size < 2**20:
        raise RuntimeError(f"GET {url}: only {size} bytes")
    return idle, rss_kb(pid, "VmHWM"), elapsed


def _path(ds: Dataset) -> str:
    return (
        f"/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--bulk-mb", type=int, default=210)
    parser.add_argument("--decoded", action="store_true", help="also frames asked decoded")
    args = parser.parse_args()
    jpeg = get_testdata_file("color3d_jpeg_baseline.dcm") if args.decoded else None
    extra: dict[str, list[tuple[float, ...]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-wado-") as tmp:
        work = Path(tmp)
        rle = rle_file(work / "rle.dcm", args.frames)
        big = native_multiframe(max(args.bulk_mb // 2, 1), 1024)
        big.save_as(work / "big.dcm", enforce_file_format=True)
        size_mb = (work / "big.dcm").stat().st_size / 2**20
        print(f"frames: {args.frames} RLE 64x64 frames (with a BOT); bulk: {size_mb:.0f} MB")
        results = {}
        files = ["rle.dcm", "big.dcm"]
        if jpeg:
            shutil.copy(jpeg, work / "jpeg.dcm")
            files.append("jpeg.dcm")
        with NodeProcess(work / "node", NODE_CONFIG) as node:
            for f in files:
                if store_file_raw(node.port, work / f) != 0:
                    raise RuntimeError(f"the node did not store {f}")
            base = f"{node.http_url}/dicomweb"
            results["node"] = (
                frame_times(base + _path(rle), args.frames, args.repeat),
                bulk_memory(node.pid, base + _path(big) + "/bulk/7FE00010"),
            )
            if args.decoded:
                extra["node"] = _decoded_runs(node.pid, base, rle, jpeg, args)
        with Orthanc(work / "orthanc", dicomweb=True) as orthanc:
            for f in files:
                orthanc.upload(work / f)
            base = orthanc.dicomweb_url
            assert orthanc.proc is not None
            results["Orthanc"] = (
                frame_times(base + _path(rle), args.frames, args.repeat),
                bulk_memory(orthanc.proc.pid, base + _path(big) + "/bulk/7fe00010"),
            )
            if args.decoded:
                extra["Orthanc"] = _decoded_runs(orthanc.proc.pid, base, rle, jpeg, args)
    for name, ((first, last, per), (idle, peak, secs)) in results.items():
        print(
            f"{name:8s} frames: frame 1 {first * 1e3:7.2f} ms, frame {args.frames} "
            f"{last * 1e3:7.2f} ms (last/first {last / first:5.2f}), all in one request "
            f"{per * 1e3:6.3f} ms/frame | bulk {size_mb:.0f} MB: RSS {idle // 1024} MB idle, "
            f"peak {peak // 1024} MB (+{(peak - idle) // 1024} MB), {secs:.2f} s"
        )
    (nf, nl, np_), _ = results["node"]
    (of, ol, op), _ = results["Orthanc"]
    print(
        f"ratio Orthanc/node time: frame 1 {of / nf:.2f}, last frame {ol / nl:.2f}, "
        f"all frames {op / np_:.2f}"
    )
    names = [f"RLE {args.frames}x64x64x16", "JPEG 120x640x480 YBR_FULL_422"]
    for name, runs in extra.items():
        for label, (first, last, per, grown) in zip(names, runs, strict=False):
            print(
                f"{name:8s} decoded {label}: frame 1 {first * 1e3:7.2f} ms, last "
                f"{last * 1e3:7.2f} ms, all in one request {per * 1e3:6.3f} ms/frame, "
                f"peak RSS +{grown // 1024} MB"
            )


def _decoded_runs(
    pid: int, base: str, rle: Dataset, jpeg: str | None, args: argparse.Namespace
) -> list[tuple[float, ...]]:
    runs = [decoded(pid, base + _path(rle), args.frames, args.repeat)]
    if jpeg:
        ds = pydicom.dcmread(jpeg, stop_before_pixels=True)
        runs.append(decoded(pid, base + _path(ds), int(ds.NumberOfFrames), args.repeat))
    return runs


if __name__ == "__main__":
    main()
