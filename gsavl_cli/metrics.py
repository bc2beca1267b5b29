"""Evaluation metrics of the two benchmarks GSAVL reports (METHOD.md §6).

- AVSBench (S4/MS3): per-frame mask IoU (M_J) and F-score with beta^2 = 0.3 (M_F),
  following the official AVSBench `utility.py` (`mask_iou`, `Eval_Fmeasure`).
- VGG-SS (EZ-VSL protocol): cIoU of the heatmap thresholded at its median, AP50 and
  the AUC of the success curve, following EZ-VSL's `Evaluator` and `bbox2gtmap`.
- The pointing game (is the heatmap's peak on the source?) and a model-free centre
  prior as a sanity baseline.

Inputs may be NumPy arrays or torch tensors; scores come back as Python floats.
Masks that are not boolean are binarised with `> 0.5` (so 0/1, 0/255 and
probabilities all work; probabilities > 0.5 is AVSBench's `sigmoid(logit) > 0.5`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from gsavl_cli.errors import UsageError

AUC_THRESHOLDS = 0.05 * np.arange(21)
"""cIoU thresholds of the success curve, 0, 0.05, ..., 1.0, computed as EZ-VSL does."""


def _numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _floats(values: Any) -> np.ndarray:
    if isinstance(values, (torch.Tensor, np.ndarray)):
        return _numpy(values).astype(float).ravel()
    return np.asarray(list(values), dtype=float)


def _binary(x: Any) -> np.ndarray:
    arr = _numpy(x)
    return arr if arr.dtype == bool else arr > 0.5


def _same_shape(a: np.ndarray, b: np.ndarray, ndim: int) -> None:
    if a.ndim != ndim or a.shape != b.shape:
        raise UsageError(
            f"prediction {a.shape} and ground truth {b.shape} must both have {ndim} dims and one shape",
            hint="resize the prediction to the ground truth's size before scoring",
        )


def mask_iou_batch(preds: Any, gts: Any) -> np.ndarray:
    """Per-frame IoU of binary masks [N,H,W] -> [N], the AVSBench way.

    |P ∩ G| / |P ∪ G|; for an empty ground truth AVSBench scores the fraction of
    pixels correctly predicted negative, |¬P ∩ ¬G| / (H*W) = 1 - mean(P), so an
    empty prediction on an empty frame scores 1 and a full one scores 0. (AVSBench
    adds eps=1e-7 to the union; with empty frames handled the union is never 0, so
    the epsilon only shifts scores by ~1e-7/|P ∪ G| and is left out.)
    """
    p, g = _binary(preds), _binary(gts)
    _same_shape(p, g, 3)
    inter = (p & g).sum(axis=(1, 2))
    union = (p | g).sum(axis=(1, 2))
    empty = ~g.any(axis=(1, 2))
    true_neg = (~p & ~g).sum(axis=(1, 2))
    pixels = p.shape[1] * p.shape[2]
    numerator = np.where(empty, true_neg, inter)
    denominator = np.where(empty, pixels, union)
    return numerator / np.maximum(denominator, 1)


def mask_iou(pred: Any, gt: Any) -> float:
    """IoU of one binary mask [H,W] with AVSBench's empty-ground-truth rule (see `mask_iou_batch`)."""
    p, g = _binary(pred), _binary(gt)
    _same_shape(p, g, 2)
    return float(mask_iou_batch(p[None], g[None])[0])


def _f_from_counts(tp: np.ndarray, n_pred: np.ndarray, n_gt: int, beta2: float) -> np.ndarray:
    """F_beta from counts; a zero precision or recall gives 0 (AVSBench maps its NaN to 0)."""
    precision = np.divide(tp, n_pred, out=np.zeros(tp.shape), where=n_pred > 0)
    recall = tp / n_gt
    denom = beta2 * precision + recall
    return np.divide((1 + beta2) * precision * recall, denom, out=np.zeros(tp.shape), where=denom > 0)


