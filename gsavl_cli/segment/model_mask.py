"""The `model` segmenter: the mask head of the model itself (SSL2AVS), registered like SAM and region.

It takes no prompts and has no image encoder: the Predictor runs the model (its
family's inference adapter gives the "mask" logits at the model's input size) and hands
them over in `ImageEmbedding.outputs`; the mask is the logits upsampled (bilinear) to the
frame's size, thresholded at 0 (sigmoid > 0.5, AVSBench's rule; docs/method.md, "Segmenters").
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch.nn.functional as F

from gsavl_cli.errors import UsageError
from gsavl_cli.samplers import Prompts
from gsavl_cli.segment.base import ImageEmbedding, SegmentResult


class ModelMaskSegmenter:
    """A model's own mask (no prompts, no SAM); `score` is NaN, as the head reports no confidence."""

    name = "model"
    prompted = False
    needs: tuple[str, ...] = ("mask",)

    def __init__(self, *, device: str = "cpu") -> None:
        self.device = device
        self.encoder_calls = 0

    def embed(self, images: list[np.ndarray], batch_size: int = 4) -> list[ImageEmbedding]:
        """Size-only embeddings: the model, not an image encoder, makes the mask."""
        return [ImageEmbedding(None, im.shape[:2], im.shape[:2]) for im in images]

    def segment_many(
        self, embedding: ImageEmbedding, prompt_sets: list[Prompts], *, mask_choice: str = "single", heatmap: Any = None
    ) -> list[SegmentResult]:
        """The model's mask at the frame's size, once per prompt set (the prompts are not used)."""
        logits = embedding.outputs.get("mask")
        if logits is None:
            raise UsageError(
                "the model segmenter needs the model's mask logits",
                hint="use it through the Predictor, with a model that has a mask head (SSL2AVS)",
            )
        upsampled = F.interpolate(
            logits[None].float(), size=embedding.original_size, mode="bilinear", align_corners=False
        )
        mask = (upsampled[0, 0] > 0).cpu().numpy()
        return [SegmentResult(mask, float("nan"), candidates=1, choice_index=0) for _ in prompt_sets]
