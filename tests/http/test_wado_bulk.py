"""WADO-RS bulk data (the BulkDataURI targets of metadata) against the running node: the
value is streamed from the file by offset, never read whole (the node's peak RSS while
serving the 200 MB Pixel Data of a large multi-frame stays far below the file), its
bytes are pydicom's value of the element, native or encapsulated, and a Range asks for a
slice of it (dicomweb-client's ``byte_range``)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from tests.http.support import native_multiframe, renamed
from tests.support.node_process import NodeProcess
from tests.support.scu import store_file_raw


def _renamed(ds: Dataset) -> Dataset:
    return renamed(ds, "BULK")


def _large_multiframe(path: Path, frames: int, size: int = 1024) -> Dataset:
    ds = native_multiframe(frames, size, "BULK")
    ds.save_as(path, enforce_file_format=True)
    return ds


def _stored_testfile(node: NodeProcess, tmp_path: Path, name: str) -> Dataset:
    """pydicom's test file ``name`` under new UIDs, C-STOREd to ``node``."""
    source = get_testdata_file(name)
    if source is None:
        pytest.skip(f"pydicom test file {name} is not installed")
    ds = _renamed(pydicom.dcmread(source))
    ds.save_as(tmp_path / name, enforce_file_format=True)
    assert store_file_raw(node.port, tmp_path / name) == 0, name
    return ds


def _bulk_url(node: NodeProcess, ds: Dataset, tag: str) -> str:
    return (
        f"{node.http_url}/dicomweb/studies/{ds.StudyInstanceUID}/series/"
        f"{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}/bulk/{tag}"
    )


def _streamed_part(response: requests.Response) -> tuple[hashlib._Hash, int]:
    """The SHA-256 and length of the one part of a multipart response, read as it comes
    (the test holds no copy of it either)."""
    boundary = response.headers["content-type"].split("boundary=")[1].split(";")[0].strip('"')
    digest, size, head, tail = hashlib.sha256(), 0, b"", b""
    closing = f"\r\n--{boundary}--\r\n".encode()
    in_body = False
    for chunk in response.iter_content(1 << 20):
        if not in_body:
            head += chunk
            if b"\r\n\r\n" not in head:
                continue
            in_body, chunk = True, head.split(b"\r\n\r\n", 1)[1]
        data = tail + chunk
        keep = len(closing)
        digest.update(data[:-keep])
        size += len(data[:-keep])
        tail = data[-keep:]
    assert tail == closing, tail
    return digest, size


def test_bulk_value_of_a_large_instance_is_streamed(node: NodeProcess, tmp_path: Path) -> None:
    """The Pixel Data of a 210 MB multi-frame (stored by C-STORE) comes back equal to
    pydicom's value while the node's peak RSS grows by far less than the file."""
    path = tmp_path / "large.dcm"
    _large_multiframe(path, frames=100)
    assert path.stat().st_size > 200 * 2**20
    assert store_file_raw(node.port, path) == 0
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    expected = hashlib.sha256(pydicom.dcmread(path).PixelData).hexdigest()
    Path(f"/proc/{node.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = node.peak_rss_kb()
    with requests.get(_bulk_url(node, ds, "7FE00010"), stream=True, timeout=120) as r:
        assert r.status_code == 200, r.text
        digest, size = _streamed_part(r)
    grown = node.peak_rss_kb() - before
    assert size == 100 * 1024 * 1024 * 2 and digest.hexdigest() == expected
    assert grown < 32 * 1024, f"peak RSS grew by {grown // 1024} MB serving a 200 MB value"


def test_bulk_values_are_pydicoms_values(node: NodeProcess, tmp_path: Path) -> None:
    """Native (explicit and implicit VR) and encapsulated Pixel Data, and another binary
    element, through dicomweb-client's retrieve_bulkdata: the value pydicom reads."""
    client = DICOMwebClient(node.http_url + "/dicomweb")
    names = ("SC_rgb_rle_2frame.dcm", "MR_small_implicit.dcm", "emri_small_jpeg_2k_lossless.dcm")
    for name in names:
        source = get_testdata_file(name)
        if source is None:
            pytest.skip(f"pydicom test file {name} is not installed")
        ds = _renamed(pydicom.dcmread(source))
        ds.add_new(0x00091010, "OB", b"\x01\x02" * 700)  # a private binary value
        ds.add_new(0x00090010, "LO", "BULK TEST")
        ds.save_as(tmp_path / name, enforce_file_format=True)
        ds = pydicom.dcmread(tmp_path / name)
        assert store_file_raw(node.port, tmp_path / name) == 0, name
        meta = client.retrieve_instance_metadata(
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
        )
        for tag in ("7FE00010", "00091010"):
            got = client.retrieve_bulkdata(meta[tag]["BulkDataURI"])
            assert got == [ds[int(tag, 16)].value], (name, tag)


def test_a_range_of_a_bulk_value(node: NodeProcess, tmp_path: Path) -> None:
    ds = _stored_testfile(node, tmp_path, "SC_rgb_rle_2frame.dcm")
    value = ds.PixelData
    client = DICOMwebClient(node.http_url + "/dicomweb")
    url = _bulk_url(node, ds, "7FE00010")
    assert client.retrieve_bulkdata(url, byte_range=(100, 199)) == [value[100:200]]
    r = requests.get(url, headers={"Range": "bytes=-10"}, timeout=10)
    assert r.status_code == 206 and value[-10:] + b"\r\n--" in r.content
    assert f"bytes {len(value) - 10}-{len(value) - 1}/{len(value)}" in r.text
    r = requests.get(url, headers={"Range": f"bytes={len(value)}-"}, timeout=10)
    assert r.status_code == 416
    assert r.headers["content-range"] == f"bytes */{len(value)}"


def test_what_is_not_bulk_data_is_404(node: NodeProcess, tmp_path: Path) -> None:
    ds = _stored_testfile(node, tmp_path, "MR_small.dcm")
    for tag in ("00280010", "00091010", "GGGG0010", "7FE0001", "00081140"):
        r = requests.get(_bulk_url(node, ds, tag), timeout=10)
        assert r.status_code == 404 and r.json()["status"] == 404, tag