def f_measure(pred: Any, gt: Any, beta2: float = 0.3) -> float:
    """AVSBench M_F of one binary mask: (1+b2) P R / (b2 P + R), P = |P∩G|/|P|, R = |P∩G|/|G|.

    Edge cases (no epsilon): both empty -> 1.0; empty prediction or empty ground
    truth alone -> 0.0. The benchmark itself skips frames with an empty ground truth
    (S4 has none); `f_measure_soft` reproduces that by returning NaN.
    """
    p, g = _binary(pred), _binary(gt)
    _same_shape(p, g, 2)
    n_gt, n_pred = int(g.sum()), int(p.sum())
    if n_gt == 0 or n_pred == 0:
        return 1.0 if n_gt == n_pred else 0.0
    tp = np.array([(p & g).sum()], dtype=float)
    return float(_f_from_counts(tp, np.array([n_pred], dtype=float), n_gt, beta2)[0])


def f_measure_curve(prob_map: Any, gt: Any, beta2: float = 0.3, n_thresholds: int = 255) -> np.ndarray:
    """F-score at each of AVSBench's thresholds, `torch.linspace(0, 1 - 1e-10, n)` in float32.

    The prediction at threshold t is `prob_map >= t` (so t = 0 takes every pixel, and
    the last threshold is exactly 1.0 in float32). Returns [n_thresholds]; all NaN
    when the ground truth is empty, a frame the benchmark leaves out.
    """
    prob, g = _numpy(prob_map).astype(np.float32), _binary(gt)
    _same_shape(prob, g, 2)
    thresholds = torch.linspace(0, 1 - 1e-10, n_thresholds).numpy()
    n_gt = int(g.sum())
    if n_gt == 0:
        return np.full(n_thresholds, np.nan)
    all_sorted, gt_sorted = np.sort(prob.ravel()), np.sort(prob[g])
    n_pred = (all_sorted.size - np.searchsorted(all_sorted, thresholds, side="left")).astype(float)
    tp = (gt_sorted.size - np.searchsorted(gt_sorted, thresholds, side="left")).astype(float)
    return _f_from_counts(tp, n_pred, n_gt, beta2)


def f_measure_soft(prob_map: Any, gt: Any, beta2: float = 0.3, n_thresholds: int = 255) -> float:
    """AVSBench M_F of one soft map [H,W] in [0,1]: the best F over the benchmark's thresholds.

    NaN for an empty ground truth (the benchmark skips such frames). For a binary
    map this is max(F(mask), F(all pixels)), because threshold 0 selects every pixel.
    """
    return float(np.max(f_measure_curve(prob_map, gt, beta2, n_thresholds)))


def f_measure_benchmark(prob_maps: Any, gts: Any, beta2: float = 0.3, n_thresholds: int = 255) -> float:
    """Dataset-level M_F exactly as AVSBench's `Eval_Fmeasure`: max over thresholds of the mean F.

    prob_maps, gts: [N,H,W]. Frames with an empty ground truth are left out; NaN if
    none is left.
    """
    maps, masks = _numpy(prob_maps), _binary(gts)
    _same_shape(maps, masks, 3)
    curves = [f_measure_curve(m, g, beta2, n_thresholds) for m, g in zip(maps, masks) if g.any()]
    return float(np.mean(curves, axis=0).max()) if curves else math.nan


def median_threshold(heatmap: Any) -> float:
    """EZ-VSL's threshold: the value at index int(N/2) of the ascending-sorted heatmap."""
    flat = _numpy(heatmap).ravel()
    k = int(0.5 * flat.size)
    return float(np.partition(flat, k)[k])


def ciou_of_mask(pred_mask: Any, gt: Any) -> float:
    """cIoU of a binary prediction: |P ∩ G| / (|G| + |P ∩ ¬G|); 0.0 for an empty ground truth.

    With a binary ground truth (VGG-SS) this equals IoU; the "consensus" weighting of
    Flickr-SoundNet's soft maps is not supported (non-bool gt is binarised at 0.5).
    """
    p, g = _binary(pred_mask), _binary(gt)
    _same_shape(p, g, 2)
    denom = int(g.sum()) + int((p & ~g).sum())
    return float((p & g).sum() / denom) if g.any() else 0.0


def ciou(heatmap: Any, gt: Any, threshold: float | None = None) -> float:
    """cIoU of a heatmap [H,W] with the VGG-SS / EZ-VSL protocol.

    The prediction is `heatmap >= threshold`, the threshold being `median_threshold`
    (the top 50% of pixels, ties included) unless given. An empty ground truth scores
    0.0 (EZ-VSL would give 0, or NaN when the prediction is empty too).
    """
    h = _numpy(heatmap)
    t = median_threshold(h) if threshold is None else threshold
    return ciou_of_mask(h >= t, gt)


