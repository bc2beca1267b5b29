"""What every segmenter shares: image embeddings, results, the agreement measure, checks.

Agreement between a heatmap h in [0,1] and a binary mask m is the soft IoU
sum(min(h, m)) / sum(max(h, m)) = (heat inside m) / (area of m + heat outside m). It
is 1 only when the heatmap equals the mask, it is bounded in [0,1] (so a threshold
means the same on every frame) and it penalises both a mask that misses the heat and
one that spills over cold pixels. It drives the `heatmap` mask choice and the
cascade's stop rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from gsavl_cli import samplers
from gsavl_cli.errors import UsageError
from gsavl_cli.samplers import Prompts

MASK_CHOICES = ("single", "score", "heatmap")


@dataclass
class ImageEmbedding:
    """One frame's image features [1,C,h,w] (None for segmenters without an encoder) and its sizes as (H, W).

    `outputs` holds the model's own outputs for the frame that the segmenter reads
    (`Segmenter.needs`, e.g. the mask logits); the Predictor fills them.
    """

    features: torch.Tensor | None
    input_size: tuple[int, int]
    original_size: tuple[int, int]
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class SegmentResult:
    """A mask at the frame's size, the segmenter's confidence in it, and how it was chosen."""

    mask: np.ndarray
    score: float
    candidates: int
    choice_index: int


class Segmenter(Protocol):
    """What the Predictor needs from a segmenter (`SamSegmenter`, `RegionSegmenter`, `ModelMaskSegmenter`).

    `prompted`: whether its masks follow the prompts (and so depend on the sampler and the
    map); a segmenter that takes none (the model's own mask) is asked once per frame.
    `needs`: names of the model outputs it reads from `ImageEmbedding.outputs` (the
    model's "mask" logits); () for a segmenter that sees only the image and the prompts.
    """

    name: str
    encoder_calls: int
    prompted: bool
    needs: tuple[str, ...]

    def embed(self, images: list[np.ndarray], batch_size: int = 4) -> list[ImageEmbedding]:
        """What segmenting a frame needs, computed once per frame (SAM: image features; others: only the size)."""
        ...

    def segment_many(
        self, embedding: ImageEmbedding, prompt_sets: list[Prompts], *, mask_choice: str = "single", heatmap: Any = None
    ) -> list[SegmentResult]:
        """One mask per prompt set for the embedded frame; `mask_choice` picks among the candidate masks."""
        ...


def soft_iou(heatmap: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Agreement of a heatmap [H,W] with binary masks [...,H,W]: sum(min) / sum(max).

    The heatmap is clamped to [0,1]; the score is 0 when both are empty.
    """
    heat = heatmap.clamp(0, 1)
    m = masks.to(heat.dtype)
    inter = (heat * m).sum(dim=(-2, -1))
    union = torch.maximum(heat, m).sum(dim=(-2, -1))
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(union))


def check_image(image: np.ndarray) -> np.ndarray:
    """Refuses anything but an RGB uint8 frame [H,W,3]; returns it unchanged."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        raise UsageError(f"frames must be RGB as [H,W,3] uint8 arrays, got {shape}")
    return image


def frame_heatmap(heatmap: Any, size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """The heatmap as a tensor on `device`, refused unless it has the frame's size."""
    heat = samplers.as_heatmap(heatmap).to(device)
    if tuple(heat.shape) != tuple(size):
        raise UsageError(
            f"heatmap {tuple(heat.shape)} and frame {tuple(size)} differ in size",
            hint="upsample the heatmap to the frame's size first",
        )
    return heat


def check_mask_choice(mask_choice: str, heatmap: Any) -> None:
    """Refuses an unknown mask choice, and 'heatmap' without a heatmap."""
    if mask_choice not in MASK_CHOICES:
        raise UsageError(f"unknown mask choice '{mask_choice}'", hint=f"available: {', '.join(MASK_CHOICES)}")
    if mask_choice == "heatmap" and heatmap is None:
        raise UsageError("mask choice 'heatmap' needs the heatmap")
