"""One uploaded PS3.10 file for the admin API (``models/{name}/test``,
``routes/explain``): spooled to ``incoming/*.upload`` within ``http.max_upload_mb``, then
checked as the receive path checks a file before pydicom reads it.

A deflated dataset is inflated here, in steps, into an Explicit VR Little Endian file of
at most ``http.max_upload_mb``: pydicom inflates one whole, and a 700 kB upload grew the
node by 1.4 GB. The structure walk then refuses a malformed dataset and one with more
than ``http.max_header_elements`` elements before its Pixel Data, without building it.
"""

from __future__ import annotations

import os
import uuid
import zlib
from pathlib import Path

from fastapi import Request
from pydicom.filereader import read_file_meta_info
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import UID, ExplicitVRLittleEndian
from starlette.concurrency import run_in_threadpool

from dicom_node.http.app import body_chunks, node_of
from dicom_node.http.problem import Problem
from dicom_node.http.stow_check import read_file_meta
from dicom_node.index.header import HeaderError
from dicom_node.store.check import (
    PixelDataMismatch,
    StructureError,
    TooManyElements,
    check_file,
    count_within,
)
from dicom_node.store.inflate import inflated_pieces


async def uploaded(request: Request) -> Path:
    """The request body (one PS3.10 file) spooled to a file in ``incoming/``, up to
    ``http.max_upload_mb``, and checked (:func:`check_upload`); the caller removes it."""
    node = node_of(request)
    limit = node.config.http.max_upload_mb * 2**20
    path = node.store.incoming / f"{uuid.uuid4().hex}.upload"
    size = 0
    try:
        with open(path, "wb") as fh:
            async for chunk in body_chunks(request, limit, "uploads (http.max_upload_mb)"):
                fh.write(chunk)
                size += len(chunk)
        if not size:
            raise Problem(400, "Bad Request", "send one DICOM file as the request body")
        await run_in_threadpool(check_upload, path, limit, node.config.http.max_header_elements)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def check_upload(path: Path, limit: int, max_elements: int) -> None:
    """Problem 400 unless ``path`` is a well-formed PS3.10 file, 413 if it inflates past
    ``limit`` bytes or has more than ``max_elements`` elements before Pixel Data. A
    deflated file is rewritten in Explicit VR Little Endian."""
    try:
        ts, _ = read_file_meta(path)
    except HeaderError as err:
        raise Problem(400, "Bad Request", f"the upload is not a DICOM file: {err}") from None
    if UID(ts).is_deflated:
        _inflate(path, limit)
        ts = ExplicitVRLittleEndian
    try:
        count_within(path, ts, max_elements)
        check_file(path, ts)
    except TooManyElements:
        raise Problem(
            413,
            "Content Too Large",
            f"the upload has more than {max_elements} elements before its Pixel Data "
            "(http.max_header_elements)",
        ) from None
    except (StructureError, PixelDataMismatch) as err:
        raise Problem(400, "Bad Request", f"the upload is malformed: {err}") from None


def _inflate(path: Path, limit: int) -> None:
    """Rewrite the deflated PS3.10 file at ``path`` in Explicit VR Little Endian;
    Problem 413 once more than ``limit`` bytes come out, 400 if it does not inflate."""
    meta = read_file_meta_info(path)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    inflated = path.with_suffix(".inflated")
    total = 0
    try:
        with open(path, "rb") as src, open(inflated, "wb") as dst:
            dst.write(b"\0" * 128 + b"DICM")
            write_file_meta_info(dst, meta, enforce_standard=True)
            for data in inflated_pieces(src):
                total += len(data)
                if total > limit:
                    raise Problem(
                        413,
                        "Content Too Large",
                        f"the upload would inflate past {limit // 2**20} MB (http.max_upload_mb)",
                    )
                dst.write(data)
        os.replace(inflated, path)
    except zlib.error as err:
        raise Problem(
            400, "Bad Request", f"the deflated dataset cannot be inflated: {err}"
        ) from None
    finally:
        inflated.unlink(missing_ok=True)
