"""A Deflated PS3.10 dataset inflated a piece at a time (a few MB stored can inflate to
gigabytes: callers stop reading when they have enough), and read whole only if it
inflates to what its image attributes say (the job path's inputs).

The store keeps a Deflated instance as received; the HTTP side (WADO-RS, admin uploads)
and the jobs both inflate it through :func:`inflated_pieces`, never through pydicom,
which inflates the whole file in memory.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterator
from os import PathLike
from typing import BinaryIO

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filereader import read_file_meta_info
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import ExplicitVRLittleEndian

from dicom_node.index.header import INFLATE_MAX, dataset_offset

STEP = 1 << 20  # bytes read, and at most bytes out, per piece


class InflatesTooFar(ValueError):
    """A Deflated dataset inflates to more than its image attributes allow."""


def inflated_pieces(fh: BinaryIO) -> Iterator[bytes]:
    """The inflated dataset of the Deflated PS3.10 file open as ``fh`` (from its start),
    at most :data:`STEP` bytes per piece. Raises ValueError if it is not a PS3.10 file
    with a File Meta group length, zlib.error if the dataset does not inflate."""
    fh.seek(dataset_offset(fh.read(144)))
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    pending = b""
    while not inflater.eof:
        pending = pending or fh.read(STEP)
        if not pending:
            break
        yield inflater.decompress(pending, STEP)
        pending = inflater.unconsumed_tail
    if tail := inflater.flush():
        yield tail


def _whole(ds: Dataset, keyword: str) -> int:
    """A count attribute as an integer (1 if absent, empty or not a whole number)."""
    try:
        return max(int(str(ds.get(keyword, "") or 1).strip()), 1)
    except ValueError:
        return 1


def pixel_bytes(ds: Dataset) -> int:
    """Bytes the pixels of ``ds`` take as its image attributes say (0 if it has no Rows)."""
    if "Rows" not in ds:
        return 0
    keywords = ("Rows", "Columns", "SamplesPerPixel", "NumberOfFrames")
    rows, cols, samples, frames = (_whole(ds, k) for k in keywords)
    return rows * cols * samples * frames * ((_whole(ds, "BitsAllocated") + 7) // 8)


def read_deflated(path: str | PathLike[str]) -> Dataset:
    """The Deflated PS3.10 file at ``path`` read as Explicit VR Little Endian, holding
    at most what its image attributes allow inflated: its pixels, and
    :data:`~dicom_node.index.header.INFLATE_MAX` bytes for every other element (the
    attributes are read from the first ``INFLATE_MAX`` bytes). Raises
    :class:`InflatesTooFar` beyond that, ValueError if it is not a PS3.10 file,
    zlib.error if it does not inflate, what pydicom raises on a malformed dataset."""
    meta = read_file_meta_info(path)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buf = io.BytesIO()
    buf.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(buf, meta, enforce_standard=True)
    start = buf.tell()
    cap: int | None = None  # known once INFLATE_MAX bytes are in (or all of them)
    with open(path, "rb") as fh:
        for piece in inflated_pieces(fh):
            buf.write(piece)
            if cap is None and buf.tell() - start >= INFLATE_MAX:
                pixels = _pixels_so_far(buf)
                cap = pixels + INFLATE_MAX
            if cap is not None and buf.tell() - start > cap:
                raise InflatesTooFar(
                    f"the Deflated dataset inflates past {cap / 2**20:.1f} MB, more than "
                    f"its image attributes allow ({pixels:,} bytes of pixels and "
                    f"{INFLATE_MAX // 2**20} MB for the other elements)"
                )
    buf.seek(0)
    return dcmread(buf)


def _pixels_so_far(buf: io.BytesIO) -> int:
    """:func:`pixel_bytes` of the dataset being inflated into ``buf``, from the header
    in the bytes so far (0 if they cut it off)."""
    end = buf.tell()
    buf.seek(0)
    try:
        header = dcmread(buf, stop_before_pixels=True)
    except Exception:  # noqa: BLE001 - a header cut off by INFLATE_MAX: no attributes
        header = Dataset()
    buf.seek(end)
    return pixel_bytes(header)
