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

    python benchmarks/wado.py [--frames 2000] [--repeat 20] [--bulk-mb 210]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pydicom.dataset import Dataset  # noqa: E402
from pydicom.uid import RLELossless  # noqa: E402

from tests.http.support import native_multiframe  # noqa: E402
from tests.support.node_process import NodeProcess  # noqa: E402
from tests.support.orthanc import Orthanc  # noqa: E402
from tests.support.scu import store_file_raw  # noqa: E402

NODE_CONFIG = {"models": {"bundled": False}}
OHIF_ACCEPT = "multipart/related; type=application/octet-stream; transfer-syntax=*"


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


def frame_times(instance_url: str, frames: int, repeat: int) -> tuple[float, float, float]:
    """(median s for frame 1, median s for the last frame, s per frame of all at once)."""
    _get(f"{instance_url}/frames/1")  # warm up
    first = statistics.median(_get(f"{instance_url}/frames/1") for _ in range(repeat))
    last = statistics.median(_get(f"{instance_url}/frames/{frames}") for _ in range(repeat))
    every = ",".join(str(n) for n in range(1, frames + 1))
    return first, last, _get(f"{instance_url}/frames/{every}") / frames


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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-wado-") as tmp:
        work = Path(tmp)
        rle = rle_file(work / "rle.dcm", args.frames)
        big = native_multiframe(max(args.bulk_mb // 2, 1), 1024)
        big.save_as(work / "big.dcm", enforce_file_format=True)
        size_mb = (work / "big.dcm").stat().st_size / 2**20
        print(f"frames: {args.frames} RLE 64x64 frames (with a BOT); bulk: {size_mb:.0f} MB")
        results = {}
        with NodeProcess(work / "node", NODE_CONFIG) as node:
            for f in ("rle.dcm", "big.dcm"):
                if store_file_raw(node.port, work / f) != 0:
                    raise RuntimeError(f"the node did not store {f}")
            base = f"{node.http_url}/dicomweb"
            results["node"] = (
                frame_times(base + _path(rle), args.frames, args.repeat),
                bulk_memory(node.pid, base + _path(big) + "/bulk/7FE00010"),
            )
        with Orthanc(work / "orthanc", dicomweb=True) as orthanc:
            for f in ("rle.dcm", "big.dcm"):
                orthanc.upload(work / f)
            base = orthanc.dicomweb_url
            assert orthanc.proc is not None
            results["Orthanc"] = (
                frame_times(base + _path(rle), args.frames, args.repeat),
                bulk_memory(orthanc.proc.pid, base + _path(big) + "/bulk/7fe00010"),
            )
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


if __name__ == "__main__":
    main()
