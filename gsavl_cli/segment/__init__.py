"""Segmenters: point prompts (+ heatmap) -> a binary mask at the frame's size.

- `sam`: Segment Anything, frozen (`sam.SamSegmenter`, weights through the resolver);
- `region`: the prompt-following heatmap region, needs no weights (`region.RegionSegmenter`).
"""

from __future__ import annotations

from pathlib import Path

from gsavl_cli.errors import UsageError
from gsavl_cli.segment.base import MASK_CHOICES, ImageEmbedding, Segmenter, SegmentResult, soft_iou
from gsavl_cli.segment.region import RegionSegmenter, prompt_region
from gsavl_cli.segment.sam import SAM_ARCHS, SamSegmenter, load_sam

SEGMENTERS = ("sam", "region")
ALIASES = {"threshold": "region"}


def make_segmenter(
    kind: str, device: str = "cpu", *, sam_model: str = "vit_h", sam_checkpoint: Path | None = None
) -> Segmenter:
    """SAM (weights through the resolver) or the prompt-following region segmenter."""
    kind = ALIASES.get(kind, kind)
    if kind == "region":
        return RegionSegmenter(device=device)
    if kind != "sam":
        raise UsageError(f"unknown segmenter {kind!r}", hint=f"choose from {', '.join(SEGMENTERS)}")
    return SamSegmenter(load_sam(sam_model, sam_checkpoint, device=device), device=device)


__all__ = [
    "MASK_CHOICES",
    "SAM_ARCHS",
    "SEGMENTERS",
    "ImageEmbedding",
    "RegionSegmenter",
    "SamSegmenter",
    "SegmentResult",
    "Segmenter",
    "load_sam",
    "make_segmenter",
    "prompt_region",
    "soft_iou",
]
