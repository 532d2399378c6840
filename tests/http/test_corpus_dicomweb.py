"""The public real-world corpus (pydicom's test files and ``pydicom-data``,
:func:`tests.support.corpus.corpus_files`) through the node's HTTP face, with
dicomweb-client as the real client: every file is STOW-RS'd to one node, each its own
study (the first file of each study under its own UIDs, the others under fresh Study,
Series and SOP Instance UIDs: the corpus holds the same instance in up to nine
encodings), then, for each one the node accepts:

- WADO-RS gives back the very bytes dicomweb-client sent (``transfer-syntax=*``);
- ``/metadata`` is pydicom's own ``Dataset.to_json_dict()`` of those bytes, except
  where :func:`_expected_metadata` says why, and each BulkDataURI gives the value;
- QIDO-RS finds it by its Study Instance UID at each level, each attribute returned
  as pydicom's JSON has it;
- ``/rendered`` of a single-frame image is a PNG of its size, or (:data:`NOT_RENDERED`,
  each a file no installed decoder reads) a 422 problem JSON.

A file the node refuses must be in :data:`REFUSED` with its FailureReason: only where
the reason lies in the file itself.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email import message_from_bytes
from typing import Any

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import ExplicitVRBigEndian, generate_uid

from dicom_node.http.qido_json import returned_at
from dicom_node.http.qido_match import ATTRS
from tests.support.corpus import corpus_files
from tests.support.node_process import NodeProcess, running_node

CORPUS = {cf.name: cf for cf in corpus_files()}
CONFIG = {
    "ae_titles": [{"ae_title": "DICOM_NODE", "quiet_seconds": 1}],
    "http": {"web_source": {"ae_title": "WEBSRC", "quiet_seconds": 1}},
    "models": {"bundled": False},
}
THRESHOLD = 1024  # the node's BulkDataURI threshold (bytes), as pydicom's argument
ANY_SYNTAX = 'multipart/related; type="application/dicom"; transfer-syntax=*'

# Files the node refuses: their FailureReason and the comment it logs; each for a reason
# in the file itself.
LACK_STUDY = (0xC000, "dataset lacks StudyInstanceUID, SeriesInstanceUID")
MISMATCH = (0xC000, "File Meta and dataset SOP Instance UIDs differ")
REFUSED: dict[str, tuple[int, str]] = {
    # JPEG-LS samples of a codec's test suite, no Study or Series Instance UID (type 1)
    "pydicom/JPEGLSNearLossless_08.dcm": LACK_STUDY,
    "pydicom/JPEGLSNearLossless_16.dcm": LACK_STUDY,
    "pydicom/SC_rgb_jls_lossy_line.dcm": LACK_STUDY,
    "pydicom/SC_rgb_jls_lossy_sample.dcm": LACK_STUDY,
    # cut short on purpose: pydicom's dcmread of it whole has no element at all, so the
    # client sends its File Meta and an empty dataset
    "pydicom-data/emri_small_jpeg_2k_lossless_too_short.dcm": (
        0xC000,
        "dataset lacks SOPClassUID, SOPInstanceUID, StudyInstanceUID, SeriesInstanceUID",
    ),
    # File Meta and dataset disagree on the SOP Instance UID (anonymised apart); each is
    # sent again under fresh UIDs (FRESH), which are stored
    "pydicom/badVR.dcm": MISMATCH,
    "pydicom-data/bad_sequence.dcm": MISMATCH,
    # cut short on purpose: pydicom reads the Pixel Data it has, the client sends that
    "pydicom/MR_truncated.dcm": (
        0xA900,
        "Pixel Data has 8130 bytes, the image attributes need 8192",
    ),
}

FRESH = " (fresh UIDs)"  # a case of a corpus file sent under fresh UIDs
CASES = list(CORPUS) + [n + FRESH for n, reason in REFUSED.items() if reason == MISMATCH]

# Files dicomweb-client cannot send (pydicom cannot read them whole): why.
UNSENDABLE = {
    # an implicit VR dataset behind an explicit VR File Meta: elements without a VR
    "pydicom/SC_rgb_jpeg.dcm": "pydicom cannot write it: With tag (0008,0008) got "
    "exception: encoding without a string argument",
}


@dataclass
class Sent:
    """One corpus file as dicomweb-client sent it, and the node's answer."""

    data: bytes  # the Part 10 bytes sent (dicomweb-client's own pydicom.dcmwrite)
    ds: Dataset  # read back from ``data``
    status: int  # HTTP status of its STOW-RS request
    failure: int | None  # FailureReason, None if stored
    unsendable: str = ""  # why dicomweb-client could not send it


