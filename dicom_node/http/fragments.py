"""Where each frame of encapsulated Pixel Data lies (WADO-RS frames, :mod:`.frames`),
found once per request from the Extended or Basic Offset Table or one walk of the
fragments' item headers, and checked: an offset table that lies (offsets repeated,
backwards, overlapping, past the file) or a walk past :data:`MAX_FRAGMENTS` is refused,
so that a request never costs more than the file it reads.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, BinaryIO

from pydicom.encaps import parse_basic_offsets

from dicom_node.http.problem import Problem

if TYPE_CHECKING:
    from dicom_node.http.frames import PixelLayout

UNDEFINED = 0xFFFFFFFF
MAX_FRAGMENTS = 1_000_000  # fragments walked in one request (a frame, or the whole value)
HEAD = 1 << 20  # bytes of a frame read for its codestream's header (JPEG SOF, JPEG 2000 SIZ)
# What reading encapsulated Pixel Data that is not what it says raises.
WALK_ERRORS = (ValueError, KeyError, IndexError, EOFError, OverflowError, struct.error)


class Fragments:
    """Where the fragments of each frame of encapsulated Pixel Data lie, found once per
    request: from the Extended Offset Table, else the Basic Offset Table (a frame's
    fragments run up to the next frame's offset), else one walk of the items' headers
    (one fragment per frame, or one frame of all of them; with more fragments than
    frames, a frame ends with the fragment whose last 10 bytes hold a JPEG end marker,
    as pydicom decides, so only those bytes of the fragments are read). pydicom's
    get_frame parses the table, or walks every fragment, for each frame it is asked
    for: frames² work for all of them."""

    def __init__(self, fh: BinaryIO, pixels: PixelLayout) -> None:
        self.fh, self.frames = fh, pixels.frames
        self.value_offset, self.extended = pixels.value_offset, pixels.extended_offsets
        self.starts: list[int] = []  # item of each frame's first fragment (file offsets)
        self.lengths: list[int] | None = None  # each frame's one fragment (Extended)
        self.single = False  # one frame of all the fragments
        self.counts: list[int] | None = None  # fragments of each frame (end markers)
        self.table = "Basic Offset Table"
        self.size = os.fstat(fh.fileno()).st_size
        fh.seek(pixels.value_offset)
        basic = parse_basic_offsets(fh)
        first = fh.tell()  # the first fragment's item: the tables' offsets start here
        if self.extended:
            count = len(self.extended[0]) // 8
            self.starts = [first + o for o in struct.unpack(f"<{count}Q", self.extended[0])]
            count = len(self.extended[1]) // 8
            self.lengths = list(struct.unpack(f"<{count}Q", self.extended[1]))
            self.table = "Extended Offset Table"
            _check_table(self.starts, self.lengths, self.size, self.table)
        elif basic:
            self.starts = [first + o for o in basic]
            _check_table(self.starts, None, 0, self.table)
        else:
            offsets = _items(fh)
            count = len(offsets)
            if count == self.frames:
                self.starts, self.lengths = offsets, None
                self.table = "fragments"
            elif self.frames == 1:
                self.starts, self.single = [first], True
            else:
                self.table = "fragments' end markers"
                self.starts, self.counts = _by_end_markers(fh, offsets)

    def spans(self, n: int) -> list[tuple[int, int]]:
        """(file offset, length) of each fragment of frame ``n`` (1-based), found from
        the items' headers (8 bytes each): its bytes are read as they are sent."""
        if n > len(self.starts):
            raise ValueError(f"no frame {n} in the {self.table}")
        start = self.starts[n - 1]
        if self.lengths is not None:  # Extended Offset Table: one fragment, its length
            found = [(start + 8, self.lengths[n - 1])]
        else:
            count = 1 if self.table == "fragments" else None
            if self.counts is not None:
                count = self.counts[n - 1]
            end = None  # the Basic Offset Table's next frame, or all that follows
            if count is None and n < len(self.starts) and not self.single:
                end = self.starts[n]
            found = []
            for item, length in _walk(self.fh, start):
                found.append((item + 8, length))
                if len(found) == count or (end is not None and item + 8 + length >= end):
                    break
                if len(found) >= MAX_FRAGMENTS:
                    raise ValueError(f"frame {n} has more than {MAX_FRAGMENTS} fragments")
        if not found:
            raise ValueError(f"no fragment at the offset of frame {n}")
        if found[-1][0] + found[-1][1] > self.size:
            raise EOFError("the Pixel Data ends inside the frame")
        return found

    def read(self, spans: list[tuple[int, int]]) -> bytes:
        """The bytes of fragments ``spans`` joined (a frame to decode or check)."""
        parts = []
        for offset, length in spans:
            self.fh.seek(offset)
            parts.append(self.fh.read(length))
        return b"".join(parts)


def _walk(fh: BinaryIO, at: int) -> Iterator[tuple[int, int]]:
    """(file offset, value length) of each fragment's item from ``at`` up to the
    sequence delimiter; ValueError where no item is, EOFError if the file ends first."""
    fh.seek(at)
    while True:
        head = fh.read(8)
        if len(head) < 8:
            raise EOFError("the encapsulated Pixel Data ends without its delimiter")
        tag, length = struct.unpack("<LL", head)
        if tag == 0xE0DDFFFE:  # (FFFE,E0DD): the end
            return
        if tag != 0xE000FFFE or length == UNDEFINED:
            raise ValueError(f"the encapsulated Pixel Data holds no item at byte {at}")
        yield at, length
        at += 8 + length
        fh.seek(at)


def _check_table(starts: list[int], lengths: list[int] | None, size: int, table: str) -> None:
    """ValueError unless the frames of an offset table start in strictly increasing
    order (PS3.5 A.4: each frame has its own fragments) and, with ``lengths`` (an
    Extended Offset Table), each fragment ends before the next frame and the file. A
    table of one offset repeated made every frame asked for the same large fragment:
    a response of many times the file."""
    for k, (a, b) in enumerate(zip(starts, starts[1:], strict=False), 1):
        if b <= a:
            raise ValueError(f"the {table} does not increase at frame {k + 1}")
        if lengths is not None and k <= len(lengths) and a + 8 + lengths[k - 1] > b:
            raise ValueError(f"frame {k} of the {table} overlaps frame {k + 1}")
    last = len(starts) - 1
    if lengths and starts and len(lengths) > last and starts[-1] + 8 + lengths[last] > size:
        raise ValueError(f"the last frame of the {table} runs past the end of the file")


def _items(fh: BinaryIO) -> list[int]:
    """File offsets of the fragments' items, from the current position to the sequence
    delimiter, reading 8 bytes per item; ValueError past :data:`MAX_FRAGMENTS` (a few MB
    of empty fragments took seconds of CPU per request)."""
    items: list[int] = []
    for item, _ in _walk(fh, fh.tell()):
        if len(items) >= MAX_FRAGMENTS:
            raise ValueError(f"more than {MAX_FRAGMENTS} fragments: this node walks no more")
        items.append(item)
    return items


def _by_end_markers(fh: BinaryIO, items: list[int]) -> tuple[list[int], list[int]]:
    """(first item, number of fragments) of each frame of fragments ``items`` (their
    items' file offsets), a frame ending with the fragment whose last 10 bytes hold a
    JPEG EOI/EOC marker (pydicom's rule; fragments left after the last marker make one
    more frame)."""
    starts: list[int] = []
    counts: list[int] = []
    count = 0
    for item in items:
        fh.seek(item + 4)
        (length,) = struct.unpack("<L", fh.read(4))
        fh.seek(item + 8 + max(length - 10, 0))
        if count == 0:
            starts.append(item)
        count += 1
        if b"\xff\xd9" in fh.read(min(length, 10)):
            counts.append(count)
            count = 0
    if count:
        counts.append(count)
    return starts, counts


@contextmanager
def walk_or_422(frame: int | None = None) -> Iterator[None]:
    """Problem 422 for an error of :data:`WALK_ERRORS` in the block: the encapsulated
    Pixel Data cannot be walked (or frame ``frame`` cannot be found in it)."""
    try:
        yield
    except WALK_ERRORS as err:
        if frame is None:
            raise Problem(
                422, "Unprocessable Content", f"the encapsulated Pixel Data cannot be walked: {err}"
            ) from None
        raise Problem(
            422,
            "Unprocessable Content",
            f"frame {frame} cannot be found in the encapsulated Pixel Data: {err}",
            frame=str(frame),
        ) from None


def frame_spans(fragments: Fragments, n: int) -> list[tuple[int, int]]:
    """Where the fragments of frame ``n`` lie; Problem 422 if they cannot be found."""
    with walk_or_422(n):
        return fragments.spans(n)


def frame_head(fragments: Fragments, n: int, size: int = HEAD) -> bytes:
    """The first ``size`` bytes of frame ``n`` (all of it if shorter), read across its
    fragments: enough for its codestream's header, where a 128 MB frame read whole to
    check it held 128 MB. Problem 422 as :func:`frame_spans`."""
    parts = []
    for offset, length in frame_spans(fragments, n):
        if size <= 0:
            break
        fragments.fh.seek(offset)
        parts.append(fragments.fh.read(min(length, size)))
        size -= length
    return b"".join(parts)


def frame_pieces(fragments: Fragments, n: int, size: int = HEAD) -> Iterator[bytes]:
    """The bytes of frame ``n``, at most ``size`` at a time (never joined: a frame may
    be most of a large file); Problem 422 as :func:`frame_spans`."""
    for offset, length in frame_spans(fragments, n):
        fragments.fh.seek(offset)
        while length > 0:
            piece = fragments.fh.read(min(length, size))
            if not piece:
                return  # the file shrank meanwhile: what was read is counted
            length -= len(piece)
            yield piece


def pixel_data_end(fh: BinaryIO, value_offset: int) -> int:
    """The file offset just past encapsulated Pixel Data whose value (its first item)
    starts at ``value_offset`` (past its sequence delimiter), found by walking its
    items' headers; ValueError or EOFError as the walk."""
    fh.seek(value_offset)
    parse_basic_offsets(fh)
    _items(fh)
    return fh.tell()
