"""A seeded mutation fuzzer over a valid association's PDU stream."""

from __future__ import annotations

import contextlib
import random
import struct

from tests.network import pdus


def _lie_about_length(rng: random.Random, stream: list[bytes]) -> None:
    i = rng.randrange(len(stream))
    p = bytearray(stream[i])
    if len(p) >= 6:
        real = len(p) - 6
        p[2:6] = struct.pack(
            ">I",
            rng.choice(
                [
                    0,
                    1,
                    real - 1,
                    real + 1,
                    real * 2,
                    1 << 20,
                    (1 << 20) + 1,
                    16 << 20,
                    0x7FFFFFFF,
                    0xFFFFFFFF,
                ]
            )
            & 0xFFFFFFFF,
        )
    stream[i] = bytes(p)


def _pdv_fields(rng: random.Random, stream: list[bytes]) -> None:
    """Unknown context id, lying PDV item length or control byte in a P-DATA."""
    data = [i for i, p in enumerate(stream) if p[:1] == b"\x04" and len(p) > 12]
    if not data:
        return
    i = rng.choice(data)
    p = bytearray(stream[i])
    what = rng.randrange(3)
    if what == 0:
        p[10] = rng.choice([0, 2, 5, 99, 127, 255])  # presentation context id
    elif what == 1:
        p[6:10] = struct.pack(">I", rng.choice([0, 1, 2, len(p), 0xFFFFFFFF]))
    else:
        p[11] = rng.randrange(256)  # message control header
    stream[i] = bytes(p)


def _flip(rng: random.Random, stream: list[bytes]) -> None:
    i = rng.randrange(len(stream))
    p = bytearray(stream[i])
    if not p:  # cut to nothing by an earlier mutation
        return
    for _ in range(rng.randint(1, 8)):
        p[rng.randrange(len(p))] = rng.randrange(256)
    stream[i] = bytes(p)


def _splice(rng: random.Random, stream: list[bytes]) -> None:
    i = rng.randrange(len(stream))
    p = stream[i]
    a, b = sorted(rng.randrange(len(p) + 1) for _ in range(2))
    what = rng.randrange(3)
    if what == 0:
        stream[i] = p[:a] + p[b:]  # cut
    elif what == 1:
        stream[i] = p[:a] + rng.randbytes(rng.randint(1, 64)) + p[a:]  # insert
    else:
        stream[i] = p[:a]  # truncate


def _reorder(rng: random.Random, stream: list[bytes]) -> None:
    what = rng.randrange(3)
    i, j = rng.randrange(len(stream)), rng.randrange(len(stream))
    if what == 0:
        stream[i], stream[j] = stream[j], stream[i]
    elif what == 1:
        stream.insert(j, stream[i])  # duplicate
    elif len(stream) > 1:
        del stream[i]


MUTATIONS = [_lie_about_length, _pdv_fields, _flip, _splice, _reorder]


def mutate(rng: random.Random, stream: list[bytes]) -> list[bytes]:
    out = list(stream)
    for _ in range(rng.randint(1, 3)):
        rng.choice(MUTATIONS)(rng, out)
    return out


def play(port: int, stream: list[bytes], read_timeout: float = 0.5) -> list[pdus.Pdu]:
    """Send the first PDU, give the node a moment to answer, then send the rest; return
    what came back before the node closed or went quiet."""
    got: list[pdus.Pdu] = []
    with pdus.connect(port) as sock, contextlib.suppress(OSError):  # incl. timeouts
        sock.sendall(stream[0])
        reader = pdus.read_pdus(sock, read_timeout)
        first = next(reader, None)
        if first is not None:
            got.append(first)
        for chunk in stream[1:]:
            sock.sendall(chunk)
        got.extend(reader)
    return got
