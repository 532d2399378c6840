"""The hot region's flood fill (``sr_writer.spatial._component``) pinned against two
references: the numpy cell-by-cell fill it replaced (same cells in the same order) and a
naive fixpoint of 4-neighbour growth (same set, found independently)."""

from __future__ import annotations

import numpy as np
import pytest

from sr_writer.spatial import _component, hot_region
from tests.support.numpy_fill import numpy_fill


def _fixpoint(mask: np.ndarray, start: tuple[int, int]) -> set[tuple[int, int]]:
    """Grow {start} by its 4-neighbours inside ``mask`` until nothing changes."""
    rows, cols = mask.shape
    region = {start}
    while True:
        grown = region | {
            (i + di, j + dj)
            for i, j in region
            for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1))
            if 0 <= i + di < rows and 0 <= j + dj < cols and mask[i + di, j + dj]
        }
        if grown == region:
            return region
        region = grown


def _check(mask: np.ndarray, start: tuple[int, int]) -> None:
    got = _component(mask, start)
    assert got == numpy_fill(mask, start)
    assert set(got) == _fixpoint(mask, start)
    assert all(type(i) is int and type(j) is int for i, j in got)


def _checkerboard(rows: int, cols: int) -> np.ndarray:
    return np.add.outer(np.arange(rows), np.arange(cols)) % 2 == 0


EDGE_CASES = [
    ("empty (start outside the mask)", np.zeros((5, 7), bool), (2, 3)),
    ("full", np.ones((6, 9), bool), (3, 4)),
    ("full, start in a corner", np.ones((6, 9), bool), (5, 8)),
    ("one cell", np.ones((1, 1), bool), (0, 0)),
    ("1 x N", np.array([[1, 1, 0, 1, 1, 1, 0, 1]], bool), (0, 4)),
    ("N x 1", np.array([[1], [1], [1], [0], [1]], bool), (1, 0)),
    ("diagonal neighbours only", _checkerboard(7, 7), (3, 3)),
    ("diagonal neighbours only, at the border", _checkerboard(7, 7), (0, 0)),
    ("a diagonal line", np.eye(6, dtype=bool), (2, 2)),
    ("border ring", np.pad(np.zeros((3, 4), bool), 1, constant_values=True), (0, 0)),
    (
        "an L along two borders",
        np.pad(np.ones((1, 5), bool), ((4, 0), (0, 0))) | (np.arange(5) == 0),
        (0, 0),
    ),
]


@pytest.mark.parametrize(
    ("mask", "start"), [c[1:] for c in EDGE_CASES], ids=[c[0] for c in EDGE_CASES]
)
def test_edge_cases(mask: np.ndarray, start: tuple[int, int]) -> None:
    _check(mask, start)


def test_diagonal_cells_are_not_connected() -> None:
    assert _component(_checkerboard(5, 5), (2, 2)) == [(2, 2)]


def test_random_masks() -> None:
    """600 random masks of many shapes and densities, started at a cell of the mask
    (as hot_region does) or anywhere."""
    rng = np.random.default_rng(20261203)
    for n in range(600):
        rows, cols = (int(x) for x in rng.integers(1, 40, size=2))
        mask = rng.random((rows, cols)) < rng.uniform(0.2, 0.9)
        if n % 3 == 0:
            on = np.argwhere(mask)
            start = tuple(int(x) for x in on[rng.integers(len(on))]) if len(on) else (0, 0)
        else:
            start = (int(rng.integers(rows)), int(rng.integers(cols)))
        _check(mask, start)


def test_the_masks_hot_region_cuts() -> None:
    """Random 28 x 28 and 224 x 224 heatmaps cut where hot_region cuts them, filled from
    their peak as hot_region fills them."""
    rng = np.random.default_rng(7)
    for size in (28, 224):
        for _ in range(10):
            heat = rng.random((size, size)).astype(np.float32) ** 3
            region = hot_region(heat, 512, 384)
            assert region is not None
            peak = np.unravel_index(int(np.argmax(heat)), heat.shape)
            mask = heat >= region.level
            start = (int(peak[0]), int(peak[1]))
            assert _component(mask, start) == numpy_fill(mask, start)
