"""Where the value of an element inside sequences lies in a stored Part 10 file: the
target of a nested BulkDataURI (WADO-RS bulk data, :mod:`dicom_node.http.bulk`).

Found by the receive path's structure walk (:mod:`.walk`): element and item headers
only, no value read, stopping at the element; the offset is the file's, so the value
is streamed from the file like a top-level one.
"""

from __future__ import annotations

from pathlib import Path

from pydicom.uid import UID

from dicom_node.store.walk import (
    ITEM,
    NOT_FOUND,
    SEQUENCE_END,
    SEQUENCE_TAGS,
    UNDEFINED_LENGTH,
    ElementWalk,
    Located,
    StructureError,
    is_walked,
    map_part10,
    tag_name,
)


def locate_nested(
    path: Path | str, transfer_syntax: str, steps: list[tuple[int, int]], tag: int
) -> Located | None:
    """Where the value of element ``tag`` lies in item ``n`` (0-based) of sequence
    ``seq``, for each ``(seq, n)`` of ``steps`` in turn from the top level: a
    :class:`Located` as :func:`.check.locate_element` gives (``offset`` -1 if there is
    no such element, sequence or item). None if the dataset is not walked (deflated).
    Raises :class:`StructureError` as the walk does."""
    ts = UID(transfer_syntax)
    if not is_walked(ts):
        return None
    with map_part10(path) as (buf, offset):
        start, end, implicit = offset, len(buf), ts.is_implicit_VR
        targets = [seq for seq, _ in steps] + [tag]
        for k, target in enumerate(targets):
            found = ElementWalk(buf, ts).find(target, start, end, implicit)
            if k == len(steps) or found.offset < 0:
                return found
            vr = found.vr
            undefined = found.length < 0 or found.length == UNDEFINED_LENGTH
            implicit_sq = vr is None and (undefined or target in SEQUENCE_TAGS)
            if not (vr == b"SQ" or implicit_sq or (vr == b"UN" and undefined)):
                return NOT_FOUND  # not a sequence (UN of undefined length: an implicit one)
            implicit = implicit or vr == b"UN"
            seq_end = None if undefined else found.offset + found.length
            item = _item(ElementWalk(buf, ts), found.offset, seq_end, steps[k][1], implicit)
            if item is None:
                return NOT_FOUND
            start, end = item
        return NOT_FOUND  # (not reached)


def _item(
    walk: ElementWalk, pos: int, end: int | None, n: int, implicit: bool
) -> tuple[int, int | None] | None:
    """(start, end) of item ``n`` (0-based) of the sequence whose value starts at
    ``pos`` and ends at ``end`` (None: at its delimiter); None if it has fewer items.
    An item's end is None when its length is undefined (it ends at its delimiter)."""
    limit = walk.size if end is None else end
    k = 0
    while pos + 8 <= limit:
        group, elem, length = walk.header.unpack_from(walk.buf, pos)
        tag = group << 16 | elem
        pos += 8
        if tag == SEQUENCE_END:
            return None
        if tag != ITEM:
            raise StructureError(f"sequence holds {tag_name(tag)} at byte {pos - 8}")
        item_end = None if length == UNDEFINED_LENGTH else pos + length
        if k == n:
            return pos, item_end
        pos = walk.dataset(pos, None, 1, implicit) if item_end is None else item_end
        k += 1
    return None
