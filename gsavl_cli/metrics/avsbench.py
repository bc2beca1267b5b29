"""AVSBench (S4/MS3): F-score with beta^2 = 0.3 (M_F) and the benchmark's batch M_J / M_F.

Following the official AVSBench `utility.py` (`mask_iou`, `Eval_Fmeasure`); the
per-frame IoU is `core.mask_iou`. Two families, named apart: `avsbench_miou` /
`avsbench_fmeasure` / `avsbench_from_rows` are the benchmark's batch metrics (they
depend on how frames are batched); `f_measure`, `f_measure_soft`, `frame_miou`,
`frame_fmeasure` are per frame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from gsavl_cli.errors import UsageError
from gsavl_cli.metrics.core import as_numpy, binary, check_same_shape, iou_counts, mask_iou_batch


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
    p, g = binary(pred), binary(gt)
    check_same_shape(p, g, 2)
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
    prob, g = as_numpy(prob_map).astype(np.float32), binary(gt)
    check_same_shape(prob, g, 2)
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
    scores = torch.as_tensor(as_numpy(preds)).to(torch.float32)
    return (torch.sigmoid(scores) if from_logits else scores).numpy()


def _avs_inputs(preds: Any, gts: Any, from_logits: bool) -> tuple[np.ndarray, np.ndarray]:
    scores, masks = _avs_scores(preds, from_logits), binary(gts)
    check_same_shape(scores, masks, 3)
    return scores, masks


def _batches(count: int, batch: int) -> list[slice]:
    if batch < 1:
        raise UsageError(f"batch must be >= 1 frame, got {batch}")
    return [slice(start, min(start + batch, count)) for start in range(0, count, batch)]


def _avs_iou(scores: np.ndarray, masks: np.ndarray, eps: float) -> np.ndarray:
    """Per-frame IoU of `scores > 0.5` with the empty-ground-truth rule and the benchmark's eps."""
    numerator, denominator = iou_counts(scores > 0.5, masks)
    return numerator / (denominator + eps)


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
