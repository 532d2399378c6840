"""A pynetdicom SCU that sends a Part 10 file's bytes as they are."""

from __future__ import annotations

from pathlib import Path

from pydicom.filereader import read_file_meta_info
from pydicom.uid import UID
from pynetdicom import AE, _config


def store_file_raw(
    port: int, path: Path, called: str = "DICOM_NODE", calling: str = "PYNETDICOM"
) -> int:
    """C-STORE a Part 10 file *without decoding it*: pynetdicom streams the bytes after the
    File Meta as the dataset. Returns the status the node answered."""
    meta = read_file_meta_info(path)
    ae = AE(ae_title=calling)
    ae.add_requested_context(meta.MediaStorageSOPClassUID, [UID(meta.TransferSyntaxUID)])
    old = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        assoc = ae.associate("127.0.0.1", port, ae_title=called)
        assert assoc.is_established, "association not established"
        try:
            status = assoc.send_c_store(path)
        finally:
            assoc.release()
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = old
    return int(status.Status)
