"""The result writer's flood fill as it was (a numpy array indexed one cell at a time):
the reference the new fill is pinned to (tests/sr_writer/test_component.py) and timed
against (benchmarks/hot_region.py)."""

from __future__ import annotations

from collections import deque

import numpy as np


def numpy_fill(mask: np.ndarray, start: tuple[int, int]) -> list[tuple[int, int]]:
    """Breadth first from ``start`` over 4-neighbours, in the order the old fill used."""
    rows, cols = mask.shape
    seen = np.zeros_like(mask, dtype=bool)
    seen[start] = True
    queue = deque([start])
    cells = []
    while queue:
        i, j = queue.popleft()
        cells.append((i, j))
        for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            a, b = i + di, j + dj
            if 0 <= a < rows and 0 <= b < cols and mask[a, b] and not seen[a, b]:
                seen[a, b] = True
                queue.append((a, b))
    return cells
