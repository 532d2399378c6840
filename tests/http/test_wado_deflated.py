"""WADO-RS reads of a Deflated file that inflates far past what its attributes say (a
"deflate bomb": stored as received, since the store never inflates a Deflated dataset
whole): problem JSON where the whole dataset is needed, the header read from a capped
part otherwise, and never the inflated bytes held (the node's peak RSS)."""

from __future__ import annotations

from pathlib import Path

import requests
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from tests.http.support import as_deflated, ct_slice, frames_url, renamed, uids
from tests.support.node_process import NodeProcess
from tests.support.scu import store_file_raw


def _stored_deflate_bomb(node: NodeProcess, tmp_path: Path) -> Dataset:
    """A Deflated file (stored as received: its dataset is never inflated whole) whose
    Pixel Data inflates to 128 MB while its attributes say one 12 x 12 frame."""
    ds = as_deflated(renamed(ct_slice(94, size=12), "DEFLATED"))
    ds.PixelData = bytes(128 * 2**20)  # ~128 kB deflated
    path = tmp_path / "bomb.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert path.stat().st_size < 2**20
    assert store_file_raw(node.port, path) == 0
    Path(f"/proc/{node.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
    return ds


def test_a_deflated_bomb_is_never_inflated_whole(node: NodeProcess, tmp_path: Path) -> None:
    """Its rendered frame is a 422 problem and its metadata is answered, and the node
    never holds the inflated bytes (peak RSS): it reads at most 16 MB of a Deflated
    header, and a whole Deflated dataset only if it inflates to what its attributes say."""
    ds = _stored_deflate_bomb(node, tmp_path)
    before = node.peak_rss_kb()
    r = requests.get(frames_url(node, ds, "1") + "/rendered", timeout=30)
    assert r.status_code == 422, r.status_code
    assert "inflate" in r.json()["detail"]
    s, se, i = uids(ds)
    url = f"{node.http_url}/dicomweb/studies/{s}/series/{se}/instances/{i}/metadata"
    r = requests.get(url, timeout=30)
    assert r.status_code == 200 and r.json()[0]["00080018"]["Value"] == [i]
    assert node.peak_rss_kb() - before < 64 * 1024


def test_a_deflated_file_inflating_past_its_frames_is_a_problem(
    node: NodeProcess, tmp_path: Path
) -> None:
    """Its frames: 422 problem JSON, and the node never holds the inflated bytes."""
    ds = _stored_deflate_bomb(node, tmp_path)
    before = node.peak_rss_kb()
    r = requests.get(frames_url(node, ds, "1"), timeout=30)
    assert r.status_code == 422, r.status_code
    assert r.headers["content-type"] == "application/problem+json"
    assert "inflate" in r.json()["detail"]
    assert node.peak_rss_kb() - before < 64 * 1024


def test_a_deflated_bomb_converted_on_retrieve_is_a_problem(
    node: NodeProcess, tmp_path: Path
) -> None:
    """Retrieved as Explicit VR Little Endian (so converted), the Deflated bomb is a 422
    problem before the response starts, and the node never holds the inflated bytes."""
    ds = _stored_deflate_bomb(node, tmp_path)
    before = node.peak_rss_kb()
    s, se, i = uids(ds)
    r = requests.get(
        f"{node.http_url}/dicomweb/studies/{s}/series/{se}/instances/{i}",
        headers={
            "Accept": 'multipart/related; type="application/dicom"; '
            f"transfer-syntax={ExplicitVRLittleEndian}"
        },
        timeout=30,
    )
    assert r.status_code == 422, r.status_code
    assert "inflate" in r.json()["detail"]
    assert node.peak_rss_kb() - before < 64 * 1024
