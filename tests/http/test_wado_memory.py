"""WADO-RS memory per request against the running node (dicomweb-client as the peer): a
large compressed frame is sent from the file in pieces, never held whole; the node's
peak RSS (VmHWM, reset through /proc/PID/clear_refs) grows by far less than the frame
while the bytes come back identical."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless, generate_uid

from tests.support.node_process import NodeProcess
from tests.support.scu import store_file_raw

MB = 1024  # kB
SC = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture


def _image(ts: str, rows: int, cols: int, bits: int) -> Dataset:
    """The header of a monochrome Secondary Capture image in syntax ``ts``."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ts
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SC
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName, ds.Modality = "MEMORY", "Memory^Wado", "OT"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit, ds.PixelRepresentation = bits - 1, 0
    return ds


def _stored(node: NodeProcess, ds: Dataset, path: Path) -> None:
    ds.save_as(path, enforce_file_format=True)
    assert store_file_raw(node.port, path) == 0, node.log()[-2000:]


def _reset_peak(node: NodeProcess) -> int:
    Path(f"/proc/{node.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
    return node.peak_rss_kb()


def test_a_large_compressed_frame_is_streamed_from_the_file(
    node: NodeProcess, tmp_path: Path
) -> None:
    """One 128 MB frame of JPEG 2000 (its bytes need not decode: it is sent as stored)
    in 512 fragments, asked for as stored (transfer-syntax=*): the frame comes back byte
    for byte while the node's peak RSS grows by far less than the frame (its fragments
    were joined, then the part copied into a batch: +258 MB)."""
    frame = np.random.default_rng(11).bytes(128 << 20)
    ds = _image(JPEG2000Lossless, 8192, 8192, 16)
    ds.PixelData = encapsulate([frame], fragments_per_frame=512)
    ds["PixelData"].VR = "OB"
    _stored(node, ds, tmp_path / "large.dcm")
    del ds.PixelData
    client = DICOMwebClient(node.http_url + "/dicomweb")
    before = _reset_peak(node)
    got = client.retrieve_instance_frames(
        ds.StudyInstanceUID,
        ds.SeriesInstanceUID,
        ds.SOPInstanceUID,
        [1],
        media_types=(("application/octet-stream", "*"),),
    )
    grown = node.peak_rss_kb() - before
    assert got == [frame]
    assert grown < 32 * MB, f"peak RSS grew by {grown // MB} MB serving a 128 MB frame"
