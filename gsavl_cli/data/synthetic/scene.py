"""Scenes of the synthetic world: coloured shapes on a background, with exact masks.

A scene shows objects of different classes on a textured (or plain) background, half
of them still and half drifting slowly, bouncing off the frame's edges; the sounding
objects are drawn last, so their mask is exact.
"""

from __future__ import annotations

import numpy as np
import torch

from gsavl_cli.data.synthetic.classes import class_mask, class_spec

BACKGROUNDS = ("texture", "plain")
"""texture: a smooth random texture per clip; plain: one flat colour (with fine grain) for every clip."""

PLAIN_BACKGROUND = (90, 75, 105)
"""A muted violet-grey. Through the identity-initialised trunk (which sees each pixel's
colour, both signs) it is far from every class colour: cosine at most 0.46, against 0.63
(green) for a neutral grey of 85, so the background does not light up with the object."""


def background_image(rng: np.random.Generator, height: int, width: int, mode: str = "texture") -> np.ndarray:
    """A smooth random texture with fine grain (or, `plain`, `PLAIN_BACKGROUND` with grain), [H,W,3] float."""
    if mode == "plain":
        return np.asarray(PLAIN_BACKGROUND, dtype=np.float64) + rng.normal(0, 6, (height, width, 3))
    coarse = torch.from_numpy(rng.uniform(35, 135, (1, 3, height // 12 + 2, width // 12 + 2)))
    smooth = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)
    grain = rng.normal(0, 6, (height, width, 3))
    return smooth[0].permute(1, 2, 0).numpy() + grain


def reflect(x: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Fold positions back into [low, high], like a ball bouncing between two walls."""
    span = np.maximum(high - low, 1e-6)
    phase = np.mod(x - low, 2 * span)
    return low + span - abs(phase - span)


def _place(rng: np.random.Generator, radii: np.ndarray, height: int, width: int) -> np.ndarray:
    """Object centres [K,2] (x, y), inside the frame and, when possible, not overlapping."""
    centres = np.zeros((len(radii), 2))
    for k, r in enumerate(radii):
        for _ in range(100):
            centres[k] = rng.uniform([r, r], [width - r, height - r])
            gaps = np.hypot(*(centres[:k] - centres[k]).T) - radii[:k] - r
            if (gaps > 2).all():
                break
    return centres


def _trajectories(
    rng: np.random.Generator, radii: np.ndarray, times: np.ndarray, height: int, width: int
) -> np.ndarray:
    """Centres [T,K,2] over time: half of the clips still, the others drifting slowly."""
    start = _place(rng, radii, height, width)
    speed = 0.04 * width * rng.uniform(-1, 1, start.shape) * (rng.random() < 0.5)
    path = start[None] + speed[None] * times[:, None, None]
    r = radii[None, :]
    return np.stack([reflect(path[..., 0], r, width - r), reflect(path[..., 1], r, height - r)], axis=-1)


def render_scene(
    rng: np.random.Generator,
    categories: list[str],
    width: int,
    height: int,
    seconds: float,
    fps: int,
    *,
    scale: tuple[float, float] = (0.13, 0.2),
    background: str = "texture",
    sounding: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Frames [T,H,W,3] uint8 showing `categories` (the first `sounding` ones sound) and their masks [T,H,W].

    Radii are drawn from `scale` x the shorter side. The sounding objects are drawn
    last, so they are never hidden; the mask (their union) is exact.
    """
    times = np.arange(round(seconds * fps)) / fps
    radii = rng.uniform(*scale, len(categories)) * min(width, height)
    centres = _trajectories(rng, radii, times, height, width)
    image = np.broadcast_to(background_image(rng, height, width, background), (len(times), height, width, 3))
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    shade = rng.normal(0, 8, (height, width, 1))
    masks = []
    for k in reversed(range(len(categories))):
        dx = xs[None] - centres[:, k, 0, None, None]
        dy = ys[None] - centres[:, k, 1, None, None]
        masks.append(class_mask(categories[k], dx, dy, radii[k]))
        image = np.where(masks[-1][..., None], np.asarray(class_spec(categories[k]).colour) + shade, image)
    return np.clip(image, 0, 255).round().astype(np.uint8), np.any(masks[len(masks) - sounding :], axis=0)


def scene_categories(
    rng: np.random.Generator, sounding: str | list[str], classes: list[str], n_objects: int
) -> list[str]:
    """The sounding class(es) first, then silent objects of other classes (never a class twice)."""
    first = [sounding] if isinstance(sounding, str) else list(sounding)
    others = [c for c in classes if c not in first]
    count = min(n_objects - len(first), len(others))
    return [*first, *rng.choice(others, size=max(count, 0), replace=False).tolist()]
