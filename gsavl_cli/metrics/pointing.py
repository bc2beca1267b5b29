"""The pointing game: is the heatmap's peak (or a prompt point) on the sounding object?"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from gsavl_cli.metrics.core import as_numpy, binary, check_same_shape


def pointing_hit(point_xy: Sequence[float], gt: Any) -> bool:
    """Whether the point (x = column, y = row, pixels) falls on the ground truth.

    Pixel centres sit at integer coordinates, so a float point is rounded half up to
    the nearest pixel (floor(v + 0.5)); a point outside the frame is a miss.
    """
    g = binary(gt)
    col, row = (math.floor(float(v) + 0.5) for v in point_xy)
    return bool(0 <= row < g.shape[0] and 0 <= col < g.shape[1] and g[row, col])


def pointing_game(heatmap: Any, gt: Any) -> bool:
    """Whether the heatmap's peak lies on the ground truth; ties go to the first peak in row-major order."""
    h, g = as_numpy(heatmap), binary(gt)
    check_same_shape(h, g, 2)
    row, col = np.unravel_index(int(np.argmax(h)), h.shape)
    return bool(g[row, col])
