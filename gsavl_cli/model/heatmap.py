"""Heatmaps at the frame's size: av (the localizer), obj (the prior), avobj (their mix), and the zero-shot
text (CLIPSeg on the labels CLAP heard, `model.zeroshot`) and textobj (text mixed with the prior).

The original's convention (docs/results.md, "Conventions"), the default here: the coarse 7x7 map is
upsampled bilinearly with `align_corners=True`, each map is min-max normalised, and
avobj = normalise(alpha * av + (1 - alpha) * obj); textobj = normalise(alpha * text + (1 - alpha) * obj) alike.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from gsavl_cli.errors import UsageError
from gsavl_cli.model.config import check_choice
from gsavl_cli.model.localizer import Localizer
from gsavl_cli.model.prior import ObjectPrior

MAP_NAMES = ("av", "obj", "avobj", "text", "textobj")
"""Every heatmap's name (`--map`)."""
PAPER_MAPS = ("av", "obj", "avobj")
"""The maps of the paper, which `eval` scores unless told: the zero-shot ones need weights the paper's run does not."""
TRAINING_FREE_MAPS = ("obj", "text", "textobj")
"""The maps that need no trained model."""
MIXES = {"avobj": "av", "textobj": "text"}
"""Each mixed map and the map it mixes with the object prior's obj (weight alpha on it)."""
ALIGN_CORNERS = True
"""The original GSAVL's upsampling convention (test.py, demo.py)."""


def normalise_map(maps: torch.Tensor) -> torch.Tensor:
    """Min-max normalise over the last two dims to [0,1]; a constant map becomes zeros."""
    low = maps.amin(dim=(-2, -1), keepdim=True)
    spread = maps.amax(dim=(-2, -1), keepdim=True) - low
    return (maps - low) / torch.where(spread > 0, spread, torch.ones_like(spread))


def upsample(maps: torch.Tensor, size: tuple[int, int], align_corners: bool = ALIGN_CORNERS) -> torch.Tensor:
    """[B,h,w] -> [B,H,W], bilinear."""
    return F.interpolate(maps.unsqueeze(1).float(), size=size, mode="bilinear", align_corners=align_corners)[:, 0]


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """Runs the block with `module` in eval mode, then restores its training flag."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


def _group_by_size(sizes: Sequence[tuple[int, int]]) -> dict[tuple[int, int], list[int]]:
    groups: dict[tuple[int, int], list[int]] = {}
    for index, (height, width) in enumerate(sizes):
        groups.setdefault((int(height), int(width)), []).append(index)
    return groups


def _check(maps: Sequence[str], alpha: float) -> tuple[str, ...]:
    wanted = tuple(maps)
    for name in wanted:
        check_choice("heatmap", name, MAP_NAMES)
    if not 0.0 <= alpha <= 1.0:
        raise UsageError(f"alpha must be in [0, 1], got {alpha}")
    return wanted


@torch.no_grad()
def coarse_maps(
    localizer: Localizer | None,
    prior: ObjectPrior | None,
    images: torch.Tensor,
    audio: torch.Tensor | None,
    lengths: torch.Tensor | None,
    maps: Sequence[str] = PAPER_MAPS,
) -> dict[str, torch.Tensor]:
    """The maps before upsampling: `av` [B,h,w] (S_ii) and/or `obj` [B,h,w], as `maps` need."""
    wanted = _check(maps, 0.0)
    coarse: dict[str, torch.Tensor] = {}
    if "av" in wanted or "avobj" in wanted:
        with eval_mode(localizer):
            coarse["av"] = localizer.ssl_map(*localizer(images, audio, lengths))
    if {"obj", *MIXES} & set(wanted):
        if prior is None:
            raise UsageError("the obj, avobj and textobj heatmaps need the object prior")
        coarse["obj"] = prior(images)
    return coarse


def full_maps(
    coarse: dict[str, torch.Tensor],
    size: tuple[int, int],
    maps: Sequence[str] = PAPER_MAPS,
    *,
    alpha: float = 0.4,
    align_corners: bool = ALIGN_CORNERS,
) -> dict[str, torch.Tensor]:
    """Coarse maps [B,h,w] -> normalised heatmaps [B,H,W] at `size`; avobj mixes av and obj, textobj text and obj."""
    wanted = _check(maps, alpha)
    full = {name: normalise_map(upsample(c, size, align_corners)) for name, c in coarse.items()}
    for mixed, own in MIXES.items():
        if mixed in wanted:
            full[mixed] = normalise_map(alpha * full[own] + (1 - alpha) * full["obj"])
    return {name: full[name] for name in wanted}


@torch.no_grad()
def heatmaps(
    localizer: Localizer | None,
    prior: ObjectPrior | None,
    images: torch.Tensor,
    audio: torch.Tensor | None,
    lengths: torch.Tensor | None,
    sizes: Sequence[tuple[int, int]],
    alpha: float = 0.4,
    maps: Sequence[str] = PAPER_MAPS,
    *,
    align_corners: bool = ALIGN_CORNERS,
) -> dict[str, list[torch.Tensor]]:
    """Heatmaps in [0,1] at each frame's (H,W); frames of the same size are upsampled together."""
    wanted = _check(maps, alpha)
    if len(sizes) != images.shape[0]:
        raise ValueError(f"{len(sizes)} frame sizes for {images.shape[0]} images")
    coarse = coarse_maps(localizer, prior, images, audio, lengths, wanted)
    result: dict[str, list[torch.Tensor]] = {name: [None] * len(sizes) for name in wanted}
    for size, indices in _group_by_size(sizes).items():
        index = torch.tensor(indices, device=images.device)
        full = full_maps(
            {k: c[index] for k, c in coarse.items()}, size, wanted, alpha=alpha, align_corners=align_corners
        )
        for name in wanted:
            for position, item in enumerate(indices):
                result[name][item] = full[name][position]
    return result
