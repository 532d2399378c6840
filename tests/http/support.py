"""Helpers of the HTTP tests: small CT studies and STOW-RS bodies posted by hand."""

from __future__ import annotations

from pathlib import Path

import requests

from dicom_node.synthetic import Patient, iter_ct_series, new_uid, write_files
from tests.support.node_process import NodeProcess

RELATED = 'multipart/related; type="application/dicom"; boundary={}'


def ct_study(folder: Path, n: int = 4, seed: int = 3, size: int = 64) -> list[Path]:
    """``n`` small CT slices of a fresh study."""
    return write_files(
        iter_ct_series(
            n, Patient(patient_id=f"W{seed}"), rows=size, cols=size, seed=seed, study_uid=new_uid()
        ),
        folder,
    )


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


def stow_leftovers(node: NodeProcess) -> list[Path]:
    """Spooled STOW-RS parts still in incoming/ (there must be none after a request)."""
    return sorted((node.data_dir / "incoming").glob("*.stow"))
