"""VGG-SS (EZ-VSL protocol): cIoU of the heatmap thresholded at its median, AP50 and AUC.

Following EZ-VSL's `Evaluator` and `bbox2gtmap`. AP50 uses cIoU >= 0.5 (EZ-VSL); the
original GSAVL's AVS logs used 0.1 under that name. `centre_prior` is a model-free
baseline heatmap for this protocol.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from gsavl_cli.errors import UsageError
from gsavl_cli.metrics.core import as_floats, as_numpy, binary, check_same_shape, overlap

AUC_THRESHOLDS = 0.05 * np.arange(21)
"""cIoU thresholds of the success curve, 0, 0.05, ..., 1.0, computed as EZ-VSL does."""


def median_threshold(heatmap: Any) -> float:
    """EZ-VSL's threshold: the value at index int(N/2) of the ascending-sorted heatmap."""
    flat = as_numpy(heatmap).ravel()
    k = int(0.5 * flat.size)
    return float(np.partition(flat, k)[k])


def ciou_of_mask(pred_mask: Any, gt: Any) -> float:
    """cIoU of a binary prediction: |P ∩ G| / (|G| + |P ∩ ¬G|); 0.0 for an empty ground truth.

    With a binary ground truth (VGG-SS) this equals IoU; the "consensus" weighting of
    Flickr-SoundNet's soft maps is not supported (non-bool gt is binarised at 0.5).
    """
    p, g = binary(pred_mask), binary(gt)
    check_same_shape(p, g, 2)
    inter, union = overlap(p, g)  # |G| + |P ∩ ¬G| = |P ∪ G|
    return float(inter / union) if g.any() else 0.0


def ciou(heatmap: Any, gt: Any, threshold: float | None = None) -> float:
    """cIoU of a heatmap [H,W] with the VGG-SS / EZ-VSL protocol.

    The prediction is `heatmap >= threshold`, the threshold being `median_threshold`
    (the top 50% of pixels, ties included) unless given. An empty ground truth scores
    0.0 (EZ-VSL would give 0, or NaN when the prediction is empty too).
    """
    h = as_numpy(heatmap)
    t = median_threshold(h) if threshold is None else threshold
    return ciou_of_mask(h >= t, gt)


def ap50(cious: Iterable[float], threshold: float = 0.5) -> float:
    """Fraction of samples with cIoU >= 0.5 (NaN counts as a miss); NaN for no samples.

    0.5 is EZ-VSL's definition; the original GSAVL's `finalize_AP50` used 0.1 (pass
    `threshold=0.1` to compare with its logs).
    """
    values = as_floats(cious)
    return float(np.mean(values >= threshold)) if values.size else math.nan


def success_curve(cious: Iterable[float]) -> np.ndarray:
    """success(t) = fraction of samples with cIoU >= t, for t in `AUC_THRESHOLDS`."""
    values = as_floats(cious)
    return (values[None, :] >= AUC_THRESHOLDS[:, None]).mean(axis=1)


def auc(cious: Iterable[float]) -> float:
    """Area under the success curve over t = 0, 0.05, ..., 1.0, by the trapezoid rule.

    Same as EZ-VSL's `sklearn.metrics.auc(thr, success)` with thr = [0.05*i for i in
    range(21)]: all cIoU = 1 gives 1.0, all 0 gives 0.025. NaN for no samples.
    """
    values = as_floats(cious)
    return float(np.trapezoid(success_curve(values), AUC_THRESHOLDS)) if values.size else math.nan


def _grid_shape(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    height, width = size
    return int(height), int(width)


def boxes_to_mask(boxes: Any, size: int | Sequence[int] = 224, normalized: bool = True) -> np.ndarray:
    """Union of [x1,y1,x2,y2] boxes as a bool mask [H,W], EZ-VSL's `bbox2gtmap` convention.

    size: an int for a square grid or (height, width). Normalised boxes are clipped to
    [0,1] and scaled by (W, H); pixel boxes (`normalized=False`) are clipped to [0,W] x
    [0,H]. Coordinates are then truncated to int and the box covers
    rows int(y1):int(y2), columns int(x1):int(x2) (end exclusive). A box with x1 >= x2
    or y1 >= y2 is empty, as in EZ-VSL (no reordering). Non-finite coordinates raise.
    """
    height, width = _grid_shape(size)
    raw = as_numpy(boxes).astype(float)
    if raw.size % 4:
        raise UsageError(f"boxes must be rows of [x1, y1, x2, y2], got shape {raw.shape}")
    coords = raw.reshape(-1, 4)
    if not np.isfinite(coords).all():
        raise UsageError("box coordinates must be finite numbers", hint="fix or drop the corrupt annotation")
    scale = np.array([width, height, width, height], dtype=float)
    pixels = (np.clip(coords, 0, 1) * scale if normalized else np.clip(coords, 0, scale)).astype(int)
    x1, y1, x2, y2 = (pixels[:, i, None, None] for i in range(4))
    rows, cols = np.arange(height)[None, :, None], np.arange(width)[None, None, :]
    inside = (rows >= y1) & (rows < y2) & (cols >= x1) & (cols < x2)
    return inside.any(axis=0)


def centre_prior(height: int, width: int) -> np.ndarray:
    """A model-free baseline heatmap [H,W]: a cone centred on the frame.

    value = 1 - rho/2, rho being the distance from the centre in units of the
    centred ellipse (a disc on a square frame) that covers half the frame's area:
    semi-axes sqrt(1/(2 pi)) * (W, H). So `>= 0.5` is exactly that half-area
    ellipse, the median threshold of the cIoU protocol selects it up to pixel
    discretisation, and the values stay in (0.11, 1] (no ties, unlike a flat disc,
    whose median threshold would take the whole frame if the disc fell one pixel short).
    """
    semi_axis = math.sqrt(0.5 / math.pi)
    ys = ((np.arange(height) + 0.5) / height - 0.5) / semi_axis
    xs = ((np.arange(width) + 0.5) / width - 0.5) / semi_axis
    rho = np.sqrt(ys[:, None] ** 2 + xs[None, :] ** 2)
    return 1.0 - rho / 2.0
