"""Segmenters: point prompts (+ heatmap, or the model's own outputs) -> a binary mask at the frame's size.

Every segmenter is registered by name (`register_segmenter`) with a factory
`(device, *, sam_model, sam_checkpoint) -> Segmenter`; `make_segmenter(name, ...)` builds one
(docs/architecture.md, "Adding a segmenter"):

- `sam`: Segment Anything, frozen (`sam.SamSegmenter`, weights through the resolver);
- `sam2`: Segment Anything 2.1, frozen (`sam2.Sam2Segmenter`; the optional `transformers`, `gsavl[sam2]`);
- `region`: the prompt-following heatmap region, needs no weights (`region.RegionSegmenter`);
- `model`: the model's own mask head, no prompts (`model_mask.ModelMaskSegmenter`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gsavl_cli.errors import UsageError
from gsavl_cli.segment.base import MASK_CHOICES, ImageEmbedding, Segmenter, SegmentResult, soft_iou
from gsavl_cli.segment.model_mask import ModelMaskSegmenter
from gsavl_cli.segment.region import RegionSegmenter, prompt_region
from gsavl_cli.segment.sam import SAM_ARCHS, SamSegmenter, load_sam
from gsavl_cli.segment.sam2 import SAM2_MODELS, Sam2Segmenter, load_sam2

SegmenterFactory = Callable[..., Segmenter]
"""(device, *, sam_model, sam_checkpoint) -> a segmenter; a factory ignores the options it does not use."""

SEGMENTERS: dict[str, SegmenterFactory] = {}
"""Name -> factory, in registration order (the CLI's `--segmenter` offers the built-in ones)."""
ALIASES = {"threshold": "region"}


def register_segmenter(name: str, factory: SegmenterFactory) -> None:
    """Makes `make_segmenter(name)` (and `Predictor.from_checkpoint(segmenter=name)`) build `factory`'s segmenter."""
    if name in SEGMENTERS and SEGMENTERS[name] is not factory:
        raise ValueError(f"a segmenter named {name!r} is already registered")
    SEGMENTERS[name] = factory


def unregister_segmenter(name: str) -> None:
    """Removes a registered segmenter (tests and plugins that register one for a while)."""
    SEGMENTERS.pop(name, None)


def make_segmenter(
    kind: str, device: str = "cpu", *, sam_model: str = "vit_h", sam_checkpoint: Path | None = None
) -> Segmenter:
    """The segmenter registered as `kind` (SAM's weights through the resolver)."""
    kind = ALIASES.get(kind, kind)
    if kind not in SEGMENTERS:
        raise UsageError(f"unknown segmenter {kind!r}", hint=f"choose from {', '.join(SEGMENTERS)}")
    return SEGMENTERS[kind](device, sam_model=sam_model, sam_checkpoint=sam_checkpoint)


def _sam(device: str, *, sam_model: str = "vit_h", sam_checkpoint: Path | None = None, **_: object) -> Segmenter:
    return SamSegmenter(load_sam(sam_model, sam_checkpoint, device=device), device=device)


def _sam2(device: str, *, sam_model: str = "vit_h", sam_checkpoint: Path | None = None, **_: object) -> Segmenter:
    return Sam2Segmenter(load_sam2(sam_model, sam_checkpoint, device=device), device=device)


register_segmenter("sam", _sam)
register_segmenter("sam2", _sam2)
register_segmenter("region", lambda device, **_: RegionSegmenter(device=device))
register_segmenter("model", lambda device, **_: ModelMaskSegmenter(device=device))

__all__ = [
    "MASK_CHOICES",
    "SAM2_MODELS",
    "SAM_ARCHS",
    "SEGMENTERS",
    "ImageEmbedding",
    "ModelMaskSegmenter",
    "RegionSegmenter",
    "Sam2Segmenter",
    "SamSegmenter",
    "SegmentResult",
    "Segmenter",
    "load_sam",
    "load_sam2",
    "make_segmenter",
    "prompt_region",
    "register_segmenter",
    "soft_iou",
    "unregister_segmenter",
]
