"""Seeded mutations of encoded datasets: truncations, byte flips, lying lengths, wrong
VRs, spliced garbage and nested sequences (for ``test_fuzz_datasets``)."""

from __future__ import annotations

import heapq
import random
import struct
from collections.abc import Callable

from dicom_node.store.walk import LONG_VRS, SHORT_VRS

# walk.py's VRs merged in alphabetical order (FL before FD, as listed there), less those
# added to DICOM after the fuzz seeds were fixed: a seed draws the same VR as before.
VRS = [vr for vr in heapq.merge(SHORT_VRS, LONG_VRS) if vr not in (b"OV", b"SV", b"UV")]


def _vr_offsets(body: bytes) -> list[int]:
    """Offsets of what look like explicit VRs (after a 4-byte tag)."""
    return [i for i in range(4, len(body) - 2) if body[i : i + 2] in VRS and i % 2 == 0]


def truncate(rng: random.Random, body: bytes) -> bytes:
    return body[: rng.randrange(1, len(body))]


def flip_bytes(rng: random.Random, body: bytes) -> bytes:
    out = bytearray(body)
    for _ in range(rng.randint(1, 8)):
        out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out)


def lying_length(rng: random.Random, body: bytes) -> bytes:
    """A length field (after a VR, or at an even offset) set to a lie."""
    offsets = _vr_offsets(body)
    at = (
        rng.choice(offsets) + 2
        if offsets and rng.random() < 0.8
        else rng.randrange(0, len(body) - 4, 2)
    )
    lie = rng.choice([0, 1, 0xFFFF, 0xFFFFFFFF, 2**31, len(body), rng.randrange(2**32)])
    out = bytearray(body)
    if body[at - 2 : at] in (b"OB", b"OW", b"SQ", b"UN", b"UT", b"OF", b"UC"):
        out[at + 2 : at + 6] = struct.pack("<L", lie)
    else:
        out[at : at + 2] = struct.pack("<H", lie & 0xFFFF)
    return bytes(out)


def wrong_vr(rng: random.Random, body: bytes) -> bytes:
    offsets = _vr_offsets(body)
    if not offsets:
        return flip_bytes(rng, body)
    at = rng.choice(offsets)
    new = rng.choice(VRS + [b"ZZ", b"\0\0", b"ob"])
    return body[:at] + new + body[at + 2 :]


def splice_garbage(rng: random.Random, body: bytes) -> bytes:
    at = rng.randrange(len(body))
    return body[:at] + rng.randbytes(rng.randint(1, 64)) + body[at:]


def nested(rng: random.Random, body: bytes) -> bytes:
    """A (0040,A730) sequence nested 1-200 deep, defined or undefined lengths, before
    Pixel Data (or at the end)."""
    depth = rng.choice([1, 2, 10, 63, 64, 65, 100, 200])
    at = body.rfind(b"\xe0\x7f\x10\x00")
    at = len(body) if at < 0 else at
    if rng.random() < 0.5:
        seq = b"\x40\x00\x30\xa7SQ\0\0" + b"\xff" * 4 + b"\xfe\xff\x00\xe0" + b"\xff" * 4
        end = b"\xfe\xff\x0d\xe0\0\0\0\0" + b"\xfe\xff\xdd\xe0\0\0\0\0"
        inner = seq * depth + end * depth
    else:
        inner = b""
        for _ in range(depth):
            item = b"\xfe\xff\x00\xe0" + struct.pack("<L", len(inner)) + inner
            inner = b"\x40\x00\x30\xa7SQ\0\0" + struct.pack("<L", len(item)) + item
    return body[:at] + inner + body[at:]


MUTATIONS: list[Callable[[random.Random, bytes], bytes]] = [
    truncate,
    flip_bytes,
    lying_length,
    wrong_vr,
    splice_garbage,
    nested,
]


def mutate(rng: random.Random, body: bytes) -> tuple[str, bytes]:
    """One or two mutations of ``body``; returns their names and the result."""
    names, out = [], body
    for _ in range(1 if rng.random() < 0.7 else 2):
        m = rng.choice(MUTATIONS)
        names.append(m.__name__)
        out = m(rng, out)
    return "+".join(names), out
