"""Evaluation metrics of the two benchmarks GSAVL reports (docs/results.md).

- AVSBench (S4/MS3): mask IoU (M_J) and F-score with beta^2 = 0.3 (M_F), following
  the official AVSBench `utility.py` (`mask_iou`, `Eval_Fmeasure`). Two families, named
  apart: `avsbench_miou` / `avsbench_fmeasure` / `avsbench_from_rows` are the
  benchmark's batch metrics (they depend on how frames are batched); `mask_iou`,
  `f_measure`, `f_measure_soft`, `frame_miou`, `frame_fmeasure` are per frame.
- VGG-SS (EZ-VSL protocol): cIoU of the heatmap thresholded at its median, AP50 and
  the AUC of the success curve, following EZ-VSL's `Evaluator` and `bbox2gtmap`.
  AP50 uses cIoU >= 0.5 (EZ-VSL); the original GSAVL's AVS logs used 0.1 under that name.
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
    the last threshold is exactly 1.0 in float32). `prob_map` holds scores, not logits
    (the `avsbench_*` functions apply the sigmoid first). Returns [n_thresholds]; all NaN
    when the ground truth is empty, a frame the benchmark leaves out.
    """
    prob, g = _numpy(prob_map).astype(np.float32), _binary(gt)
    _same_shape(prob, g, 2)
    thresholds = avsbench_thresholds(n_thresholds)
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


# ---------------------------------------------------------------- AVSBench, as the benchmark computes it
#
# The benchmark's own numbers (docs/results.md, "AVSBench's official metrics") are BATCH metrics: M_J averages per-frame
# IoU over a test batch and then over batches; M_F averages per-frame F curves over a
# batch, takes the best threshold PER BATCH, then averages over batches. With one
# video of 5 frames per batch (AVSBench's test loader) M_J equals the frame mean when
# every video has 5 frames, but M_F does not: it depends on how frames are batched.
# `avsbench_*` reproduce the benchmark; `frame_*` are the batch-independent per-frame
# means (each frame its own best threshold for F). Both take LOGITS by default, as the
# benchmark does (it applies a sigmoid first): hard 0/1 masks then become 0.5 / 0.73,
# IoU still works, and the F sweep sees two levels, i.e. max(F(all pixels), F(mask)).

AVS_BATCH_FRAMES = 5
"""Frames per test batch in AVSBench's loader: one video of 5 frames (AVSegFormer's released S4 / MS3 configs: 2 videos, 10, scored at 512x512)."""

_SIGMOID_0 = float(torch.sigmoid(torch.tensor(0.0)))  # 0.5: the level of a hard mask's background
_SIGMOID_1 = float(torch.sigmoid(torch.tensor(1.0)))  # 0.731: the level of its foreground


def avsbench_thresholds(n_thresholds: int = 255) -> np.ndarray:
    """The benchmark's thresholds, `torch.linspace(0, 1 - 1e-10, n)` in float32 (the last is 1.0)."""
    return torch.linspace(0, 1 - 1e-10, n_thresholds).numpy()


def _avs_scores(preds: Any, from_logits: bool) -> np.ndarray:
    """float32 scores in [0,1]: sigmoid of logits (the benchmark), or the given probabilities."""
    scores = torch.as_tensor(_numpy(preds)).to(torch.float32)
    return (torch.sigmoid(scores) if from_logits else scores).numpy()


def _avs_inputs(preds: Any, gts: Any, from_logits: bool) -> tuple[np.ndarray, np.ndarray]:
    scores, masks = _avs_scores(preds, from_logits), _binary(gts)
    _same_shape(scores, masks, 3)
    return scores, masks


def _batches(count: int, batch: int) -> list[slice]:
    if batch < 1:
        raise UsageError(f"batch must be >= 1 frame, got {batch}")
    return [slice(start, min(start + batch, count)) for start in range(0, count, batch)]


def _avs_iou(scores: np.ndarray, masks: np.ndarray, eps: float) -> np.ndarray:
    """Per-frame IoU of `scores > 0.5` with the empty-ground-truth rule and the benchmark's eps."""
    pred = scores > 0.5
    empty = ~masks.any(axis=(1, 2))
    inter = np.where(empty, (~pred & ~masks).sum(axis=(1, 2)), (pred & masks).sum(axis=(1, 2)))
    union = np.where(empty, pred.shape[1] * pred.shape[2], (pred | masks).sum(axis=(1, 2)))
    return inter / (union + eps)


