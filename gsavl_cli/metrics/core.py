"""What every metric shares: inputs as arrays, binarisation, and the ONE mask IoU.

Inputs may be NumPy arrays or torch tensors; scores come back as Python floats.
Masks that are not boolean are binarised with `> 0.5` (so 0/1, 0/255 and
probabilities all work; probabilities > 0.5 is AVSBench's `sigmoid(logit) > 0.5`).
Every IoU of the package (AVSBench's M_J, the per-frame IoU, VGG-SS's cIoU) counts
pixels with `overlap`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from gsavl_cli.errors import UsageError


def as_numpy(x: Any) -> np.ndarray:
    """A NumPy view of an array or (detached, CPU) tensor, so metrics accept both."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def as_floats(values: Any) -> np.ndarray:
    """A flat float64 array of scores from a tensor, an array or any iterable of numbers."""
    if isinstance(values, (torch.Tensor, np.ndarray)):
        return as_numpy(values).astype(float).ravel()
    return np.asarray(list(values), dtype=float)


def binary(x: Any) -> np.ndarray:
    """A bool mask: bool input as is, anything else `> 0.5` (0/1, 0/255 and probabilities)."""
    arr = as_numpy(x)
    return arr if arr.dtype == bool else arr > 0.5


def check_same_shape(a: np.ndarray, b: np.ndarray, ndim: int) -> None:
    """Prediction and ground truth must agree: a mismatch is the caller's resize forgotten."""
    if a.ndim != ndim or a.shape != b.shape:
        raise UsageError(
            f"prediction {a.shape} and ground truth {b.shape} must both have {ndim} dims and one shape",
            hint="resize the prediction to the ground truth's size before scoring",
        )


def overlap(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """|P ∩ G| and |P ∪ G| of bool masks over their last two axes (pixel counts)."""
    return (pred & gt).sum(axis=(-2, -1)), (pred | gt).sum(axis=(-2, -1))


def iou_counts(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Numerator and denominator of AVSBench's per-frame IoU of bool masks [N,H,W].

    |P ∩ G| / |P ∪ G|; for an empty ground truth AVSBench scores the fraction of
    pixels correctly predicted negative, |¬P ∩ ¬G| / (H*W).
    """
    inter, union = overlap(pred, gt)
    empty = ~gt.any(axis=(1, 2))
    true_neg = (~pred & ~gt).sum(axis=(1, 2))
    pixels = pred.shape[1] * pred.shape[2]
    return np.where(empty, true_neg, inter), np.where(empty, pixels, union)


def mask_iou_batch(preds: Any, gts: Any) -> np.ndarray:
    """Per-frame IoU of binary masks [N,H,W] -> [N], the AVSBench way.

    |P ∩ G| / |P ∪ G|; for an empty ground truth AVSBench scores the fraction of
    pixels correctly predicted negative, |¬P ∩ ¬G| / (H*W) = 1 - mean(P), so an
    empty prediction on an empty frame scores 1 and a full one scores 0. (AVSBench
    adds eps=1e-7 to the union; with empty frames handled the union is never 0, so
    the epsilon only shifts scores by ~1e-7/|P ∪ G| and is left out.)
    """
    p, g = binary(preds), binary(gts)
    check_same_shape(p, g, 3)
    numerator, denominator = iou_counts(p, g)
    return numerator / np.maximum(denominator, 1)


def mask_iou(pred: Any, gt: Any) -> float:
    """IoU of one binary mask [H,W] with AVSBench's empty-ground-truth rule (see `mask_iou_batch`)."""
    p, g = binary(pred), binary(gt)
    check_same_shape(p, g, 2)
    return float(mask_iou_batch(p[None], g[None])[0])
