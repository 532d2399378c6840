"""WADO-RS bulk data (``.../instances/{i}/bulk/{tag}``): the value of one binary
element, the target of a BulkDataURI in the instance's metadata. An element inside
sequences is named by its path: ``bulk/{sequence}/{item}/{tag}``, item numbers from 1,
as deep as it lies (``bulk/00880200/1/7FE00010``: the Pixel Data of the first item of
the Icon Image Sequence).

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
from pydicom.sequence import Sequence
from pydicom.uid import DeflatedExplicitVRLittleEndian

from dicom_node.http.problem import Problem
from dicom_node.http.wado import CHUNK, Stored, check_files, decoded_bytes, read_dataset
from dicom_node.index.header import INFLATE_MAX
from dicom_node.store.check import StructureError, locate_element
from dicom_node.store.nested import locate_nested

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


def parse_path(text: str) -> tuple[list[tuple[int, int]], int]:
    """The (sequence tag, 0-based item) steps and the element tag of a bulk data path
    (``TAG`` or ``SEQ/ITEM/…/TAG``, items from 1); Problem 404 if it is not one."""
    parts = text.split("/")
    if len(parts) % 2 == 0 or len(parts) > 2 * 64 + 1:
        raise Problem(
            404, "Not Found", f"{text!r} is not a bulk data path (TAG or SEQUENCE/ITEM/…/TAG)"
        )
    steps = []
    for seq, item in zip(parts[:-1:2], parts[1::2], strict=True):
        if not re.fullmatch(r"[1-9][0-9]{0,8}", item):
            raise Problem(404, "Not Found", f"{item!r} is not an item number (from 1)")
        steps.append((_tag(seq), int(item) - 1))
    return steps, _tag(parts[-1])


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


def locate(inst: Stored, text: str, limit: int) -> BulkValue:
    """Where the value of element ``text`` (8 hex digits, or a path through sequences:
    :func:`parse_path`) lies; Problem 404 if the instance has no such binary element. A
    Deflated dataset is inflated in memory: Problem 406 if its pixels take more than
    ``limit`` bytes."""
    steps, tag = parse_path(text)
    check_files([inst])
    if inst.transfer_syntax == DeflatedExplicitVRLittleEndian:
        return _inflated_value(inst, steps, tag, text, limit)
    try:
        if steps:
            found = locate_nested(inst.path, inst.transfer_syntax, steps, tag)
        else:
            found = locate_element(inst.path, inst.transfer_syntax, tag)
    except (StructureError, ValueError) as err:
        log.error("WADO-RS bulk data of instance %s of study %s: %s", inst.sop, inst.study, err)
        raise Problem(
            422, "Unprocessable Content", f"the stored dataset cannot be walked: {err}"
        ) from None
    if found is None:  # not a syntax the walk reads
        return _inflated_value(inst, steps, tag, text, limit)
    if found.offset < 0:
        raise Problem(404, "Not Found", f"instance has no bulk data element {text}")
    if found.length < 0 or not _is_bulk(tag, found.vr):
        raise Problem(404, "Not Found", f"element {text} is not bulk data")
    return BulkValue(inst.path, found.offset, found.length)


def _inflated_value(
    inst: Stored, steps: list[tuple[int, int]], tag: int, text: str, limit: int
) -> BulkValue:
    size = decoded_bytes(inst)
    if size > limit:  # a few MB stored may honestly say gigabytes of pixels
        raise Problem(
            406,
            "Not Acceptable",
            f"the instance is stored Deflated: reading its bulk data means inflating "
            f"{size // 2**20} MB of pixels in memory, more than http.max_decoded_mb "
            f"({limit // 2**20} MB)",
        )
    ds = read_dataset(inst, cap=size + INFLATE_MAX)
    for seq, n in steps:
        items = ds[seq].value if seq in ds else None
        if not isinstance(items, Sequence) or n >= len(items):
            raise Problem(404, "Not Found", f"instance has no bulk data element {text}")
        ds = items[n]
    elem = ds.get(tag)
    if elem is None:
        raise Problem(404, "Not Found", f"instance has no bulk data element {text}")
    if not isinstance(elem.value, bytes | bytearray):
        raise Problem(404, "Not Found", f"element {text} is not bulk data")
    return BulkValue(inst.path, 0, len(elem.value), bytes(elem.value))


HUGE = 1 << 63  # any position past every value (a number of more than 18 digits)


def _number(digits: str) -> int | None:
    """A Range position; :data:`HUGE` for one of more than 18 digits (int() refuses
    strings past 4300 digits: a 500 before)."""
    if not digits:
        return None
    return HUGE if len(digits.lstrip("0")) > 18 else int(digits)


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The (start, end exclusive) a ``Range: bytes=…`` header asks of ``size`` bytes;
    None for no Range (or one this node ignores, as HTTP allows: not bytes, or several
    ranges); Problem 416 if it lies outside the value."""
    if not header:
        return None
    m = re.fullmatch(r"\s*bytes\s*=\s*([0-9]*)\s*-\s*([0-9]*)\s*", header)
    if not m or not (m[1] or m[2]):
        return None
    first, last = _number(m[1]), _number(m[2])
    if first is not None:
        start = first
        end = min(last + 1, size) if last is not None else size
        if last is not None and last < start:
            return None  # invalid: ignored (RFC 9110 14.1.1)
    else:  # the last N bytes
        start, end = max(size - (last or 0), 0), size
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
