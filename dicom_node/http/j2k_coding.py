"""What a JPEG 2000 codestream's coding style makes a decoder allocate: its precincts
and code-blocks, estimated from each COD and COC segment (ITU-T T.800 A.6.1, A.6.2) of
the main header and of the tile-part headers, before any decoder runs.

OpenJPEG allocates about 1.6 kB of state per precinct and a few hundred bytes per
code-block, whatever the data: precincts of 2 x 2 pixels in a 2048 x 2048 frame (4 MB
decoded) took 2.3 GB and 11 s of CPU, code-blocks of 4 x 4 another 80 MB. Real
encoders use one precinct per resolution or 32 x 32 and more, and code-blocks of 32 x
32 or 64 x 64.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

_COD, _COC, _SOT, _SOD, _EOC = 0xFF52, 0xFF53, 0xFF90, 0xFF93, 0xFFD9
MAX_SEGMENTS = 100_000  # marker segments walked in one codestream
PIXELS_PER_PRECINCT = 256  # a frame may have a precinct per this many samples (or 64)
PIXELS_PER_BLOCK = 64  # and a code-block per this many


def _coding_styles(data: bytes, components: int) -> Iterator[tuple[int, bytes]]:
    """(Scod, SPcod) of each COD and COC segment, in the main header and in each
    tile-part header as far as ``data`` goes. ValueError past :data:`MAX_SEGMENTS`."""
    pos = 2  # after SOC
    tile_part, tile_length = -1, 0  # where the current tile-part starts, its length
    for _ in range(MAX_SEGMENTS):
        if pos + 4 > len(data):
            return
        marker, length = struct.unpack_from(">HH", data, pos)
        if marker == _EOC or length < 2:
            return
        value = data[pos + 4 : pos + 2 + length]
        if marker == _COD and len(value) >= 6:
            yield value[0], value[5:]  # Scod; SGcod (4 bytes); SPcod
        elif marker == _COC:
            skip = 1 if components < 257 else 2
            if len(value) >= skip + 1:
                yield value[skip], value[skip + 1 :]
        if marker == _SOT and len(value) >= 6:
            tile_part = pos
            (tile_length,) = struct.unpack_from(">L", value, 2)  # Psot
        if marker == _SOD:
            if tile_part < 0 or not tile_length:
                return  # a tile-part to the end: no header follows
            pos, tile_part = tile_part + tile_length, -1
            continue
        pos += 2 + length
    raise ValueError(f"more than {MAX_SEGMENTS} marker segments")


def _counts(style: int, spcod: bytes, rows: int, cols: int) -> tuple[int, int]:
    """(precincts, code-blocks) of one component of ``rows`` x ``cols`` coded with
    SPcod ``spcod`` (decomposition levels, code-block size, ..., precinct sizes)."""
    if len(spcod) < 5:
        return 0, 0
    levels, xcb, ycb = spcod[0], (spcod[1] & 0xF) + 2, (spcod[2] & 0xF) + 2
    sizes = spcod[5 : 5 + levels + 1] if style & 1 else b""
    precincts = blocks = 0
    for r in range(levels + 1):
        scale = 1 << (levels - r)
        width, height = -(-cols // scale), -(-rows // scale)
        ppx, ppy = (sizes[r] & 0xF, sizes[r] >> 4) if r < len(sizes) else (15, 15)
        precincts += -(-width // (1 << ppx)) * -(-height // (1 << ppy))
        # A code-block lies within a precinct (of its band: half the size past r 0).
        bw, bh = 1 << min(xcb, max(ppx - (r > 0), 0)), 1 << min(ycb, max(ppy - (r > 0), 0))
        blocks += -(-width // bw) * -(-height // bh)
    return precincts, blocks


def excess(data: bytes, rows: int, cols: int, components: int) -> str | None:
    """What in the codestream ``data`` would make a decoder allocate out of proportion
    to its ``rows`` x ``cols`` x ``components`` samples (its precincts, its
    code-blocks, its marker segments); None if nothing."""
    samples = rows * cols * components
    most_precincts = max(64, samples // PIXELS_PER_PRECINCT)
    most_blocks = max(64, samples // PIXELS_PER_BLOCK)
    try:
        for style, spcod in _coding_styles(data, components):
            precincts, blocks = _counts(style, spcod, rows, cols)
            if precincts * components > most_precincts:
                return f"{precincts * components} precincts, more than {most_precincts}"
            if blocks * components > most_blocks:
                return f"{blocks * components} code-blocks, more than {most_blocks}"
    except ValueError as err:
        return str(err)
    return None
