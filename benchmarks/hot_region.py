"""Cost of the hot region's flood fill (``sr_writer.spatial._component``): the numpy
cell-by-cell fill it replaced against the one over nested lists, on the masks
``hot_region`` cuts from smooth 224 x 224 heatmaps (a blob, as a CAM gives) and from
random ones; prints the best of R rounds per fill and their ratio.

    python benchmarks/hot_region.py [--calls 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import sys
import timeit
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sr_writer.spatial import HOT_FRACTION, _component
from tests.support.numpy_fill import numpy_fill


def masks(size: int = 224) -> dict[str, tuple[np.ndarray, tuple[int, int]]]:
    """Cut masks and their peaks: a wide blob (as a CAM upsampled gives) and noise."""
    iy, ix = np.mgrid[0:size, 0:size].astype(np.float32)
    blob = np.exp(-((iy - 0.4 * size) ** 2 + (ix - 0.6 * size) ** 2) / (2 * (size / 6) ** 2))
    noise = np.random.default_rng(1).random((size, size)).astype(np.float32)
    out = {}
    for name, heat in (("blob", blob), ("noise", noise)):
        peak = np.unravel_index(int(np.argmax(heat)), heat.shape)
        mask = heat >= heat.max() * HOT_FRACTION
        out[name] = (mask, (int(peak[0]), int(peak[1])))
    return out


def per_call(fill, mask: np.ndarray, start: tuple[int, int], calls: int, rounds: int) -> float:
    """Best of ``rounds`` rounds of ``calls`` fills, in ms per fill."""
    return min(timeit.repeat(lambda: fill(mask, start), number=calls, repeat=rounds)) / calls * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    for name, (mask, start) in masks().items():
        assert _component(mask, start) == numpy_fill(mask, start)
        cells = len(_component(mask, start))
        old, new = (
            per_call(f, mask, start, args.calls, args.rounds) for f in (numpy_fill, _component)
        )
        print(
            f"{name:5} ({cells:6} cells): numpy {old:7.3f} ms  lists {new:7.3f} ms  "
            f"ratio {old / new:4.2f}x"
        )


if __name__ == "__main__":
    main()
