"""A STOW-RS part's checks (File Meta walked by the structure check, header from the
walk's elements) against pydicom's parse of the same files: same header, same verdict."""

from __future__ import annotations

import struct
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file, get_testdata_files
from pydicom.filereader import read_file_meta_info

from dicom_node.http.stow import (
    CANNOT_UNDERSTAND,
    Checked,
    PartResult,
    check_part,
)
from dicom_node.index.header import HeaderError, InstanceHeader, parse_file_header
from tests.http.support import ct_study


class _Part:
    content_type = "application/dicom"

    def __init__(self, path: Path) -> None:
        self.path = path


def _with_group_length(path: str) -> bool:
    raw = Path(path).read_bytes()[:144]
    return len(raw) == 144 and raw[128:132] == b"DICM" and raw[132:138] == b"\x02\x00\x00\x00UL"


CORPUS = sorted(p for p in get_testdata_files("*.dcm") if _with_group_length(p))


def test_the_corpus_is_there() -> None:
    assert len(CORPUS) > 50


def _pydicoms_header(path: str | Path) -> tuple[InstanceHeader, str] | None:
    """What a part's check read before the File Meta walk: pydicom's File Meta parse,
    then the dataset's header (None: refused)."""
    try:
        meta = read_file_meta_info(path)
    except Exception:  # noqa: BLE001 - pydicom raises many kinds on garbage
        return None
    ts = str(meta.get("TransferSyntaxUID", "") or "")
    try:
        header = parse_file_header(path, ts) if ts else None
    except HeaderError:
        return None
    meta_sop = str(meta.get("MediaStorageSOPInstanceUID", "") or "").strip()
    if header is None or (meta_sop and meta_sop != header.sop_instance_uid):
        return None
    return header, ts


def _same_verdict_as_pydicom(path: str | Path) -> None:
    expected = _pydicoms_header(path)
    got = check_part(_Part(Path(path)), None)  # type: ignore[arg-type]
    if isinstance(got, Checked):
        assert expected is not None, "stored a part pydicom cannot read"
        assert (got.header, got.transfer_syntax) == expected
    else:
        assert isinstance(got, PartResult) and got.failure
        # A file pydicom read is refused only for its dataset, never for its File Meta.
        assert expected is None or "File Meta" not in got.comment, got.comment


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: Path(p).name)
def test_header_matches_pydicoms_parse(path: str) -> None:
    """Whatever pydicom reads as a valid header, the part check reads the same; a file
    pydicom cannot read is refused (never stored with a wrong header)."""
    _same_verdict_as_pydicom(path)


def _el(element: int, vr: bytes, value: bytes) -> bytes:
    if vr in (b"OB", b"UN", b"UT"):
        return struct.pack("<HH2sHI", 2, element, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", 2, element, vr, len(value)) + value


# File Meta that real senders write and pydicom reads, against PS3.10: odd lengths,
# unpadded UIDs, private (0002,0100+) elements, a UN element, no (0002,0001).
META_VARIANTS = {
    "odd-length SH": {0x13: (b"SH", b"ABC")},
    "odd-length AE": {0x16: (b"AE", b"ABC")},
    "UN element": {0x16: (b"UN", b"ABCD")},
    "unpadded TS UID": {0x10: (b"UI", b"1.2.840.10008.1.2.1")},
    "private UI": {0x100: (b"UI", b"1.2.3\0")},
    "private OB": {0x102: (b"OB", b"\x01\x02")},
    "no version": {0x01: None},
}


@pytest.mark.parametrize("name", sorted(META_VARIANTS))
def test_file_meta_variants_pydicom_reads_are_stored(name: str, tmp_path: Path) -> None:
    src = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    end = 144 + int.from_bytes(src[140:144], "little")
    elements: dict[int, tuple[bytes, bytes] | None] = {}
    pos = 144
    while pos < end:  # the source's File Meta: all explicit VR, short lengths but OB
        element, vr = struct.unpack_from("<2xH2s", src, pos)
        size, head = (struct.unpack_from("<I", src, pos + 8)[0], 12) if vr == b"OB" else (
            struct.unpack_from("<H", src, pos + 6)[0], 8)  # fmt: skip
        elements[element] = (vr, src[pos + head : pos + head + size])
        pos += head + size
    elements.update(META_VARIANTS[name])
    meta = b"".join(_el(e, *v) for e, v in sorted(elements.items()) if v is not None)
    part = tmp_path / "part.dcm"
    part.write_bytes(src[:128] + b"DICM" + _el(0, b"UL", struct.pack("<I", len(meta))) + meta
                     + src[end:])  # fmt: skip
    assert _pydicoms_header(part) is not None
    _same_verdict_as_pydicom(part)
    assert isinstance(check_part(_Part(part), None), Checked)  # type: ignore[arg-type]


def _meta_cut(src: Path, dst: Path, keep: int) -> Path:
    dst.write_bytes(src.read_bytes()[:keep])
    return dst


def test_broken_file_meta_is_refused_by_name(tmp_path: Path) -> None:
    src = ct_study(tmp_path / "ct", n=1, seed=5)[0]
    raw = src.read_bytes()
    end = 144 + int.from_bytes(raw[140:144], "little")
    cases = {
        "ends inside its File Meta": raw[: end - 10],
        "not a DICOM PS3.10 file": b"\0" * 128 + b"DICM" + b"\0" * 20,
    }
    ds = pydicom.dcmread(src)
    del ds.file_meta.TransferSyntaxUID
    no_ts = tmp_path / "no_ts.dcm"
    ds.save_as(no_ts, enforce_file_format=False, implicit_vr=False, little_endian=True)
    cases["lacks the Transfer Syntax UID"] = no_ts.read_bytes()
    ds = pydicom.dcmread(src)
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    other = tmp_path / "other.dcm"
    ds.save_as(other)
    cases["SOP Instance UIDs differ"] = other.read_bytes()
    for why, data in cases.items():
        part = tmp_path / "part.dcm"
        part.write_bytes(data)
        got = check_part(_Part(part), None)  # type: ignore[arg-type]
        assert isinstance(got, PartResult), why
        assert got.failure == CANNOT_UNDERSTAND, why
        assert why in got.comment, (why, got.comment)
