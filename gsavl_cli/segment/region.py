"""The no-SAM segmenter that follows the prompts: the heatmap region that contains them.

Without SAM weights a mask can still be prompt-driven: keep the pixels whose heat is
at least `fraction` x the map's peak, and of those only the connected regions (8-
connectivity) that contain a positive prompt. The level is lowered to the coldest
positive prompt when one lies below it, so every positive prompt is inside the mask.
Negative prompts remove a region they fall in unless a positive prompt is in it too.
(The median threshold is not a segmenter: it belongs to the VGG-SS cIoU metric.)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy import ndimage

from gsavl_cli.errors import UsageError
from gsavl_cli.samplers import Prompts
from gsavl_cli.segment.base import ImageEmbedding, SegmentResult, check_image, frame_heatmap, soft_iou

REGION_FRACTION = 0.5
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def prompt_region(heatmap: np.ndarray, prompts: Prompts, fraction: float = REGION_FRACTION) -> np.ndarray:
    """bool [H,W]: the connected super-level regions of `heatmap` that hold the positive prompts."""
    if not 0.0 < fraction <= 1.0:
        raise UsageError(f"region fraction must be in (0, 1], got {fraction}")
    heat = np.asarray(heatmap, dtype=np.float32)
    height, width = heat.shape
    pixels = np.clip(np.rint(prompts.points).astype(int), 0, [width - 1, height - 1])
    positive, negative = pixels[prompts.labels == 1], pixels[prompts.labels == 0]
    if len(positive) == 0:
        return np.zeros_like(heat, dtype=bool)
    level = min(fraction * float(heat.max()), float(heat[positive[:, 1], positive[:, 0]].min()))
    labels, _ = ndimage.label(heat >= level, structure=_EIGHT_CONNECTED)
    keep = set(labels[positive[:, 1], positive[:, 0]].tolist())
    keep -= set(labels[negative[:, 1], negative[:, 0]].tolist()) - keep
    return np.isin(labels, sorted(keep - {0}))


class RegionSegmenter:
    """Prompt-following heatmap regions (see the module docstring); needs no weights."""

    name = "region"
    prompted = True
    needs: tuple[str, ...] = ()

    def __init__(self, *, fraction: float = REGION_FRACTION, device: str = "cpu") -> None:
        self.fraction = fraction
        self.device = device
        self.encoder_calls = 0

    def embed(self, images: list[np.ndarray], batch_size: int = 4) -> list[ImageEmbedding]:
        """Size-only embeddings: there is no image encoder."""
        return [ImageEmbedding(None, im.shape[:2], im.shape[:2]) for im in map(check_image, images)]

    def segment_many(
        self, embedding: ImageEmbedding, prompt_sets: list[Prompts], *, mask_choice: str = "single", heatmap: Any = None
    ) -> list[SegmentResult]:
        """One region mask per prompt set; `score` is the mask's agreement with the heatmap."""
        if heatmap is None:
            raise UsageError("the region segmenter needs the heatmap")
        heat = frame_heatmap(heatmap, embedding.original_size, "cpu")
        results = []
        for prompts in prompt_sets:
            mask = prompt_region(heat.numpy(), prompts, self.fraction)
            score = float(soft_iou(heat, torch.from_numpy(mask)))
            results.append(SegmentResult(mask, score, candidates=1, choice_index=0))
        return results
