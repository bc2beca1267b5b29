"""Pictures for people: heatmap colouring, overlays with prompt points and mask outlines."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

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


def _dot(image: np.ndarray, x: float, y: float, colour: tuple[int, int, int], radius: int) -> None:
    h, w = image.shape[:2]
    cx, cy = int(round(x)), int(round(y))
    y0, y1, x0, x1 = max(cy - radius, 0), min(cy + radius + 1, h), max(cx - radius, 0), min(cx + radius + 1, w)
    image[y0:y1, x0:x1] = (255, 255, 255)
    inner = max(radius - 1, 0)
    image[max(cy - inner, 0) : min(cy + inner + 1, h), max(cx - inner, 0) : min(cx + inner + 1, w)] = colour


def overlay(
    frame: np.ndarray,
    heatmap: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    points: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    *,
    heat_alpha: float = 0.45,
    mask_colour: tuple[int, int, int] = (0, 255, 0),
) -> np.ndarray:
    """The frame with the heatmap blended in, the mask outlined and the prompt points marked."""
    image = frame.astype(np.float32)
    if heatmap is not None:
        image = (1 - heat_alpha) * image + heat_alpha * colourise(heatmap).astype(np.float32)
    image = image.clip(0, 255).astype(np.uint8)
    if mask is not None:
        image[outline(mask, max(1, min(frame.shape[:2]) // 150))] = mask_colour
    if points is not None:
        labels = np.ones(len(points), dtype=int) if labels is None else labels
        radius = max(2, min(frame.shape[:2]) // 80)
        for (x, y), label in zip(points, labels):
            _dot(image, x, y, (0, 200, 0) if label == 1 else (220, 0, 0), radius)
    return image


def thumbnail(image: np.ndarray, height: int = 128) -> np.ndarray:
    """Resized copy with the given height (aspect kept), for report grids."""
    t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
    width = max(1, round(image.shape[1] * height / image.shape[0]))
    return F.interpolate(t, size=(height, width), mode="bilinear", antialias=True, align_corners=False)[0].permute(1, 2, 0).clamp(0, 255).byte().numpy()
