"""Scores under negative audio (silence, noise, off-screen sound), where nothing in the frame makes the sound.

AVSBench-Robust (Li et al., arXiv 2502.00358) scores a model on such inputs with the false-positive rate: every
foreground pixel is a false positive, so a frame's FPR is the share of its pixels predicted foreground, averaged
over the negative frames (theirs averages per batch, then over batches: the same for equal batches). A frame that
gets any mask at all has failed to abstain: the abstention failure rate is the share of negative frames that do,
stricter than the FPR and what a user sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gsavl_cli.metrics.core import binary


def false_positive_rate(mask: Any) -> float:
    """One negative frame's FPR: the share of its pixels predicted foreground (masks binarised as everywhere)."""
    m = binary(mask)
    return float(m.mean()) if m.size else 0.0


def any_foreground(mask: Any) -> bool:
    """Whether a mask has any foreground pixel: under negative audio, a failure to abstain."""
    return bool(binary(mask).any())


def negative_audio_summary(rows: Sequence[dict]) -> dict[str, float | None]:
    """FPR and abstention failure rate over per-frame rows with `fpr` and `any_mask`; None where no row has one.

    Returns {"fpr": mean per-frame FPR, "abstention_failure": share of frames with `any_mask`}.
    """
    fprs = np.asarray([float(r["fpr"]) for r in rows if r.get("fpr") is not None], dtype=float)
    masked = np.asarray([bool(r["any_mask"]) for r in rows if r.get("any_mask") is not None], dtype=float)
    return {
        "fpr": float(fprs.mean()) if fprs.size else None,
        "abstention_failure": float(masked.mean()) if masked.size else None,
    }