def _first_of_each_study() -> set[str]:
    """The first corpus file of each Study Instance UID: it is sent under its own UIDs
    (odd ones too: 64 hexadecimal digits, ``999.999…``); the other files of that study
    (other encodings of the same instance, mostly) under fresh ones."""
    first: dict[str, str] = {}
    for name, cf in CORPUS.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(cf.path, stop_before_pixels=True, defer_size=256)
        first.setdefault(str(ds.get("StudyInstanceUID", name)), name)
    return set(first.values())


def _prepared(name: str, own_uids: bool) -> Dataset:
    """The corpus file ``name``, under fresh UIDs (only those it has) unless
    ``own_uids``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(CORPUS[name.removesuffix(FRESH)].path)
    if own_uids:
        return ds
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        if keyword in ds:
            setattr(ds, keyword, generate_uid(entropy_srcs=[name, keyword]))
    if "MediaStorageSOPInstanceUID" in ds.file_meta and "SOPInstanceUID" in ds:
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def _store(url: str, name: str, own_uids: bool) -> Sent:
    ds = _prepared(name, own_uids)
    try:
        with io.BytesIO() as b:  # what DICOMwebClient.store_instances sends of ``ds``
            pydicom.dcmwrite(b, ds)
            data = b.getvalue()
    except Exception as err:  # noqa: BLE001 - then the client cannot send it either
        return Sent(b"", ds, 0, None, f"pydicom cannot write it: {str(err).splitlines()[0]}")
    statuses: list[int] = []
    session = requests.Session()
    session.hooks["response"].append(lambda r, *_a, **_k: statuses.append(r.status_code))
    try:
        answer = DICOMwebClient(url, session=session).store_instances([ds])
    except requests.HTTPError as err:  # 409: refused
        answer = Dataset.from_json(err.response.json()) if err.response.content else Dataset()
    finally:
        session.close()
    [status] = statuses  # one request, no retry
    failed = answer.get("FailedSOPSequence") or []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        back = pydicom.dcmread(io.BytesIO(data))
    return Sent(data, back, status, int(failed[0].FailureReason) if failed else None)


@pytest.fixture(scope="module")
def corpus_node(tmp_path_factory: pytest.TempPathFactory) -> Any:
    yield from running_node(tmp_path_factory.mktemp("corpus-node"), CONFIG)


@pytest.fixture(scope="module")
def sent(corpus_node: NodeProcess) -> dict[str, Sent]:
    """Every sendable corpus file STOW-RS'd, each in its own request."""
    url = corpus_node.http_url + "/dicomweb"
    names, own = CASES, _first_of_each_study()
    with ThreadPoolExecutor(4) as pool:
        answers = pool.map(lambda n: _store(url, n, n in own), names)
        return dict(zip(names, answers, strict=True))


def _parts(r: requests.Response) -> list[tuple[str, bytes]]:
    """(Content-Type, body) of each part of a multipart response."""
    msg = message_from_bytes(
        f"Content-Type: {r.headers['content-type']}\r\n\r\n".encode() + r.content
    )
    return [(p["Content-Type"], p.get_payload(decode=True)) for p in msg.get_payload()]


