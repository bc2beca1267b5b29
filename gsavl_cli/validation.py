"""Ground truth, the heatmap protocol and validation: what `train` and `eval` score alike.

`eval` scores every annotated clip with these rules (docs/results.md, "Conventions");
training validates the localizer-style families with `heatmap_metrics`, the av map
alone through the same `Predictor` (no prior, no SAM), so a validation cIoU is the
number `eval` would report for that map.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gsavl_cli import metrics
from gsavl_cli.errors import UsageError
from gsavl_cli.io.store import Store, open_store
from gsavl_cli.predictor import ClipInput, Predictor
from gsavl_cli.segment import RegionSegmenter

VGGSS_GRID = 224  # the VGG-SS protocol scores heatmaps on a 224x224 grid


def _annotated(store: Store, clip_id: str) -> bool:
    arrays = store.arrays(clip_id)
    return "masks" in arrays or "boxes" in arrays


def validation_ids(path: Path, split: str | None = None) -> list[str]:
    """Annotated clips of `split` (None: test, else val, else all)."""
    with open_store(path) as store:
        if split is None:
            splits = {store.meta(i).get("split") for i in store.ids}
            split = next((s for s in ("test", "val") if s in splits), "all")
        ids = [i for i in store.split_ids(split) if _annotated(store, i)]
    if not ids:
        raise UsageError(
            f"{path} has no annotated clips in split {split!r}",
            hint="evaluation needs masks (AVSBench) or boxes (VGG-SS)",
        )
    return ids


def ground_truth(item: dict[str, np.ndarray], size: tuple[int, int], frame: int = 0) -> np.ndarray:
    """The mask of frame `frame` (nearest-resized to `size`), or the union of the boxes on a grid of `size`."""
    if "masks" in item:
        frames = [int(f) for f in item.get("mask_frames", range(len(item["masks"])))]
        mask = item["masks"][frames.index(frame) if frame in frames else 0]
        if mask.shape != tuple(size):
            resized = torch.nn.functional.interpolate(
                torch.from_numpy(mask)[None, None].float(), size=tuple(size), mode="nearest"
            )
            return resized[0, 0].numpy() > 0.5
        return mask.astype(bool)
    return metrics.boxes_to_mask(item["boxes"], size=size)


def protocol_size(item: dict[str, np.ndarray], frame_size: tuple[int, int]) -> tuple[int, int]:
    """Masks are scored at their own resolution (the frame's); boxes on the VGG-SS 224 grid."""
    if "masks" in item:
        return tuple(int(s) for s in item["masks"].shape[1:3])  # type: ignore[return-value]
    return (VGGSS_GRID, VGGSS_GRID)


def heatmap_row(heatmap: np.ndarray | torch.Tensor, gt: np.ndarray) -> dict[str, float]:
    """The heatmap protocol: median threshold (cIoU, IoU, F) and the argmax pointing game."""
    heat = heatmap.float().cpu().numpy() if isinstance(heatmap, torch.Tensor) else np.asarray(heatmap, dtype=np.float32)
    pred = heat >= metrics.median_threshold(heat)
    return {
        "ciou": metrics.ciou(heat, gt),
        "iou": metrics.mask_iou(pred, gt),
        "mask_f": metrics.f_measure(pred, gt),
        "pointing": float(metrics.pointing_game(heat, gt)),
    }


@torch.no_grad()
def heatmap_metrics(model: nn.Module, path: Path, ids: list[str], device: str, batch_size: int = 32) -> dict[str, Any]:
    """Validation during training: the av map alone, through the same Predictor (no prior, no SAM)."""
    was_training = model.training
    predictor = Predictor(model, RegionSegmenter(), device=device)
    rows = []
    with open_store(path) as store:
        for start in range(0, len(ids), batch_size):
            items = [
                store.read(i, ("first_frame", "waveform", "masks", "mask_frames", "boxes"))
                for i in ids[start : start + batch_size]
            ]
            prepared = predictor.prepare(
                [ClipInput(it["first_frame"], it["waveform"], None, i) for it, i in zip(items, ids[start:])],
                maps=("av",),
            )
            for item, clip in zip(items, prepared):
                size = protocol_size(item, clip.size)
                rows.append(heatmap_row(predictor.heatmap_tensor("av", clip=clip, size=size), ground_truth(item, size)))
    model.train(was_training)
    return metrics.summarize(rows)
