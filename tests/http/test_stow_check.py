"""A STOW-RS part's checks (File Meta walked by the structure check, header from the
walk's elements) against pydicom's parse of the same files: same header, same verdict."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_files

from dicom_node.http.stow import (
    CANNOT_UNDERSTAND,
    Checked,
    PartResult,
    check_part,
    read_file_header,
)
from dicom_node.index.header import HeaderError
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


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: Path(p).name)
def test_header_matches_pydicoms_parse(path: str) -> None:
    """Whatever pydicom reads as a valid header, the part check reads the same; a file
    pydicom cannot read is refused (never stored with a wrong header)."""
    try:
        expected, ts = read_file_header(path)
    except HeaderError:
        expected = None
    got = check_part(_Part(Path(path)), None)  # type: ignore[arg-type]
    if isinstance(got, Checked):
        assert expected is not None, "stored a part pydicom cannot read"
        assert got.header == expected
        assert got.transfer_syntax == ts
    else:
        assert isinstance(got, PartResult) and got.failure


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
