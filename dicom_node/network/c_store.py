"""The C-STORE service: one received dataset checked, kept and answered.

The handler never decodes pixel data and never holds a dataset in memory: pynetdicom has
written it, as received behind a File Meta header, into a file under the store's
``incoming/`` (:mod:`dicom_node.network.spool`); :func:`store_instance` parses it only up
to Pixel Data for the index, walks its structure (:mod:`dicom_node.store.check`), has it
fsynced, linked into place and indexed (:mod:`dicom_node.store.intake`), and only then
answers Success. Every other outcome is a failure status naming the reason (PS3.4 B.2.3).
"""

from __future__ import annotations

import logging
from pathlib import Path

from pydicom.dataset import Dataset
from pynetdicom import evt

from dicom_node import metrics
from dicom_node.db import utcnow
from dicom_node.index.header import (
    HEADER_TAGS,
    HeaderError,
    MissingIdentifiers,
    header_from_elements,
    parse_file_header,
)
from dicom_node.index.recorder import Receipt
from dicom_node.network import spool
from dicom_node.store.check import PixelDataMismatch, StructureError, check_file
from dicom_node.store.errors import ReserveError, StoreError
from dicom_node.store.intake import IndexFailed, Intake
from dicom_node.store.writer import InstanceStore

log = logging.getLogger(__name__)

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
CANNOT_UNDERSTAND = 0xC210  # dataset cannot be parsed
CANNOT_UNDERSTAND_IDS = 0xC220  # identifying UIDs missing or inconsistent with the request


def status(code: int, comment: str, reason: str) -> Dataset:
    """A failure status with its comment, counted by ``reason``."""
    metrics.STORE_FAILURES.labels(reason).inc()
    ds = Dataset()
    ds.Status = code
    ds.ErrorComment = comment.replace("\\", "/")[:64]  # LO: no backslash
    return ds


def store_instance(event: evt.Event, store: InstanceStore, intake: Intake) -> int | Dataset:
    """The status answering the C-STORE of ``event``: Success once its received file is
    checked, parsed up to Pixel Data, fsynced, linked into place and indexed; otherwise a
    failure status, counted by its reason (:func:`status`)."""
    assoc = event.assoc
    req = event.request
    called = str(assoc.requestor.primitive.called_ae_title).strip()
    calling = str(assoc.requestor.ae_title).strip()
    sop_uid = str(req.AffectedSOPInstanceUID or "").strip()
    sop_class = str(req.AffectedSOPClassUID or "").strip()
    ts = event.context.transfer_syntax
    spooled = Path(event.dataset_path)
    if not spool.claim(assoc, spooled):  # its association ended: nobody to answer
        return status(OUT_OF_RESOURCES, "association ended", "association_ended")
    if not store.space.has_room():
        return status(OUT_OF_RESOURCES, "disk space below the node's reserve", "disk_reserve")
    spool_error = spool.write_error(spooled)
    if isinstance(spool_error, ReserveError):
        log.warning(
            "C-STORE %s from %s refused: free space below the node's reserve", sop_uid, calling
        )
        return status(OUT_OF_RESOURCES, "disk space below the node's reserve", "disk_reserve")
    if spool_error is not None:
        log.error(
            "C-STORE %s from %s: cannot write %s: %s",
            sop_uid,
            calling,
            spooled.parent,
            spool_error.strerror or spool_error,
        )
        return status(OUT_OF_RESOURCES, "cannot write the file", "write_failed")
    # The file is complete: its fsync runs while it is checked, parsed and looked up
    # (the placement then waits for it), not after.
    synced = store.fsyncs.sync_ahead(spooled, wait_start=0.002)
    # One walk of the file checks its structure and picks up the indexed elements;
    # pydicom parses the header only of a file the walk refuses (for the status).
    malformed: StructureError | PixelDataMismatch | None = None
    try:
        elements = check_file(spooled, ts, HEADER_TAGS)
    except (StructureError, PixelDataMismatch) as err:
        malformed, elements = err, None
    try:
        if elements is not None:
            header = header_from_elements(elements, ts)
        else:
            header = parse_file_header(spooled, ts)
    except MissingIdentifiers as err:
        log.warning("C-STORE %s from %s: %s", sop_uid, calling, err)
        return status(CANNOT_UNDERSTAND_IDS, str(err), "missing_uid")
    except HeaderError as err:
        log.warning("C-STORE %s from %s: %s", sop_uid, calling, err)
        return status(CANNOT_UNDERSTAND, str(err), "cannot_parse")
    if header.sop_instance_uid != sop_uid:
        log.warning(
            "C-STORE %s from %s: dataset SOP Instance UID %s differs",
            sop_uid,
            calling,
            header.sop_instance_uid,
        )
        return status(
            CANNOT_UNDERSTAND_IDS, "SOP Instance UID differs from request", "uid_mismatch"
        )
    if header.sop_class_uid != sop_class:
        return status(
            DATASET_DOES_NOT_MATCH_SOP_CLASS,
            "SOP Class UID differs from request",
            "sop_class_mismatch",
        )
    if isinstance(malformed, StructureError):
        log.warning(
            "C-STORE %s of study %s from %s: malformed: %s",
            sop_uid,
            header.study_uid,
            calling,
            malformed,
        )
        return status(CANNOT_UNDERSTAND, f"malformed: {malformed}", "malformed")
    if isinstance(malformed, PixelDataMismatch):
        log.warning(
            "C-STORE %s of study %s from %s: %s", sop_uid, header.study_uid, calling, malformed
        )
        return status(DATASET_DOES_NOT_MATCH_SOP_CLASS, str(malformed), "pixel_data_mismatch")
    receipt = Receipt(
        called_ae=called,
        calling_ae=calling,
        peer_address=assoc.requestor.address,
        transfer_syntax=str(ts),
        path="",
        size=0,
        received_at=utcnow(),
    )
    try:
        intake.keep(spooled, header, receipt, synced)
    except StoreError as err:
        log.error("C-STORE %s of study %s: %s", sop_uid, header.study_uid, err)
        return status(OUT_OF_RESOURCES, "cannot write the file", "write_failed")
    except IndexFailed as err:
        return status(OUT_OF_RESOURCES, f"index failed: {err}", "index_failed")
    return SUCCESS
