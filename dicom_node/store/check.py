"""A cheap structural check of a received dataset, before it is stored: no pixel decode.

It walks the encoded elements of the spooled file once (:class:`.walk.ElementWalk`:
memory-mapped; values are skipped, not read) and refuses what a reader could not read
back as sent: malformed elements, items, sequences and encapsulated Pixel Data (the
walk's :class:`StructureError`), and Pixel Data in a native transfer syntax that is
undefined-length, or shorter than Rows x Columns x Samples per Pixel x Bits Allocated
/ 8 x Number of Frames (:class:`PixelDataMismatch`).

The same walk locates a top-level element's value (:func:`locate_element`), the Pixel
Data's (:func:`locate_pixels`), and counts the elements before Pixel Data
(:func:`count_within`). Deflated datasets are not walked
(their header was inflated and parsed already).
"""

from __future__ import annotations

import mmap
from pathlib import Path

from pydicom.uid import UID

from dicom_node.store.walk import (
    COLLECT_MAX,
    MAX_DEPTH,
    PIXEL_DATA,
    Collected,
    ElementWalk,
    Located,
    PixelDataMismatch,
    StructureError,
    TooManyElements,
    is_walked,
    map_part10,
)

__all__ = [
    "COLLECT_MAX",
    "MAX_DEPTH",
    "Collected",
    "Located",
    "PixelDataMismatch",
    "StructureError",
    "TooManyElements",
    "check_dataset",
    "check_file",
    "count_within",
    "locate_element",
    "locate_pixels",
]

# Float and Double Float Pixel Data: pydicom's stop_before_pixels stops at them too.
LATER_PIXELS = frozenset({0x7FE00009, PIXEL_DATA})


def check_dataset(
    buf: bytes | mmap.mmap,
    transfer_syntax: str,
    offset: int = 0,
    collect: frozenset[int] = frozenset(),
) -> Collected | None:
    """Check the dataset encoded in ``buf[offset:]`` in ``transfer_syntax``; raise
    :class:`StructureError` or :class:`PixelDataMismatch`. Return the top-level elements
    of ``collect`` found on the way (a value over :data:`COLLECT_MAX` bytes as None,
    unread), or None if the dataset is not walked (deflated)."""
    ts = UID(transfer_syntax)
    if not is_walked(ts):
        return None
    walk = ElementWalk(buf, ts, collect)
    walk.dataset(offset, len(buf), 0, walk.implicit)
    walk.check_pixels()
    return walk.collected


def check_file(
    path: Path | str, transfer_syntax: str, collect: frozenset[int] = frozenset()
) -> Collected | None:
    """:func:`check_dataset` on a Part 10 file whose File Meta starts with its group
    length (as the receive path writes it)."""
    with map_part10(path) as (buf, offset):
        return check_dataset(buf, transfer_syntax, offset, collect)


def locate_element(path: Path | str, transfer_syntax: str, tag: int) -> Located | None:
    """Where the value of top-level element ``tag`` lies in the Part 10 file at ``path``
    (a file offset), found by the structure walk, which reads element headers only and
    stops at that element; None if the dataset is not walked (deflated). Raises
    :class:`StructureError` as the walk does (up to that element)."""
    ts = UID(transfer_syntax)
    if not is_walked(ts):
        return None
    with map_part10(path) as (buf, offset):
        walk = ElementWalk(buf, ts)
        return walk.find(tag, offset, len(buf), walk.implicit)


def locate_pixels(path: Path | str, transfer_syntax: str, most: int = -1) -> Located | None:
    """Where the value of the top-level Pixel Data of the Part 10 file at ``path`` lies,
    or of its Float or Double Float Pixel Data (the first of the three it has): found
    by the structure walk, which reads element headers only and stops at that element's
    (an encapsulated value's items are not walked: its length is undefined). ``offset``
    -1 if it has none; None if the dataset is not walked (deflated). Raises
    :class:`TooManyElements` past ``most`` elements before it (-1: no limit), or
    :class:`StructureError` as the walk does (up to it)."""
    ts = UID(transfer_syntax)
    if not is_walked(ts):
        return None
    with map_part10(path) as (buf, offset):
        walk = ElementWalk(buf, ts)
        walk.elements_left = most
        return walk.find_header(0x7FE00008, offset, len(buf), walk.implicit, LATER_PIXELS)


def count_within(path: Path | str, transfer_syntax: str, most: int) -> None:
    """Raise :class:`TooManyElements` if the dataset of the Part 10 file at ``path``
    holds more than ``most`` elements before its Pixel Data (at every level; headers
    only are read, and the walk stops at Pixel Data), or :class:`StructureError` as the
    walk does. Not walked (deflated): nothing raised."""
    locate_pixels(path, transfer_syntax, most)  # stops at Pixel Data
