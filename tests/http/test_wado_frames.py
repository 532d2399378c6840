"""WADO-RS frames (``.../instances/{i}/frames/{list}``, and ``/frames/{n}/rendered``) with
dicomweb-client against the running node: each part is the bytes pydicom finds for that
frame in the stored file, native or encapsulated, in the order asked; bad frame lists and
media types get problem JSON. Also: the URLs the node writes percent-encode UIDs."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from tests.http.support import (
    as_deflated,
    ct_slice,
    drop,
    frames_url,
    multipart,
    post,
    renamed,
    sr_without_pixels,
    stored_by_stow,
    uids,
)
from tests.support.index import query
from tests.support.node_process import NodeProcess
from tests.support.scu import store_file_raw
from tests.support.viewers import frames_unavailable, run_ohif_frames

MF_WORD_SC = "1.2.840.10008.5.1.4.1.1.7.3"  # Multi-frame Grayscale Word SC Image Storage
MF_BIT_SC = "1.2.840.10008.5.1.4.1.1.7.1"  # Multi-frame Single Bit SC Image Storage
OCTET_ANY = (("application/octet-stream", "*"),)
PATIENT = "FRAMES"  # the Patient ID of these tests' instances
# What OHIF's image loader (@cornerstonejs/dicom-image-loader wadors) sends by default.
OHIF_ACCEPT = "multipart/related; type=application/octet-stream; transfer-syntax=*"


def _multiframe_word() -> Dataset:
    """Three 16-bit frames, each different."""
    ds = renamed(ct_slice(91, size=12), PATIENT, MF_WORD_SC)
    frames = np.stack([np.full((12, 12), 100 * (i + 1), np.uint16) for i in range(3)])
    frames[:, 0, :] = np.arange(12, dtype=np.uint16)  # a gradient row to render
    drop(ds, "RescaleIntercept", "RescaleSlope", "RescaleType", "WindowCenter", "WindowWidth")
    ds.PixelRepresentation = 0
    ds.NumberOfFrames = 3
    ds.PixelData = frames.tobytes()
    return ds


def _multiframe_bits() -> Dataset:
    """Three 5 × 5 frames of 1 bit: 25 bits each, so frames 2 and 3 start mid-byte."""
    ds = renamed(ct_slice(92, size=5), PATIENT, MF_BIT_SC)
    rng = np.random.default_rng(5)
    frames = rng.integers(0, 2, (3, 5, 5), dtype=np.uint8)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 1, 1, 0
    ds.PixelRepresentation = 0
    drop(ds, "RescaleIntercept", "RescaleSlope", "RescaleType", "WindowCenter", "WindowWidth")
    ds.NumberOfFrames = 3
    packed = np.packbits(frames.ravel(), bitorder="little").tobytes()
    ds.PixelData = packed + b"\0" * (len(packed) % 2)
    return ds


def _testdata(name: str) -> Dataset:
    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"pydicom test file {name} is not installed")
    return renamed(pydicom.dcmread(path), PATIENT)


@pytest.fixture(scope="module")
def stored(node: NodeProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Dataset]:
    """The instances of these tests, stored by STOW-RS and read back from their files."""
    folder = tmp_path_factory.mktemp("frames")
    made = {
        "ct": renamed(ct_slice(90), PATIENT),
        "word": _multiframe_word(),
        "bits": _multiframe_bits(),
        "jpeg": _testdata("SC_rgb_jpeg_dcmtk.dcm"),
        "rle": _testdata("SC_rgb_rle_2frame.dcm"),
        "j2k": _testdata("emri_small_jpeg_2k_lossless.dcm"),
        "sr": sr_without_pixels(93, PATIENT),
        "deflated": as_deflated(_multiframe_word()),
    }
    stored_by_stow(node, folder, made)
    return made


@pytest.fixture(scope="module")
def client(node: NodeProcess) -> DICOMwebClient:
    return DICOMwebClient(node.http_url + "/dicomweb")


def _native_frames(ds: Dataset) -> list[bytes]:
    """Each frame's bytes as pydicom lays them out."""
    n = int(ds.get("NumberOfFrames") or 1)
    if ds.BitsAllocated == 1:
        pixels = ds.pixel_array.reshape(n, -1)
        return [np.packbits(f, bitorder="little").tobytes() for f in pixels]
    size = ds.Rows * ds.Columns * ds.SamplesPerPixel * ds.BitsAllocated // 8
    return [ds.PixelData[k * size : (k + 1) * size] for k in range(n)]


