"""Broken datasets are refused and nothing of them is stored (issue 12, defect 7); valid
real-world files (pydicom's test files) are still accepted."""

from __future__ import annotations

import random
import struct
import warnings
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_files
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_file_meta_info
from pydicom.filewriter import write_dataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
)
from pynetdicom import AllStoragePresentationContexts

from dicom_node.synthetic import Patient, iter_ct_series, new_uid
from tests.store.support import inconsistencies, write_part10
from tests.support.dcmtk import echoscu
from tests.support.index import query
from tests.support.node_process import NodeProcess
from tests.support.scu import store_file_raw

pytestmark = pytest.mark.peer

PIXEL_TAG = b"\xe0\x7f\x10\x00"


def _ct() -> Dataset:
    """A 64x64 16-bit CT slice: 8,192 bytes of Pixel Data."""
    ds = next(
        iter_ct_series(1, Patient(patient_id="BROKEN"), rows=64, cols=64, study_uid=new_uid())
    )
    for elem in list(ds):  # nothing between (0028,xxxx) and Pixel Data: room to splice
        if 0x00280200 < elem.tag < 0x7FE00010:
            del ds[elem.tag]
    return ds


def _encode(ds: Dataset, implicit: bool = False) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, implicit
    write_dataset(fp, ds)
    return fp.getvalue()


def _pixels_at(body: bytes) -> int:
    return body.rindex(PIXEL_TAG)


def _element(tag: int, vr: bytes, length: int) -> bytes:
    return struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr + b"\0\0" + struct.pack("<L", length)


def _cut_pixels(ds: Dataset) -> bytes:
    body = _encode(ds)
    at = _pixels_at(body)
    return body[:at] + _element(0x7FE00010, b"OW", 100) + bytes(100)


def _random_pixels(ds: Dataset) -> bytes:
    body = _encode(ds)
    return body[: _pixels_at(body)] + random.Random(5).randbytes(8204)


def _undefined_native(ds: Dataset) -> bytes:
    body = _encode(ds)
    item = struct.pack("<HHL", 0xFFFE, 0xE000, 8192) + bytes(8192)
    return (
        body[: _pixels_at(body)]
        + _element(0x7FE00010, b"OB", 0xFFFFFFFF)
        + struct.pack("<HHL", 0xFFFE, 0xE000, 0)
        + item
        + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
    )


def _claims_2gib(ds: Dataset) -> bytes:
    body = _encode(ds)
    return body[: _pixels_at(body)] + _element(0x7FE00010, b"OW", 2**31) + bytes(512)


def _deep_sequence(ds: Dataset) -> bytes:
    body = _encode(ds)
    at = _pixels_at(body)
    depth = 3000
    seq = _element(0x0040A730, b"SQ", 0xFFFFFFFF) + struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF)
    end = struct.pack("<HHL", 0xFFFE, 0xE00D, 0) + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
    return body[:at] + seq * depth + end * depth + body[at:]


CASES = {
    # name: (dataset bytes, transfer syntax in the File Meta/context, status)
    "pixel_data_cut_to_100_of_8192": (_cut_pixels, ExplicitVRLittleEndian, 0xA900),
    "random_bytes_for_pixel_data": (_random_pixels, ExplicitVRLittleEndian, 0xC210),
    "undefined_length_native_pixel_data": (_undefined_native, ExplicitVRLittleEndian, 0xC210),
    "pixel_data_claims_2_gib": (_claims_2gib, ExplicitVRLittleEndian, 0xC210),
    "sequence_3000_deep": (_deep_sequence, ExplicitVRLittleEndian, 0xC210),
    "explicit_vr_on_implicit_context": (_encode, ImplicitVRLittleEndian, 0xC210),
    "native_pixels_on_jpeg_context": (_encode, JPEGBaseline8Bit, 0xC210),
}


@pytest.mark.parametrize("case", list(CASES))
def test_broken_dataset_refused_and_not_stored(
    node_each_tweak_mode: NodeProcess, tmp_path: Path, case: str
) -> None:
    make, ts, expected = CASES[case]
    ds = _ct()
    path = write_part10(ds, tmp_path / f"{case}.dcm", ts=ts, body=make(ds))
    assert store_file_raw(node_each_tweak_mode.port, path) == expected
    assert query(
        node_each_tweak_mode.index,
        "SELECT count(*) FROM instances WHERE sop_instance_uid=:u",
        u=ds.SOPInstanceUID,
    ) == [(0,)]
    assert inconsistencies(node_each_tweak_mode) == []
    assert echoscu(node_each_tweak_mode.port, "DICOM_NODE").returncode == 0
    # The same instance, well formed, is stored afterwards.
    good = write_part10(ds, tmp_path / "good.dcm")
    assert store_file_raw(node_each_tweak_mode.port, good) == 0


# pydicom test files that are broken on purpose (or encoded against their own File Meta)
BROKEN_TEST_FILES = {
    "MR_truncated.dcm": 0xC210,  # Pixel Data cut short
    "rtplan_truncated.dcm": 0xC210,  # a sequence cut short
    "SC_rgb_jpeg.dcm": 0xC210,  # implicit-VR dataset behind a JPEG (explicit) File Meta
    "emri_small_jpeg_2k_lossless_too_short.dcm": 0xC210,  # fragments cut short
}
_STORAGE = {str(cx.abstract_syntax) for cx in AllStoragePresentationContexts}


def _sendable(path: str) -> str | None:
    """Why a pydicom test file cannot be sent unchanged, or None."""
    try:
        meta = read_file_meta_info(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = dcmread(path, stop_before_pixels=True)
    except Exception as err:  # noqa: BLE001 - pydicom's odd test files fail in many ways
        return f"no File Meta: {type(err).__name__}"
    if "TransferSyntaxUID" not in meta or "MediaStorageSOPClassUID" not in meta:
        return "incomplete File Meta"
    if str(meta.MediaStorageSOPClassUID) not in _STORAGE:
        return "not a Storage SOP class"
    if "SOPInstanceUID" not in ds or ds.SOPInstanceUID != meta.MediaStorageSOPInstanceUID:
        return "no or another SOP Instance UID"
    if "StudyInstanceUID" not in ds or "SeriesInstanceUID" not in ds:
        return "no Study or Series Instance UID (0xC220 by design)"
    return None


def test_pydicom_test_files_accepted(node_sqlite: NodeProcess) -> None:
    files = [f for f in sorted(get_testdata_files("*.dcm")) if _sendable(f) is None]
    assert len(files) > 80
    statuses = {Path(f).name: store_file_raw(node_sqlite.port, Path(f)) for f in files}
    refused = {name: s for name, s in statuses.items() if s != 0}
    assert refused == {k: v for k, v in BROKEN_TEST_FILES.items() if k in statuses}
    for f in files:
        if Path(f).name not in refused:
            sop = dcmread(f, stop_before_pixels=True).SOPInstanceUID
            assert query(
                node_sqlite.index, "SELECT count(*) FROM instances WHERE sop_instance_uid=:u", u=sop
            ) == [(1,)], f
    assert inconsistencies(node_sqlite) == []
