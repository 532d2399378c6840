"""The incremental multipart reader: any chunking gives the same parts; bad bodies fail."""

from __future__ import annotations

import os
import random

import pytest

from dicom_node.http.multipart import MultipartError, MultipartReader, check_boundary


class Sink:
    def __init__(self, headers: object, out: list) -> None:
        self.headers = headers
        self.data = bytearray()
        self.closed = False
        out.append(self)

    def write(self, data: memoryview) -> None:
        self.data += data

    def close(self) -> None:
        self.closed = True


def body(
    boundary: bytes, parts: list[bytes], preamble: bytes = b"", epilogue: bytes = b""
) -> bytes:
    out = preamble
    for p in parts:
        out += b"--" + boundary + b"\r\nContent-Type: application/dicom\r\n\r\n" + p + b"\r\n"
    return out + b"--" + boundary + b"--\r\n" + epilogue


def read(data: bytes, boundary: bytes, chunk: int) -> list[Sink]:
    out: list[Sink] = []
    reader = MultipartReader(boundary, lambda h: Sink(h, out))
    for i in range(0, len(data), chunk):
        reader.feed(data[i : i + chunk])
    reader.finish()
    return out


# Part contents that nearly contain the delimiter, CRLFs and dashes at their edges.
PARTS = [
    os.urandom(3000).replace(b"\r\n--abc", b""),
    b"\r\n--bound",
    b"",
    b"--abc\r\n--ab",
    b"x" * 70000 + b"\r\n",
]


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 6, 7, 8, 9, 13, 64, 1000, 65536, 10**7])
def test_every_chunking_gives_the_same_parts(chunk: int) -> None:
    data = body(b"abc", PARTS, preamble=b"ignored preamble\r\n", epilogue=b"trailing")
    sinks = read(data, b"abc", chunk)
    assert [bytes(s.data) for s in sinks] == PARTS
    assert all(s.closed for s in sinks)
    assert all(s.headers.get_content_type() == "application/dicom" for s in sinks)


@pytest.mark.parametrize("seed", range(40))
def test_random_chunk_edges_give_the_same_parts(seed: int) -> None:
    """Chunks of random sizes (around the delimiter's length, and large ones), so that
    delimiters fall across every kind of chunk edge."""
    rng = random.Random(seed)
    data = body(b"abc", PARTS, preamble=b"p\r\n", epilogue=b"e")
    out: list[Sink] = []
    reader = MultipartReader(b"abc", lambda h: Sink(h, out))
    i = 0
    while i < len(data):
        n = rng.choice([rng.randint(1, 16), rng.randint(1, 5000)])
        reader.feed(data[i : i + n])
        i += n
    reader.finish()
    assert [bytes(s.data) for s in out] == PARTS
    assert all(s.closed for s in out)


def test_part_without_headers_and_transport_padding() -> None:
    data = b"--b  \r\n\r\nhello\r\n--b--"
    sinks = read(data, b"b", 1)
    assert [bytes(s.data) for s in sinks] == [b"hello"]
    assert sinks[0].headers.get_content_type() == "text/plain"  # RFC 2046 default


def test_truncated_body_fails_at_finish() -> None:
    data = body(b"abc", [b"0123456789"])
    for cut in (len(data) - 4, len(data) // 2, 20):
        with pytest.raises(MultipartError, match="truncated"):
            read(data[:cut], b"abc", 5)


def test_wrong_boundary_finds_no_part() -> None:
    with pytest.raises(MultipartError, match="no part found"):
        read(body(b"abc", [b"data"]), b"other", 4)


def test_garbage_after_a_delimiter_is_refused() -> None:
    with pytest.raises(MultipartError, match="malformed delimiter"):
        read(b"--abcdef\r\n\r\nx\r\n--abc--", b"abc", 3)


def test_boundaries_rfc_2046_forbids() -> None:
    for bad in ("", "a" * 201, "has\nnewline", "ends with space "):
        with pytest.raises(MultipartError):
            check_boundary(bad)
    assert check_boundary("a'()+_,-./:=? b") == b"a'()+_,-./:=? b"


def test_memory_stays_bounded_for_a_large_part() -> None:
    reader = MultipartReader(b"abc", lambda h: Sink(h, []))
    reader.feed(b"--abc\r\n\r\n")
    for _ in range(200):
        reader.feed(b"\0" * 65536)
        assert len(reader._buf) < 100  # only what could start a delimiter is held back


def _read_in_turns(data: bytes, boundary: bytes, chunk: int, turn: int) -> tuple[list[Sink], int]:
    """Parts read at most ``turn`` per call, as STOW-RS does between event loop turns;
    and the most parts one call began."""
    out: list[Sink] = []
    reader = MultipartReader(boundary, lambda h: Sink(h, out))
    most = 0
    for i in range(0, len(data), chunk):
        before = reader.parts
        more = reader.feed(data[i : i + chunk], turn)
        most = max(most, reader.parts - before)
        while more:
            before = reader.parts
            more = reader.resume(turn)
            most = max(most, reader.parts - before)
    reader.finish()
    return out, most


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000, 10**7])
@pytest.mark.parametrize("turn", [1, 2, 16])
def test_parts_read_a_few_at_a_time_are_the_same(chunk: int, turn: int) -> None:
    data = body(b"abc", PARTS * 3, preamble=b"preamble\r\n", epilogue=b"trailing")
    sinks, most = _read_in_turns(data, b"abc", chunk, turn)
    assert [bytes(s.data) for s in sinks] == PARTS * 3
    assert all(s.closed for s in sinks)
    assert most <= turn


def test_a_chunk_of_thousands_of_tiny_parts_is_read_in_turns() -> None:
    """One read of a STOW-RS body of empty parts held 5,000 of them, each begun on the
    event loop: it was blocked for seconds."""
    data = body(b"abc", [b"", b"x"] * 2500)
    sinks, most = _read_in_turns(data, b"abc", len(data), 16)
    assert [bytes(s.data) for s in sinks] == [b"", b"x"] * 2500
    assert most == 16
