"""Helpers of the HTTP tests: small CT studies and STOW-RS bodies posted by hand."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, generate_uid

from dicom_node.http.server import HttpServer
from dicom_node.node import Node
from dicom_node.settings.root import validate_config
from dicom_node.store.ready_files import READY
from dicom_node.synthetic import Patient, iter_ct_series, new_uid, write_files
from tests.support.node_process import NodeProcess
from tests.support.ports import free_port

RELATED = 'multipart/related; type="application/dicom"; boundary={}'


def ct_study(folder: Path, n: int = 4, seed: int = 3, size: int = 64) -> list[Path]:
    """``n`` small CT slices of a fresh study."""
    return write_files(
        iter_ct_series(
            n, Patient(patient_id=f"W{seed}"), rows=size, cols=size, seed=seed, study_uid=new_uid()
        ),
        folder,
    )


def ct_slice(seed: int, size: int = 16) -> Dataset:
    """One ``size`` x ``size`` CT slice of a fresh study."""
    patient = Patient(patient_id=f"FR{seed}")
    return next(iter_ct_series(1, patient, rows=size, cols=size, seed=seed, study_uid=new_uid()))


def as_deflated(ds: Dataset) -> Dataset:
    """``ds``, to be written in Deflated Explicit VR Little Endian."""
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    return ds


def uids(ds: Dataset) -> tuple[str, str, str]:
    """The Study, Series and SOP Instance UIDs of ``ds``."""
    return ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID


def frames_url(node: NodeProcess, ds: Dataset, frames: str) -> str:
    """The WADO-RS URL of frames ``frames`` (a list such as ``1,3``) of ``ds``."""
    s, se, i = uids(ds)
    return f"{node.http_url}/dicomweb/studies/{s}/series/{se}/instances/{i}/frames/{frames}"


def multipart(
    parts: list[bytes], boundary: str = "b0undary", types: list[str] | None = None
) -> bytes:
    """A multipart/related body of ``parts`` (each ``application/dicom`` unless given)."""
    out = b""
    for i, p in enumerate(parts):
        ctype = types[i] if types else "application/dicom"
        out += f"--{boundary}\r\nContent-Type: {ctype}\r\n\r\n".encode() + p + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def post(
    node: NodeProcess,
    data: object,
    path: str = "/dicomweb/studies",
    content_type: str = RELATED.format("b0undary"),
    headers: dict[str, str] | None = None,
) -> requests.Response:
    """POST a body (bytes, or an iterator for a chunked upload) to the node."""
    return requests.post(
        node.http_url + path,
        data=data,
        timeout=60,
        headers={"Content-Type": content_type, **(headers or {})},
    )


@contextlib.contextmanager
def inprocess_node(tmp_path: Path, config: dict[str, Any] | None = None) -> Iterator[Node]:
    """A node (its settings and ``config``) and its HTTP port in this process, for what
    only this process can reach (its listener's thread) or cause (a fault no peer can)."""
    cfg = validate_config(
        {
            "data_dir": str(tmp_path / "data"),
            "port": free_port(),
            "http": {"port": free_port()},
            "bind_address": "127.0.0.1",
            "disk_reserve_mb": 0,
            "models": {"bundled": False},
            **(config or {}),
        }
    )
    node = Node(cfg)
    node.start()
    http = HttpServer(node)
    try:
        http.start()
        yield node
    finally:
        http.stop()
        node.stop()


def stow_leftovers(node: NodeProcess) -> list[Path]:
    """Spooled STOW-RS parts still in incoming/ (there must be none after a request): the
    files that hold data, and the empty ones too unless, once the store has refilled its
    files kept ready for the next parts, there are exactly that many
    (:data:`dicom_node.store.ready_files.READY`): one more is a part left behind."""
    deadline = time.monotonic() + 10
    while True:
        sizes = {}
        for p in sorted((node.data_dir / "incoming").glob("*.stow")):
            with contextlib.suppress(FileNotFoundError):  # taken and placed meanwhile
                sizes[p] = p.stat().st_size
        empty = [p for p, size in sizes.items() if not size]
        if len(empty) == READY or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return [p for p, size in sizes.items() if size] + ([] if len(empty) == READY else empty)


MF_WORD_SC = "1.2.840.10008.5.1.4.1.1.7.3"  # Multi-frame Grayscale Word SC Image Storage


def renamed(ds: Dataset, patient_id: str, sop_class: str | None = None) -> Dataset:
    """``ds`` under fresh Study, Series and SOP Instance UIDs (and another SOP class if
    given), for ``patient_id``."""
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = new_uid(), new_uid(), new_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if sop_class:
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.PatientID = patient_id
    return ds


BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"


def drop(ds: Dataset, *keywords: str) -> None:
    """Remove the attributes ``keywords`` that ``ds`` has."""
    for keyword in keywords:
        if keyword in ds:
            delattr(ds, keyword)


def sr_without_pixels(seed: int, patient_id: str) -> Dataset:
    """A Basic Text SR of a fresh study for ``patient_id``: a CT slice without its image
    attributes (no Pixel Data, Rows or Columns)."""
    ds = renamed(ct_slice(seed), patient_id, BASIC_TEXT_SR)
    for keyword in list(ds.dir()):
        if keyword.startswith(("Pixel", "Bits", "Rows", "Columns", "Samples", "Photometric")):
            delattr(ds, keyword)
    drop(ds, "HighBit", "RescaleIntercept", "RescaleSlope", "RescaleType")
    drop(ds, "WindowCenter", "WindowWidth", "ImagePositionPatient")
    ds.Modality = "SR"
    return ds


def stored_by_stow(node: NodeProcess, folder: Path, made: dict[str, Dataset]) -> None:
    """Write each of ``made`` to ``folder``, STOW it with dicomweb-client, and replace it
    in ``made`` with the dataset read back from its file."""
    client = DICOMwebClient(node.http_url + "/dicomweb")
    for name, ds in made.items():
        path = folder / f"{name}.dcm"
        ds.save_as(path, enforce_file_format=True)
        made[name] = pydicom.dcmread(path)
        client.store_instances([made[name]])


def native_multiframe(frames: int, size: int, patient_id: str = "MF") -> Dataset:
    """A native 16-bit multi-frame image of ``frames`` × ``size``² pixels, each frame
    different (about 2 × frames × size² bytes)."""
    ds = next(iter_ct_series(1, Patient(patient_id=patient_id), rows=8, cols=8, seed=97))
    ds = renamed(ds, patient_id, MF_WORD_SC)
    for keyword in ("RescaleIntercept", "RescaleSlope", "RescaleType", "WindowCenter"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.Rows = ds.Columns = size
    ds.PixelRepresentation = 0
    ds.NumberOfFrames = frames
    base = np.arange(size * size, dtype=np.uint16).reshape(size, size)
    ds.PixelData = b"".join((base + k).tobytes() for k in range(frames))
    return ds


SC = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture
MF_BYTE_SC = "1.2.840.10008.5.1.4.1.1.7.2"  # Multi-frame Grayscale Byte SC


def image(ts: str, rows: int, cols: int, frames: int = 1, bits: int = 8) -> Dataset:
    """The header of a monochrome Secondary Capture image in syntax ``ts`` (multi-frame
    if ``frames`` is not 1), of a fresh study; no Pixel Data."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ts
    sop_class = SC if frames == 1 else MF_BYTE_SC
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName, ds.Modality = "HOSTILE", "Hostile^Wado", "OT"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit, ds.PixelRepresentation = bits - 1, 0
    if frames != 1:
        ds.NumberOfFrames = frames
    return ds


def reset_peak(node: NodeProcess) -> int:
    """The node's RSS (kB), its peak (VmHWM) reset to it through /proc/PID/clear_refs."""
    Path(f"/proc/{node.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
    return node.peak_rss_kb()


def failing(r: requests.Response) -> dict[str, str]:
    """The failing checks of a /ready answer, which must be a 503."""
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["status"] == "fail"
    return {k: v for k, v in body["checks"].items() if v != "ok"}