def ap50(cious: Iterable[float]) -> float:
    """Fraction of samples with cIoU >= 0.5 (NaN counts as a miss); NaN for no samples."""
    values = _floats(cious)
    return float(np.mean(values >= 0.5)) if values.size else math.nan


def success_curve(cious: Iterable[float]) -> np.ndarray:
    """success(t) = fraction of samples with cIoU >= t, for t in `AUC_THRESHOLDS`."""
    values = _floats(cious)
    return (values[None, :] >= AUC_THRESHOLDS[:, None]).mean(axis=1)


def auc(cious: Iterable[float]) -> float:
    """Area under the success curve over t = 0, 0.05, ..., 1.0, by the trapezoid rule.

    Same as EZ-VSL's `sklearn.metrics.auc(thr, success)` with thr = [0.05*i for i in
    range(21)]: all cIoU = 1 gives 1.0, all 0 gives 0.025. NaN for no samples.
    """
    values = _floats(cious)
    return float(np.trapezoid(success_curve(values), AUC_THRESHOLDS)) if values.size else math.nan


def _grid_shape(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    height, width = size
    return int(height), int(width)


def boxes_to_mask(
    boxes: Any, size: int | Sequence[int] = 224, normalized: bool = True
) -> np.ndarray:
    """Union of [x1,y1,x2,y2] boxes as a bool mask [H,W], EZ-VSL's `bbox2gtmap` convention.

    size: an int for a square grid or (height, width). Normalised boxes are clipped to
    [0,1] and scaled by (W, H); pixel boxes (`normalized=False`) are clipped to [0,W] x
    [0,H]. Coordinates are then truncated to int and the box covers
    rows int(y1):int(y2), columns int(x1):int(x2) (end exclusive). A box with x1 >= x2
    or y1 >= y2 is empty, as in EZ-VSL (no reordering). Non-finite coordinates raise.
    """
    height, width = _grid_shape(size)
    raw = _numpy(boxes).astype(float)
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


def pointing_hit(point_xy: Sequence[float], gt: Any) -> bool:
    """Whether the point (x = column, y = row, pixels) falls on the ground truth.

    Pixel centres sit at integer coordinates, so a float point is rounded half up to
    the nearest pixel (floor(v + 0.5)); a point outside the frame is a miss.
    """
    g = _binary(gt)
    col, row = (math.floor(float(v) + 0.5) for v in point_xy)
    return bool(0 <= row < g.shape[0] and 0 <= col < g.shape[1] and g[row, col])


def pointing_game(heatmap: Any, gt: Any) -> bool:
    """Whether the heatmap's peak lies on the ground truth; ties go to the first peak in row-major order."""
    h, g = _numpy(heatmap), _binary(gt)
    _same_shape(h, g, 2)
    row, col = np.unravel_index(int(np.argmax(h)), h.shape)
    return bool(g[row, col])


def _valid(rows: Sequence[dict], key: str) -> np.ndarray:
    values = [float(r[key]) for r in rows if r.get(key) is not None]
    arr = np.asarray(values, dtype=float)
    return arr[~np.isnan(arr)]


def _mean_or_none(values: np.ndarray) -> float | None:
    return float(values.mean()) if values.size else None


def summarize(rows: Sequence[dict]) -> dict:
    """Aggregate per-sample dicts (optional keys iou, fscore, ciou, pointing) into dataset scores.

    Returns {"n", "miou", "fscore", "ciou", "ap50", "auc", "pointing_game"}; a score is
    None when no sample has a usable value for it. None and NaN entries are ignored
    (so NaN F-scores of empty-ground-truth frames drop out, as in AVSBench).
    """
    cious = _valid(rows, "ciou")
    return {
        "n": len(rows),
        "miou": _mean_or_none(_valid(rows, "iou")),
        "fscore": _mean_or_none(_valid(rows, "fscore")),
        "ciou": _mean_or_none(cious),
        "ap50": ap50(cious) if cious.size else None,
        "auc": auc(cious) if cious.size else None,
        "pointing_game": _mean_or_none(_valid(rows, "pointing")),
    }


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
