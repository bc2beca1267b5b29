"""Dataset scores from per-sample result rows (the rows `gsavl eval` writes to per_sample.csv)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gsavl_cli.metrics.vggss import ap50, auc


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
