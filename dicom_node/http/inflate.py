"""A Deflated PS3.10 dataset inflated a piece at a time (a few MB stored can inflate to
gigabytes: callers stop reading when they have enough)."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import BinaryIO

from dicom_node.index.header import dataset_offset

STEP = 1 << 20  # bytes read, and at most bytes out, per piece


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
