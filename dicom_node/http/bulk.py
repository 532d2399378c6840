"""WADO-RS bulk data (``.../instances/{i}/bulk/{tag}``): the value of one top-level
binary element, the target of a BulkDataURI in the instance's metadata.

The value is found by the receive path's structure walk (:func:`dicom_node.store.check.
locate_element`: element headers only, stopping at that element) and streamed from the
file by offset, a megabyte at a time: a 1 GB multi-frame costs the node no more memory
than a small image. A ``Range: bytes=…`` header asks for a slice of the value (206, or
416 if it lies outside). A Deflated file cannot be seeked in: its dataset is inflated in
memory (capped, as for every other read of a Deflated file).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass

from pydicom.datadict import dictionary_VR
from pydicom.uid import DeflatedExplicitVRLittleEndian

from dicom_node.http.problem import Problem
from dicom_node.http.wado import CHUNK, Stored, check_files, decoded_bytes, read_dataset
from dicom_node.index.header import INFLATE_MAX
from dicom_node.store.check import StructureError, locate_element

log = logging.getLogger(__name__)

OCTET = "application/octet-stream"
BULK_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})  # pydicom's bytes values


@dataclass(frozen=True)
class BulkValue:
    """A value to send: ``length`` bytes at ``offset`` of the file at ``path``, or
    ``data`` already in memory (a Deflated file's)."""

    path: str
    offset: int
    length: int
    data: bytes | None = None

    def slice(self, start: int, end: int) -> BulkValue:
        """Bytes ``start`` to ``end`` (exclusive) of the value."""
        if self.data is not None:
            return BulkValue(self.path, 0, end - start, self.data[start:end])
        return BulkValue(self.path, self.offset + start, end - start)

    def chunks(self) -> Iterator[bytes]:
        """The value, read as it is sent."""
        if self.data is not None:
            yield self.data
            return
        left = self.length
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            while left > 0:
                chunk = fh.read(min(CHUNK, left))
                if not chunk:  # the file shrank behind the node's back: cut the response
                    raise OSError(f"{self.path} ends {left} bytes before the value")
                left -= len(chunk)
                yield chunk


def _tag(text: str) -> int:
    if not re.fullmatch(r"[0-9A-Fa-f]{8}", text):
        raise Problem(404, "Not Found", f"{text!r} is not a tag (8 hexadecimal digits)")
    return int(text, 16)


def _is_bulk(tag: int, vr: bytes | None) -> bool:
    """Whether pydicom reads the element as bytes (its explicit VR, else the
    dictionary's; an unknown tag is UN, an ambiguous VR counts if one of them is)."""
    if vr is not None:
        return vr.decode("ascii", "replace") in BULK_VRS
    try:
        name = dictionary_VR(tag)
    except KeyError:
        return True  # UN
    return any(v in BULK_VRS for v in name.split(" or "))


def locate(inst: Stored, text: str) -> BulkValue:
    """Where the value of top-level element ``text`` (8 hex digits) lies; Problem 404
    if the instance has no such binary element."""
    tag = _tag(text)
    check_files([inst])
    if inst.transfer_syntax == DeflatedExplicitVRLittleEndian:
        return _inflated_value(inst, tag, text)
    try:
        found = locate_element(inst.path, inst.transfer_syntax, tag)
    except (StructureError, ValueError) as err:
        log.error("WADO-RS bulk data of instance %s of study %s: %s", inst.sop, inst.study, err)
        raise Problem(
            422, "Unprocessable Content", f"the stored dataset cannot be walked: {err}"
        ) from None
    if found is None:  # not a syntax the walk reads
        return _inflated_value(inst, tag, text)
    if found.offset < 0:
        raise Problem(404, "Not Found", f"instance has no bulk data element {text}")
    if found.length < 0 or not _is_bulk(tag, found.vr):
        raise Problem(404, "Not Found", f"element {text} is not bulk data")
    return BulkValue(inst.path, found.offset, found.length)


def _inflated_value(inst: Stored, tag: int, text: str) -> BulkValue:
    ds = read_dataset(inst, cap=decoded_bytes(inst) + INFLATE_MAX)
    elem = ds.get(tag)
    if elem is None:
        raise Problem(404, "Not Found", f"instance has no bulk data element {text}")
    if not isinstance(elem.value, bytes | bytearray):
        raise Problem(404, "Not Found", f"element {text} is not bulk data")
    return BulkValue(inst.path, 0, len(elem.value), bytes(elem.value))


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The (start, end exclusive) a ``Range: bytes=…`` header asks of ``size`` bytes;
    None for no Range (or one this node ignores, as HTTP allows: not bytes, or several
    ranges); Problem 416 if it lies outside the value."""
    if not header:
        return None
    m = re.fullmatch(r"\s*bytes\s*=\s*([0-9]*)\s*-\s*([0-9]*)\s*", header)
    if not m or not (m[1] or m[2]):
        return None
    if m[1]:
        start = int(m[1])
        end = min(int(m[2]) + 1, size) if m[2] else size
        if m[2] and int(m[2]) < start:
            return None  # invalid: ignored (RFC 9110 14.1.1)
    else:  # the last N bytes
        start, end = max(size - int(m[2]), 0), size
    if start >= size or start >= end:
        raise Problem(
            416,
            "Range Not Satisfiable",
            f"the value has {size} bytes: {header.strip()} lies outside it",
            headers={"Content-Range": f"bytes */{size}"},
        )
    return start, end


def multipart(value: BulkValue, boundary: str, content_range: str | None) -> Iterator[bytes]:
    """The multipart/related body: one application/octet-stream part."""
    extra = f"Content-Range: {content_range}\r\n" if content_range else ""
    yield f"--{boundary}\r\nContent-Type: {OCTET}\r\n{extra}\r\n".encode()
    yield from value.chunks()
    yield f"\r\n--{boundary}--\r\n".encode()