def avsbench_miou(
    preds: Any, gts: Any, batch: int = AVS_BATCH_FRAMES, *, from_logits: bool = True, eps: float = 1e-7
) -> float:
    """AVSBench's M_J (`mask_iou`) over frames [N,H,W] split into consecutive batches of `batch` frames.

    Per frame: P = sigmoid(pred) > 0.5 (or pred > 0.5 with `from_logits=False`), IoU =
    |P∩G| / (|P∪G| + eps); a frame with an empty ground truth scores the fraction of
    pixels correctly left background. Mean over each batch, then over batches (the
    last batch may be shorter, as a DataLoader's). NaN for no frames.
    """
    scores, masks = _avs_inputs(preds, gts, from_logits)
    ious = _avs_iou(scores, masks, eps)
    per_batch = [ious[s].mean() for s in _batches(len(ious), batch)]
    return float(np.mean(per_batch)) if per_batch else math.nan


def frame_miou(preds: Any, gts: Any, *, from_logits: bool = True) -> float:
    """Batch-independent M_J: the mean over frames of the per-frame IoU (no eps). NaN for no frames."""
    scores, masks = _avs_inputs(preds, gts, from_logits)
    return float(mask_iou_batch(scores > 0.5, masks).mean()) if len(scores) else math.nan


def _batch_fmeasure(curves: list[np.ndarray]) -> float:
    """One batch's M_F: the best threshold of the mean curve of its valid frames; 0.0 if none.

    (The benchmark starts from a zero curve, so a batch whose frames all have an empty
    ground truth scores 0 and still counts in the mean over batches.)
    """
    return float(np.mean(curves, axis=0).max()) if curves else 0.0


def avsbench_fmeasure(
    preds: Any,
    gts: Any,
    batch: int = AVS_BATCH_FRAMES,
    *,
    from_logits: bool = True,
    beta2: float = 0.3,
    n_thresholds: int = 255,
) -> float:
    """AVSBench's M_F (`Eval_Fmeasure`, beta^2 = 0.3) over frames [N,H,W] in batches of `batch` frames.

    Scores = sigmoid(pred) (or pred with `from_logits=False`); frames whose ground
    truth is all black are skipped; each valid frame's F curve over the 255 thresholds
    (`score >= t`, F = (1+b2)PR/(b2 P+R), NaN -> 0) is averaged over the batch's valid
    frames, the maximum over thresholds is the batch's score, and the batch scores are
    averaged. NaN for no frames.
    """
    scores, masks = _avs_inputs(preds, gts, from_logits)
    per_batch = [
        _batch_fmeasure([f_measure_curve(p, g, beta2, n_thresholds) for p, g in zip(scores[s], masks[s]) if g.any()])
        for s in _batches(len(scores), batch)
    ]
    return float(np.mean(per_batch)) if per_batch else math.nan


def frame_fmeasure(
    preds: Any, gts: Any, *, from_logits: bool = True, beta2: float = 0.3, n_thresholds: int = 255
) -> float:
    """Batch-independent M_F: the mean over frames with a non-empty ground truth of each
    frame's own best F over the benchmark's thresholds (`f_measure_soft`). NaN if none."""
    scores, masks = _avs_inputs(preds, gts, from_logits)
    values = [f_measure_soft(p, g, beta2, n_thresholds) for p, g in zip(scores, masks) if g.any()]
    return float(np.mean(values)) if values else math.nan


def hard_mask_f_curve(f_mask: float, gt_fraction: float, beta2: float = 0.3, n_thresholds: int = 255) -> np.ndarray:
    """The benchmark's F curve of a hard 0/1 mask given as logits, from two numbers.

    sigmoid maps background to 0.5 and foreground to 0.731, so thresholds <= 0.5
    select every pixel (P = gt_fraction = |G|/(H*W), R = 1), thresholds up to 0.731
    select the mask (its own F, `f_mask`), higher ones nothing (F = 0).
    """
    t = avsbench_thresholds(n_thresholds)
    f_all = (1 + beta2) * gt_fraction / (beta2 * gt_fraction + 1) if gt_fraction > 0 else 0.0
    return np.where(t <= np.float32(_SIGMOID_0), f_all, np.where(t <= np.float32(_SIGMOID_1), f_mask, 0.0))


