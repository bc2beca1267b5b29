"""Pictures for people: heatmap colouring, overlays with prompt points and mask outlines."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.utils import draw_keypoints

_STOPS = np.array([[0, 0, 128], [0, 0, 255], [0, 255, 255], [255, 255, 0], [255, 0, 0], [128, 0, 0]], dtype=np.float32)


def colourise(heatmap: np.ndarray) -> np.ndarray:
    """[H,W] in [0,1] -> [H,W,3] uint8, a jet-like ramp (cold blue to hot red)."""
    h = np.clip(np.nan_to_num(np.asarray(heatmap, dtype=np.float32)), 0.0, 1.0) * (len(_STOPS) - 1)
    low = np.floor(h).astype(int).clip(0, len(_STOPS) - 2)
    frac = (h - low)[..., None]
    return (_STOPS[low] * (1 - frac) + _STOPS[low + 1] * frac).astype(np.uint8)


def outline(mask: np.ndarray, width: int = 2) -> np.ndarray:
    """The boundary pixels of a binary mask (mask minus its erosion)."""
    m = torch.from_numpy(np.asarray(mask, dtype=np.float32))[None, None]
    eroded = -F.max_pool2d(-m, 2 * width + 1, stride=1, padding=width)
    return (m - eroded)[0, 0].numpy() > 0


def _as_chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)


def overlay(
    frame: np.ndarray,
    heatmap: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    points: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    *,
    heat_alpha: float = 0.45,
    mask_colour: tuple[int, int, int] = (0, 255, 0),
    mask_fill: float = 0.3,
) -> np.ndarray:
    """The frame with the heatmap blended in, the mask tinted and outlined, the prompts marked.

    Positive prompts are green dots, negative ones red, each ringed in white so they show
    on any background.
    """
    image = frame.astype(np.float32)
    if heatmap is not None:
        image = (1 - heat_alpha) * image + heat_alpha * colourise(heatmap).astype(np.float32)
    if mask is not None:  # a tint inside, a solid outline (plain array ops: fast enough for video)
        region = np.asarray(mask, dtype=bool)
        colour = np.asarray(mask_colour, dtype=np.float32)
        image[region] = (1 - mask_fill) * image[region] + mask_fill * colour
        image[outline(region, max(1, min(frame.shape[:2]) // 150))] = colour
    canvas = _as_chw(image.clip(0, 255).astype(np.uint8))
    if points is not None and len(points):
        labels = np.ones(len(points), dtype=int) if labels is None else np.asarray(labels)
        radius = max(2, min(frame.shape[:2]) // 80)
        for label, colour in ((1, (0, 200, 0)), (0, (220, 0, 0))):
            chosen = np.asarray(points, dtype=np.float32)[labels == label]
            if len(chosen):
                keypoints = torch.from_numpy(chosen)[None]
                canvas = draw_keypoints(canvas, keypoints, colors=(255, 255, 255), radius=radius + 1)
                canvas = draw_keypoints(canvas, keypoints, colors=colour, radius=radius)
    return canvas.permute(1, 2, 0).numpy().copy()


def thumbnail(image: np.ndarray, height: int = 128) -> np.ndarray:
    """Resized copy with the given height (aspect kept), for report grids."""
    t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
    width = max(1, round(image.shape[1] * height / image.shape[0]))
    return (
        F.interpolate(t, size=(height, width), mode="bilinear", antialias=True, align_corners=False)[0]
        .permute(1, 2, 0)
        .clamp(0, 255)
        .byte()
        .numpy()
    )