def test_native_single_frame(stored: dict[str, Dataset], client: DICOMwebClient) -> None:
    ct = stored["ct"]
    expected = _native_frames(ct)
    assert client.retrieve_instance_frames(*uids(ct), [1]) == expected
    assert client.retrieve_instance_frames(*uids(ct), [1], media_types=OCTET_ANY) == expected
    explicit = (("application/octet-stream", ExplicitVRLittleEndian),)
    assert client.retrieve_instance_frames(*uids(ct), [1], media_types=explicit) == expected


def test_native_multiframe_in_the_order_asked(
    stored: dict[str, Dataset], client: DICOMwebClient, node: NodeProcess
) -> None:
    word = stored["word"]
    expected = _native_frames(word)
    assert len({*expected}) == 3
    got = client.retrieve_instance_frames(*uids(word), [3, 1, 2], media_types=OCTET_ANY)
    assert got == [expected[2], expected[0], expected[1]]
    r = requests.get(
        frames_url(node, word, "2"),
        headers={"Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*'},
        timeout=10,
    )
    assert r.status_code == 200
    octet = 'multipart/related; type="application/octet-stream"'
    assert r.headers["content-type"].startswith(octet)
    part_type = re.search(rb"Content-Type: ([^\r]*)\r\n", r.content)
    assert part_type and part_type.group(1) == (
        b"application/octet-stream; transfer-syntax=" + ExplicitVRLittleEndian.encode()
    )


def test_frames_of_a_deflated_file(stored: dict[str, Dataset], client: DICOMwebClient) -> None:
    deflated = stored["deflated"]
    assert deflated.file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian
    expected = _native_frames(deflated)
    got = client.retrieve_instance_frames(*uids(deflated), [2, 3], media_types=OCTET_ANY)
    assert got == expected[1:]


def test_one_bit_frames_that_start_mid_byte(
    stored: dict[str, Dataset], client: DICOMwebClient
) -> None:
    bits = stored["bits"]
    expected = _native_frames(bits)
    assert client.retrieve_instance_frames(*uids(bits), [1, 2, 3]) == expected
    assert client.retrieve_instance_frames(*uids(bits), [2]) == [expected[1]]


@pytest.mark.parametrize(
    ("name", "media"),
    [
        ("jpeg", "image/jpeg"),
        ("rle", "image/dicom-rle"),
        ("j2k", "image/jp2"),
    ],
)
def test_encapsulated_frames_are_the_stored_bitstreams(
    stored: dict[str, Dataset], client: DICOMwebClient, node: NodeProcess, name: str, media: str
) -> None:
    ds = stored[name]
    n = int(ds.get("NumberOfFrames") or 1)
    expected = list(generate_frames(ds.PixelData, number_of_frames=n))
    ts = str(ds.file_meta.TransferSyntaxUID)
    order = list(range(n, 0, -1))  # last first
    got = client.retrieve_instance_frames(*uids(ds), order, media_types=((media, ts),))
    assert got == [expected[k - 1] for k in order]
    assert client.retrieve_instance_frames(*uids(ds), [1]) == [expected[0]]
    r = requests.get(frames_url(node, ds, "1"), timeout=10)  # no Accept: as stored
    assert r.status_code == 200
    assert f'type="{media}"; transfer-syntax={ts}' in r.headers["content-type"]
    # OHIF's image loader asks for octet-stream in any syntax: the bitstream, so labelled.
    r = requests.get(
        frames_url(node, ds, "1"),
        headers={"Accept": OHIF_ACCEPT},
        timeout=10,
    )
    assert r.status_code == 200
    part = re.search(rb"Content-Type: ([^\r]*)\r\n\r\n", r.content)
    assert part and part.group(1).decode() == f"application/octet-stream; transfer-syntax={ts}"
    assert r.content[part.end() :].startswith(expected[0] + b"\r\n--")
    if name == "jpeg":  # the part is a JPEG that decodes to the instance's pixels
        image = Image.open(io.BytesIO(got[0]))
        assert image.format == "JPEG" and image.size == (ds.Columns, ds.Rows)
    # Asking for raw (decompressed) frames: decoded (tests/http/test_wado_frames_decoded.py).
    r = requests.get(
        frames_url(node, ds, "1"),
        headers={
            "Accept": 'multipart/related; type="application/octet-stream"; '
            f"transfer-syntax={ExplicitVRLittleEndian}"
        },
        timeout=10,
    )
    assert r.status_code == 200
    assert f"transfer-syntax={ExplicitVRLittleEndian}" in r.headers["content-type"]
    assert ds.pixel_array[0 if n > 1 else ...].tobytes() + b"\r\n--" in r.content


def test_ohif_image_loader_reads_our_frames(stored: dict[str, Dataset], node: NodeProcess) -> None:
    """The published @cornerstonejs/dicom-image-loader (what OHIF fetches pixels with)
    parses each answer into that frame's bytes and the syntax to decode them with."""
    if why := frames_unavailable():
        pytest.skip(why)
    asked = [("ct", 1), ("word", 2), ("bits", 3), ("jpeg", 1), ("rle", 2), ("j2k", 7)]
    seen = run_ohif_frames([frames_url(node, stored[name], str(n)) for name, n in asked])
    for (name, frame), got in zip(asked, seen, strict=True):
        ds = stored[name]
        assert got["status"] == 200, got
        ts = str(ds.file_meta.TransferSyntaxUID)
        if ds.file_meta.TransferSyntaxUID.is_compressed:
            n = int(ds.get("NumberOfFrames") or 1)
            expected = list(generate_frames(ds.PixelData, number_of_frames=n))[frame - 1]
        else:
            ts, expected = ExplicitVRLittleEndian, _native_frames(ds)[frame - 1]
        assert got["transferSyntax"] == ts, name
        assert base64.b64decode(got["pixelData"]) == expected, name


def test_media_type_negotiation_of_native_frames(
    stored: dict[str, Dataset], node: NodeProcess
) -> None:
    url = frames_url(node, stored["ct"], "1")
    octet = 'multipart/related; type="application/octet-stream"'
    for accept, status in [
        ("*/*", 200),
        (octet, 200),
        ('multipart/related; type="*/*"', 200),
        ('multipart/related; type="image/jpeg"', 406),
        (f"{octet}; transfer-syntax=1.2.840.10008.1.2.5", 406),
        ("image/png", 406),
    ]:
        r = requests.get(url, headers={"Accept": accept}, timeout=10)
        assert r.status_code == status, accept
        if status == 406:
            assert r.json()["status"] == 406


@pytest.mark.parametrize(
    ("name", "frames", "status", "named"),
    [
        ("word", "0", 400, "0"),
        ("word", "99", 404, "99"),
        ("word", "1,x", 400, "x"),
        ("word", "1,,2", 400, ""),
        ("word", "1,2,1", 400, "1"),  # PS3.18: a list of non-duplicate frame numbers
        ("ct", "2", 404, "2"),
        ("sr", "1", 404, None),
    ],
)
def test_bad_frame_lists_answer_problems(
    stored: dict[str, Dataset], node: NodeProcess, name: str, frames: str, status: int, named: str
) -> None:
    r = requests.get(frames_url(node, stored[name], frames), timeout=10)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["status"] == status
    if named is not None:
        assert problem["frame"] == named and f"frame {named}" in problem["detail"].replace("'", "")
    else:
        assert "no Pixel Data" in problem["detail"]


def test_rendered_frames_of_a_multiframe_image(
    stored: dict[str, Dataset], client: DICOMwebClient, node: NodeProcess
) -> None:
    word = stored["word"]
    pngs = [
        client.retrieve_instance_frames_rendered(*uids(word), [k], media_types=("image/png",))
        for k in (1, 2, 3)
    ]
    images = [np.asarray(Image.open(io.BytesIO(p))) for p in pngs]
    assert all(i.shape == (12, 12) for i in images)
    # Frame k is the gradient row over a flat 100·k: each is scaled over its own range.
    assert len({i.tobytes() for i in images}) == 3
    jpeg = client.retrieve_instance_frames_rendered(*uids(ct := stored["ct"]), [1])
    assert Image.open(io.BytesIO(jpeg)).format == "JPEG"
    s, se, i = uids(word)
    base = f"{node.http_url}/dicomweb/studies/{s}/series/{se}/instances/{i}"
    assert requests.get(f"{base}/rendered", timeout=10).status_code == 400  # which frame?
    for frames, status in (("4", 404), ("1,2", 400), ("0", 400)):
        r = requests.get(f"{base}/frames/{frames}/rendered", timeout=10)
        assert r.status_code == status, frames
        assert r.headers["content-type"] == "application/problem+json"
    s, se, i = uids(ct)
    one = f"{node.http_url}/dicomweb/studies/{s}/series/{se}/instances/{i}/frames/1/rendered"
    assert requests.get(one, timeout=10).status_code == 200


def test_urls_in_responses_percent_encode_uids(node: NodeProcess, tmp_path: Path) -> None:
    """A SOP Instance UID outside the UID character set (stored, as a C-STORE would)
    gives RetrieveURL and BulkDataURI values that are valid URLs and resolve."""
    ds = renamed(ct_slice(94), PATIENT)
    odd = "1.2.3 4#5?6%7&8"
    buffer = io.BytesIO()
    with pytest.warns(UserWarning):  # pydicom warns about the invalid UID, and writes it
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = odd
        ds.save_as(buffer, enforce_file_format=True)
    r = post(node, multipart([buffer.getvalue()]))
    assert r.status_code == 200, r.text
    referenced = r.json()["00081199"]["Value"]  # ReferencedSOPSequence
    url = referenced[0]["00081190"]["Value"][0]  # its RetrieveURL
    assert "1.2.3%204%235%3F6%257%268" in url and " " not in url and "#" not in url
    got = requests.get(url, timeout=10)
    assert got.status_code == 200 and buffer.getvalue() in got.content
    found = requests.get(
        f"{node.http_url}/dicomweb/studies/{ds.StudyInstanceUID}/instances", timeout=10
    ).json()
    assert [f["00081190"]["Value"][0] for f in found] == [url]
    meta = requests.get(url + "/metadata", timeout=10).json()
    bulk = requests.get(meta[0]["7FE00010"]["BulkDataURI"], timeout=10)
    assert bulk.status_code == 200 and ds.PixelData in bulk.content
    frames = requests.get(url + "/frames/1", timeout=10)
    assert frames.status_code == 200 and ds.PixelData in frames.content


def test_one_frame_of_a_large_file_is_read_alone(node: NodeProcess, tmp_path: Path) -> None:
    """Frames are read by seeking: two frames of a 48 MB multi-frame instance (stored by
    C-STORE) raise the node's peak RSS by far less than the file."""
    ds = _multiframe_word()
    frames = np.arange(96, dtype=np.uint16)[:, None, None] * np.ones((1, 512, 512), np.uint16)
    ds.Rows = ds.Columns = 512
    ds.NumberOfFrames = 96
    ds.PixelData = frames.tobytes()
    path = tmp_path / "large.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert store_file_raw(node.port, path) == 0
    Path(f"/proc/{node.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = node.peak_rss_kb()
    r = requests.get(frames_url(node, ds, "50,96"), timeout=30)
    assert r.status_code == 200
    assert frames[49].tobytes() in r.content and frames[95].tobytes() in r.content
    assert len(r.content) < 2 * 512 * 512 * 2 + 1024
    assert node.peak_rss_kb() - before < 16 * 1024


def test_pixel_data_shorter_than_its_frames_is_a_problem(node: NodeProcess, tmp_path: Path) -> None:
    """A stored file changed behind the node's back so that its header claims a fourth
    frame its Pixel Data lacks: 422 problem JSON before any part is sent."""
    ds = _multiframe_word()
    path = tmp_path / "mf.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert store_file_raw(node.port, path) == 0
    sql = "SELECT path FROM instances WHERE sop_instance_uid = :s"
    rows = query(node.data_dir, sql, s=ds.SOPInstanceUID)
    ds.NumberOfFrames = 4
    ds.save_as(rows[0][0], enforce_file_format=True)
    r = requests.get(frames_url(node, ds, "1,4"), timeout=10)
    assert r.status_code == 422 and r.json()["frame"] == "4"
    assert requests.get(frames_url(node, ds, "3"), timeout=10).status_code == 200


def test_a_frame_missing_after_the_first_cuts_the_response(
    node: NodeProcess, tmp_path: Path
) -> None:
    """An encapsulated file changed behind the node's back to claim a third frame: the
    first frame has gone out when the third is found missing, so the response is cut
    (never a complete-looking answer) and the node logs why."""
    ds = _testdata("SC_rgb_rle_2frame.dcm")
    ds.save_as(tmp_path / "rle.dcm", enforce_file_format=True)
    assert store_file_raw(node.port, tmp_path / "rle.dcm") == 0
    sql = "SELECT path FROM instances WHERE sop_instance_uid = :s"
    path = query(node.data_dir, sql, s=ds.SOPInstanceUID)[0][0]
    ds.NumberOfFrames = 3
    ds.save_as(path, enforce_file_format=True)
    try:
        r = requests.get(frames_url(node, ds, "1,3"), timeout=10)
    except requests.exceptions.ChunkedEncodingError:
        pass
    else:
        raise AssertionError(f"a complete response ({r.status_code}) for a missing frame")
    assert "WADO-RS frames of instance " + ds.SOPInstanceUID in node.log()
    assert "response cut" in node.log()


def test_rendered_frame_of_a_deflated_image(stored: dict[str, Dataset], node: NodeProcess) -> None:
    """A Deflated multi-frame image renders frame by frame as a stored-as-is one does."""
    deflated, word = stored["deflated"], stored["word"]
    got = {}
    for name, ds in (("deflated", deflated), ("word", word)):
        r = requests.get(
            frames_url(node, ds, "2") + "/rendered", headers={"Accept": "image/png"}, timeout=10
        )
        assert r.status_code == 200, (name, r.text)
        got[name] = np.asarray(Image.open(io.BytesIO(r.content)))
    assert np.array_equal(got["deflated"], got["word"])


def test_frames_without_offset_table_are_found_in_one_walk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Encapsulated Pixel Data without offset tables, one fragment per frame: the
    fragments are walked once per request, not once per frame (pydicom's get_frame walks
    them all for each frame: 2000 frames asked of 2000 took 2.5 s of CPU in memory)."""
    from pydicom.encaps import encapsulate

    from dicom_node.http import fragments
    from dicom_node.http import frames as frame_io
    from dicom_node.http.wado import Stored

    ds = renamed(ct_slice(95, size=8), PATIENT)
    parts = [bytes([k]) * 10 for k in range(40)]
    ds.NumberOfFrames = len(parts)
    ds.PixelData = encapsulate(parts, has_bot=False)
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.5"  # RLE Lossless
    path = tmp_path / "nobot.dcm"
    ds.save_as(path, enforce_file_format=True)
    inst = Stored("s", "se", "i", str(path), "1.2.840.10008.1.2.5", 8, len(parts))
    walks = []
    real = fragments._items

    def counted(*args: object, **kwargs: object) -> object:
        walks.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(fragments, "_items", counted)
    # get_frame is no longer used at all
    assert not hasattr(frame_io, "get_frame") and not hasattr(fragments, "get_frame")
    numbers = [40, 1, 17, 2]
    pixels = frame_io.layout(inst)
    got = list(frame_io.frame_bytes(inst, pixels, numbers, 2**20))
    assert got == [parts[n - 1] for n in numbers]
    assert len(walks) == 1


def test_a_deflated_instance_converts_on_retrieve(
    stored: dict[str, Dataset], client: DICOMwebClient
) -> None:
    deflated = stored["deflated"]
    got = client.retrieve_instance(
        *uids(deflated), media_types=(("application/dicom", ExplicitVRLittleEndian),)
    )
    assert got.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert got.PixelData == deflated.PixelData


def _many_frames(kind: str, n: int = 600) -> tuple[Dataset, list[bytes]]:
    """An RLE-labelled instance of ``n`` small frames, each different, with a Basic
    Offset Table (one or two fragments per frame) or an Extended Offset Table; or a
    JPEG-labelled one of two fragments per frame and no table (frames end with an EOI
    marker); and the frames as pydicom's generate_frames finds them."""
    from pydicom.encaps import encapsulate, encapsulate_extended

    ds = renamed(ct_slice(96, size=8), PATIENT)
    ds.NumberOfFrames = n
    frames = [k.to_bytes(2, "little") * (20 + k % 7) for k in range(n)]
    ts = "1.2.840.10008.1.2.5"  # RLE Lossless
    if kind == "markers":
        frames = [b"\xff\xd8" + f + b"\xff\xd9" for f in frames]
        ts = "1.2.840.10008.1.2.4.50"  # JPEG Baseline
    eot = None
    if kind == "eot":
        ds.PixelData, table, lengths = encapsulate_extended(frames)
        ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths = table, lengths
        eot = (table, lengths)
    else:
        per_frame = 2 if kind in ("bot2", "markers") else 1
        has_bot = kind != "markers"
        ds.PixelData = encapsulate(frames, fragments_per_frame=per_frame, has_bot=has_bot)
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = ts
    expected = list(generate_frames(ds.PixelData, number_of_frames=n, extended_offsets=eot))
    return ds, expected


@pytest.mark.parametrize("kind", ["bot", "bot2", "eot", "markers"])
def test_every_frame_of_a_many_frame_instance(
    kind: str, node: NodeProcess, client: DICOMwebClient, tmp_path: Path
) -> None:
    """600 frames with a Basic (one or two fragments per frame) or Extended Offset
    Table, all asked in one request and some one by one: pydicom's frames, in order."""
    ds, expected = _many_frames(kind)
    path = tmp_path / f"{kind}.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert store_file_raw(node.port, path) == 0
    numbers = list(range(1, len(expected) + 1))
    got = client.retrieve_instance_frames(*uids(ds), frame_numbers=numbers, media_types=OCTET_ANY)
    assert got == expected
    for n in (1, 2, 300, 599, 600):
        one = client.retrieve_instance_frames(*uids(ds), frame_numbers=[n], media_types=OCTET_ANY)
        assert one == [expected[n - 1]], n
    r = requests.get(frames_url(node, ds, "601"), headers={"Accept": OHIF_ACCEPT}, timeout=10)
    assert r.status_code == 404 and r.json()["frame"] == "601"


@pytest.mark.parametrize("kind", ["bot", "bot2", "eot", "markers"])
def test_offset_tables_are_read_once_per_request(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a Basic or Extended Offset Table (or none: the fragments' end markers), a
    request for many frames reads the table once, not once per frame (pydicom's
    get_frame parses it whole, or walks every fragment, for each frame: frames² work for
    all of them)."""
    from dicom_node.http import fragments
    from dicom_node.http import frames as frame_io
    from dicom_node.http.wado import Stored

    ds, expected = _many_frames(kind)
    path = tmp_path / f"{kind}.dcm"
    ds.save_as(path, enforce_file_format=True)
    ts = ds.file_meta.TransferSyntaxUID
    inst = Stored("s", "se", "i", str(path), ts, 8, len(expected))
    tables = []
    real = fragments.parse_basic_offsets

    def counted(*args: object, **kwargs: object) -> object:
        tables.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(fragments, "parse_basic_offsets", counted)
    numbers = [600, 1, 17, 2, 599, 300]
    pixels = frame_io.layout(inst)
    got = list(frame_io.frame_bytes(inst, pixels, numbers, 2**20))
    assert got == [expected[n - 1] for n in numbers]
    assert len(tables) == 1
    assert not hasattr(frame_io, "get_frame")


def test_an_extended_offset_table_short_of_lengths_is_a_problem(
    node: NodeProcess, tmp_path: Path
) -> None:
    """An Extended Offset Table with a length for every frame but the last: that frame
    answers 422 problem JSON naming it (no 500), the others their bytes."""
    ds, expected = _many_frames("eot", n=5)
    ds.ExtendedOffsetTableLengths = bytes(ds.ExtendedOffsetTableLengths)[:-8]
    ds.save_as(tmp_path / "short.dcm", enforce_file_format=True)
    assert store_file_raw(node.port, tmp_path / "short.dcm") == 0
    r = requests.get(frames_url(node, ds, "5"), headers={"Accept": OHIF_ACCEPT}, timeout=10)
    assert r.status_code == 422 and r.json()["frame"] == "5"
    r = requests.get(frames_url(node, ds, "4"), headers={"Accept": OHIF_ACCEPT}, timeout=10)
    assert r.status_code == 200 and expected[3] + b"\r\n--" in r.content