def _row_curve(row: dict, beta2: float) -> np.ndarray | None:
    """A row's F curve: its own "f_curve", else the hard-mask curve; None if it cannot be built."""
    if row.get("f_curve") is not None:
        return np.asarray(row["f_curve"], dtype=float)
    if row.get("mask_f") is None or row.get("gt_fraction") is None:
        return None
    return hard_mask_f_curve(float(row["mask_f"]), float(row["gt_fraction"]), beta2)


def avsbench_from_rows(rows: Sequence[dict], videos_per_batch: int = 1, beta2: float = 0.3) -> dict[str, Any]:
    """The benchmark's M_J and M_F, and the per-frame M_F, from per-frame result rows.

    `rows`: one dict per evaluated frame of ONE method (one map x sampler x segmenter),
    with "clip" (the video), "iou" (`mask_iou` of the predicted mask) and, for M_F,
    "gt_fraction" (|G| / (H*W) of the frame's ground truth) plus either "mask_f" (the
    hard mask's own `f_measure`, scored as the benchmark scores a 0/1 mask given as
    logits) or "f_curve" (255 values of `f_measure_curve`). Batches are
    `videos_per_batch` consecutive videos in first-seen order (AVSBench: 1; AVSegFormer's released S4 / MS3 configs: 2).

    Returns {"avsbench_miou", "avsbench_fmeasure", "frame_fmeasure", "batches"}; a
    score is None when the rows lack what it needs. "miou" of `summarize` is the
    per-frame mean, the batch-independent M_J.
    """
    if videos_per_batch < 1:
        raise UsageError(f"videos_per_batch must be >= 1, got {videos_per_batch}")
    videos: dict[Any, list[dict]] = {}
    for row in rows:
        videos.setdefault(row.get("clip"), []).append(row)
    groups = list(videos.values())
    batches = [
        [row for group in groups[i : i + videos_per_batch] for row in group]
        for i in range(0, len(groups), videos_per_batch)
    ]
    out: dict[str, Any] = {
        "avsbench_miou": None,
        "avsbench_fmeasure": None,
        "frame_fmeasure": None,
        "batches": len(batches),
    }
    if not batches:
        return out
    ious = [[r.get("iou") for r in b] for b in batches]
    if all(v is not None and not math.isnan(float(v)) for b in ious for v in b):
        out["avsbench_miou"] = float(np.mean([np.mean(np.asarray(b, dtype=float)) for b in ious]))
    valid = [[r for r in b if r.get("gt_fraction") is not None and float(r["gt_fraction"]) > 0] for b in batches]
    curves = [[_row_curve(r, beta2) for r in b] for b in valid]
    known = all(r.get("gt_fraction") is not None for b in batches for r in b)
    if known and all(c is not None for b in curves for c in b):
        out["avsbench_fmeasure"] = float(np.mean([_batch_fmeasure(b) for b in curves]))
        best = [float(c.max()) for b in curves for c in b]
        out["frame_fmeasure"] = float(np.mean(best)) if best else None
    return out


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


def ap50(cious: Iterable[float], threshold: float = 0.5) -> float:
    """Fraction of samples with cIoU >= 0.5 (NaN counts as a miss); NaN for no samples.

    0.5 is EZ-VSL's definition; the original GSAVL's `finalize_AP50` used 0.1 (pass
    `threshold=0.1` to compare with its logs).
    """
    values = _floats(cious)
    return float(np.mean(values >= threshold)) if values.size else math.nan


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


def boxes_to_mask(boxes: Any, size: int | Sequence[int] = 224, normalized: bool = True) -> np.ndarray:
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
    """Aggregate per-sample dicts (optional keys iou, mask_f, ciou, pointing) into dataset scores.

    Returns {"n", "miou", "mask_f", "ciou", "ap50", "auc", "pointing_game"}; a score is
    None when no sample has a usable value for it. None and NaN entries are ignored
    (so NaN F-scores of empty-ground-truth frames drop out, as in AVSBench).
    """
    cious = _valid(rows, "ciou")
    return {
        "n": len(rows),
        "miou": _mean_or_none(_valid(rows, "iou")),
        "mask_f": _mean_or_none(_valid(rows, "mask_f")),
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