def _instance_url(node: NodeProcess, ds: Dataset) -> str:
    return (
        f"{node.http_url}/dicomweb/studies/{ds.StudyInstanceUID}"
        f"/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    )


def _get(url: str, accept: str | None = None, **params: str) -> requests.Response:
    return requests.get(
        url, headers={"Accept": accept} if accept else {}, params=params, timeout=30
    )


# --- metadata ---------------------------------------------------------------------


def _expected_metadata(ds: Dataset, url: str) -> dict[str, Any]:
    """pydicom's DICOM JSON of ``ds`` with the differences the node may have:
    - a binary value over :data:`THRESHOLD` bytes is a BulkDataURI naming its path
      (pydicom's handler gets the same URI);
    - Pixel Data is always a BulkDataURI (OB if encapsulated or 8-bit, else OW), even
      under the threshold: pixels are not inlined;
    - an element whose value JSON cannot hold (an IS of '1A') is left out (and logged)."""
    pixels = ds.get("PixelData")
    body = _json(ds, url, "")
    if pixels is not None:
        encapsulated = ds.file_meta.TransferSyntaxUID.is_compressed
        bits = int(ds.get("BitsAllocated", 16) or 16)
        body["7FE00010"] = {
            "vr": "OB" if encapsulated or bits <= 8 else "OW",
            "BulkDataURI": f"{url}/bulk/7FE00010",
        }
    return body


def _json(ds: Dataset, url: str, path: str) -> dict[str, Any]:
    out = {}
    for elem in ds:
        name = f"{elem.tag:08X}"
        if elem.VR == "SQ":
            items = [_json(item, url, f"{path}{name}/{k}/") for k, item in enumerate(elem.value, 1)]
            # PS3.18 F.2.5: no items is the VR alone (pydicom writes "Value": [])
            out[name] = {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
            continue
        with contextlib.suppress(ValueError):  # a value JSON cannot hold: left out
            out[name] = elem.to_json_dict(
                bulk_data_element_handler=lambda _e, at=f"{url}/bulk/{path}{name}": at,
                bulk_data_threshold=THRESHOLD,
            )
    return out


def _differences(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    """The elements whose JSON differs: tag -> (ours, theirs)."""
    return {
        tag: (ours.get(tag), theirs.get(tag))
        for tag in sorted(ours.keys() | theirs.keys())
        if ours.get(tag) != theirs.get(tag)
    }


def _unordered(body: dict[str, Any], path: str = "") -> list[str]:
    """The paths of the objects (top level, items) whose tags are out of order."""
    out = [path or "/"] if list(body) != sorted(body) else []
    for tag, elem in body.items():
        for k, item in enumerate(elem.get("Value", ()) if elem.get("vr") == "SQ" else (), 1):
            out += _unordered(item, f"{path}{tag}/{k}/")
    return out


def _bulk_uris(body: dict[str, Any]) -> list[str]:
    out = []
    for elem in body.values():
        if "BulkDataURI" in elem:
            out.append(elem["BulkDataURI"])
        if elem.get("vr") == "SQ":
            for item in elem.get("Value", ()):
                out += _bulk_uris(item)
    return out


def _value_at(ds: Dataset, path: str) -> bytes:
    """The bytes of the element a bulk path names (``SEQ/ITEM/…/TAG``)."""
    steps = path.split("/")
    for seq, item in zip(steps[:-1:2], steps[1:-1:2], strict=True):
        ds = ds[int(seq, 16)].value[int(item) - 1]
    return ds[int(steps[-1], 16)].value


# --- QIDO-RS ----------------------------------------------------------------------

COMPUTED = {"ModalitiesInStudy", "RetrieveURL"}


LEGACY_DATE = re.compile(r"^(\d{4})\.(\d{2})\.(\d{2})$")
LEGACY_TIME = re.compile(r"^(\d{2}):(\d{2})(?::(\d{2}(\.\d{1,6})?))?$")


def _file_json(ds: Dataset, keyword: str) -> dict[str, Any] | None:
    """pydicom's JSON of the file's ``keyword`` as QIDO-RS returns it: None if it is
    missing, empty, or not a value JSON can hold (an IS of '1A': the index keeps none);
    a date or time in the ACR-NEMA form ``yyyy.mm.dd``, ``hh:mm:ss.frac`` (PS3.5 6.2
    asks to support them) as the ``yyyymmdd``, ``hhmmss.frac`` it means."""
    if ds.get(keyword) in (None, ""):
        return None
    try:
        out = ds[keyword].to_json_dict(None, 0)
    except ValueError:
        return None
    if out["vr"] == "DA":
        out["Value"] = [LEGACY_DATE.sub(r"\1\2\3", v) for v in out["Value"]]
    if out["vr"] == "TM":
        out["Value"] = [LEGACY_TIME.sub(r"\1\2\3", v) for v in out["Value"]]
    limit = MAX_LENGTH.get(out["vr"])
    if limit and any(len(str(v)) > limit for v in out.get("Value", [])):
        return None  # longer than its VR allows: an identifier or code the index leaves out
    return out


# PS3.5 table 6.2-1: the longest value of each VR the index leaves out when exceeded
# (free text, LO and PN, is clipped instead; the corpus has none that long).
MAX_LENGTH = {"AE": 16, "CS": 16, "DA": 8, "SH": 16, "TM": 16}


def _query_value(ds: Dataset, keyword: str) -> str | None:
    """The file's value of ``keyword`` as a QIDO-RS matching key (its JSON value, a
    person name as DICOM writes it), None where there is none to match on."""
    attr = ATTRS.get(keyword)
    found = _file_json(ds, keyword) if attr else None
    if found is None or "Value" not in found or len(found["Value"]) != 1:
        return None
    [value] = found["Value"]
    return str(ds[keyword].value) if attr.vr == "PN" else str(value)


def _check_qido(node: NodeProcess, ds: Dataset, level: str) -> None:
    url = f"{node.http_url}/dicomweb/studies"
    params = {"StudyInstanceUID": ds.StudyInstanceUID}
    if level != "study":
        url = f"{node.http_url}/dicomweb/studies/{ds.StudyInstanceUID}/series"
        params = {"SeriesInstanceUID": ds.SeriesInstanceUID}
    if level == "instance":
        url += f"/{ds.SeriesInstanceUID}/instances"
        params = {"SOPInstanceUID": ds.SOPInstanceUID}
    r = _get(url, "application/dicom+json", includefield="all", **params)
    assert r.status_code == 200, r.text
    [found] = r.json()
    # Matched by every value of its own that the level matches on, all at once.
    own = {k: v for k in returned_at(level) - COMPUTED if (v := _query_value(ds, k))}
    r = _get(url, "application/dicom+json", **{**params, **own})
    assert r.status_code == 200, (own, r.text)
    assert len(r.json()) == 1, own
    for keyword in returned_at(level) - COMPUTED:
        attr = ATTRS.get(keyword)
        if attr is None:  # a count: one file per study
            assert found[f"{pydicom.datadict.tag_for_keyword(keyword):08X}"]["Value"] == [1]
            continue
        theirs = _file_json(ds, keyword)
        ours = found.get(attr.tag)
        if theirs is None or "Value" not in theirs:
            assert ours in (None, {"vr": attr.vr}), (keyword, ours)
        else:
            assert ours == {"vr": attr.vr, "Value": theirs["Value"]}, keyword
    if level == "study" and ds.get("Modality"):
        assert found["00080061"]["Value"] == [ds.Modality]


# --- the test ---------------------------------------------------------------------


@pytest.mark.parametrize("name", CASES)
def test_corpus_file_through_dicomweb(
    corpus_node: NodeProcess, sent: dict[str, Sent], name: str
) -> None:
    s = sent[name]
    assert s.unsendable == UNSENDABLE.get(name, "")
    if s.unsendable:
        return
    if name in REFUSED:
        reason, comment = REFUSED[name]
        assert (s.status, s.failure) == (409, reason)
        assert f"0x{reason:04X} {comment}" in corpus_node.log()
        return
    assert (s.status, s.failure) == (200, None)
    ds, url = s.ds, _instance_url(corpus_node, s.ds)

    r = _get(url, ANY_SYNTAX)
    assert r.status_code == 200, r.text
    [(_, body)] = _parts(r)
    assert body == s.data

    r = _get(url + "/metadata", "application/dicom+json")
    assert r.status_code == 200, r.text
    [ours] = r.json()
    expected = _expected_metadata(ds, url)
    assert _differences(ours, expected) == {}
    assert _unordered(ours) == []  # PS3.18 F.2.2: ascending by tag, at every depth
    for uri in _bulk_uris(ours):
        r = _get(uri, 'multipart/related; type="application/octet-stream"')
        assert r.status_code == 200, (uri, r.text)
        [(_, value)] = _parts(r)
        assert value == _value_at(ds, uri.split("/bulk/", 1)[1]), uri

    for level in ("study", "series", "instance"):
        _check_qido(corpus_node, ds, level)

    if "PixelData" in ds:
        _check_first_frame(url, name, ds)

    if _file_json(ds, "NumberOfFrames") in (None, {"vr": "IS", "Value": [1]}):
        _check_rendered(url, name, ds)


def _first_frame(ds: Dataset) -> bytes:
    """Frame 1 of ``ds`` as stored: its bytes (native; whole bytes, Bits Allocated 1
    aside) or its codestream (encapsulated)."""
    if ds.file_meta.TransferSyntaxUID.is_encapsulated:
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        return get_frame(ds.PixelData, 0, number_of_frames=frames)
    frames = _file_json(ds, "NumberOfFrames") or {"Value": [1]}
    return ds.PixelData[: get_expected_length(ds) // frames["Value"][0]]


# Files whose frame 1 the node does not send as stored: its status and detail.
FRAMES_NOT_SENT = {
    "pydicom/badVR.dcm" + FRESH: (422, "NumberOfFrames '1A' is not a whole number"),
}


def _check_first_frame(url: str, name: str, ds: Dataset) -> None:
    """Frame 1, as stored, is the file's (Explicit VR Big Endian: a 406, the node sends
    no frames of it; :data:`FRAMES_NOT_SENT`: a problem JSON)."""
    r = _get(
        url + "/frames/1", 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
    )
    if name in FRAMES_NOT_SENT:
        status, detail = FRAMES_NOT_SENT[name]
        assert (r.status_code, r.headers["content-type"]) == (status, "application/problem+json")
        assert detail in r.json()["detail"]
        return
    if ds.file_meta.TransferSyntaxUID == ExplicitVRBigEndian:
        assert r.status_code == 406, r.text
        assert "stored as 1.2.840.10008.1.2.2, whose frames this node cannot send" in r.text
        return
    assert r.status_code == 200, r.text
    [(_, frame)] = _parts(r)
    assert frame == _first_frame(ds)


# Single-frame files /rendered refuses (422 and its detail); every other one is a PNG.
# pydicom's own decoders (pylibjpeg, Pillow) fail on the first two as well.
NOT_RENDERED = {
    # 12-bit JPEG whose scan libjpeg refuses ("a misplaced marker segment")
    "pydicom/JPEG-lossy.dcm": "its pixel data cannot be decoded",
    # its J2K codestream's SIZ is corrupt (pydicom's test of a delimiter in a fragment)
    "pydicom/JPEG2000-embedded-sequence-delimiter.dcm": "its codestream declares 1024 x 3722445056",
    "pydicom/badVR.dcm" + FRESH: "NumberOfFrames '1A' is not a whole number",
}


def _check_rendered(url: str, name: str, ds: Dataset) -> None:
    r = _get(url + "/rendered", "image/png")
    if name in NOT_RENDERED:
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert NOT_RENDERED[name] in r.json()["detail"]
        return
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(r.content)) as png:
        assert (png.format, png.size) == ("PNG", (ds.Columns, ds.Rows))


@pytest.mark.parametrize(
    "name", ["pydicom/MR_small.dcm", "pydicom/MR_small_RLE.dcm", "pydicom/MR_small_bigendian.dcm"]
)
def test_elements_after_pixel_data_are_in_the_metadata(corpus_node: NodeProcess, name: str) -> None:
    """Elements after Pixel Data (a vendor's private group 7FE1, Digital Signatures) are
    in /metadata as pydicom has them, after native (little and big endian) and
    encapsulated Pixel Data; a binary one's BulkDataURI gives its bytes."""
    ds = _prepared(name + FRESH, own_uids=False)
    ds.add_new(0x7FE10010, "LO", "SIEMENS CSA NON-IMAGE")
    ds.add_new(0x7FE11010, "OB", bytes(range(256)) * 8)
    ds.add_new(0x7FE11011, "LO", "after")
    DICOMwebClient(corpus_node.http_url + "/dicomweb").store_instances([ds])
    url = _instance_url(corpus_node, ds)
    [ours] = _get(url + "/metadata", "application/dicom+json").json()
    tail = {k: v for k, v in ours.items() if k > "7FE00010"}
    assert tail == {
        "7FE10010": {"vr": "LO", "Value": ["SIEMENS CSA NON-IMAGE"]},
        "7FE11010": {"vr": "OB", "BulkDataURI": f"{url}/bulk/7FE11010"},
        "7FE11011": {"vr": "LO", "Value": ["after"]},
        **({"FFFCFFFC": _json(ds, url, "")["FFFCFFFC"]} if "FFFCFFFC" in ds else {}),
    }
    r = _get(f"{url}/bulk/7FE11010", 'multipart/related; type="application/octet-stream"')
    assert _parts(r)[0][1] == bytes(range(256)) * 8
