"""The supervised-segmentation part of training (SSL2AVS): data, the loss step, M_J validation.

`commands.train` runs the loop (epochs, DDP, checkpoints, exact resume) for every model
family; this module holds what is particular to segmentation models trained on masks:

- data: `SegmentationClips`, a clip's frames each with its second of audio and its mask
  (S4 training clips have a mask on the first frame only; MS3 on all five);
- step: the model's forward on every frame of the batch, then `model.training_loss`;
- validation: M_J (mean per-frame IoU of `sigmoid(logits) > 0.5`, AVSBench's rule for
  empty masks) and the per-frame M_F, each frame scored at its mask's own resolution.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from gsavl_cli import metrics
from gsavl_cli.data.clips import SegmentationClips
from gsavl_cli.datasets import store_dataset
from gsavl_cli.errors import UsageError
from gsavl_cli.io.store import open_store

VALIDATION_SPLITS = ("val", "test")
"""Without --val-split, the first of these that has annotated clips (val first: no test leakage)."""

DEFAULT_LR = 2e-5  # AVSegFormer / SSL2AVS: AdamW, lr 2e-5, batch 4
DEFAULT_BATCH = 4
DEFAULT_NEGATIVE_AUDIO = 0.5
"""Half the training clips hear negative audio (AVSBench-Robust's balanced positive/negative
sampling; not the paper's protocol, which `--negative-audio 0` restores: docs/results.md)."""


def default_epochs(path: Path) -> int:
    """AVSegFormer's schedule for the store's layout (its `segmentation_epochs`: MS3 60, S4 30)."""
    return store_dataset(path).segmentation_epochs


def _annotated(store, ids: list[str]) -> list[str]:
    return [i for i in ids if "mask_frames" in store.read(i, ("mask_frames",))]


def segmentation_val_ids(path: Path, split: str | None, *, required: bool) -> list[str]:
    """Clips with masks in `split` (default: val, else test); [] when none and not `required`."""
    with open_store(path) as store:
        if split is None:
            for candidate in VALIDATION_SPLITS:
                ids = _annotated(store, store.split_ids(candidate))
                if ids:
                    return ids
            ids = []
        else:
            ids = _annotated(store, store.split_ids(split))
    if not ids and required:
        where = f"split {split!r}" if split else "its val or test split"
        raise UsageError(
            f"{path} has no clips with masks in {where}", hint="validation of a segmentation model needs masks"
        )
    return ids


def segmentation_dataset(
    path: Path, ids: list[str], image_size: int, frames: str, augment: bool = False, negatives: float = 0.0
) -> SegmentationClips:
    """SSL2AVS's training items: `SegmentationClips` of `ids` at `image_size`, all frames or only the
    annotated ones, a share `negatives` of them with negative audio and an empty target."""
    return SegmentationClips(path, ids, image_size, frames, augment=augment, negatives=negatives)


def segmentation_step(
    model: nn.Module, batch: dict[str, torch.Tensor], device: str, autocast: torch.autocast
) -> tuple[torch.Tensor, int]:
    """Forward every frame of the batch's clips, then the family's loss on the labelled ones."""
    module = model.module if isinstance(model, DistributedDataParallel) else model
    images = batch["images"].flatten(0, 1).to(device, non_blocking=True)
    audio = batch["audio"].flatten(0, 1).to(device, non_blocking=True)
    if device.startswith("cuda"):
        images = images.contiguous(memory_format=torch.channels_last)
    with autocast:
        output = model(images, audio)
    masks = batch["masks"].to(device, non_blocking=True)
    labelled = batch["labelled"].to(device, non_blocking=True)
    heard = batch["heard"].to(device, non_blocking=True) if "heard" in batch else None
    loss, _ = module.training_loss(output, masks, labelled, heard)
    return loss, int(batch["images"].shape[0])


@torch.no_grad()
def segmentation_metrics(
    model: nn.Module,
    path: Path,
    ids: list[str],
    device: str,
    *,
    image_size: int,
    clips_per_batch: int = 4,
    audio_from: dict[str, str] | None = None,
) -> dict[str, Any]:
    """M_J ("miou") and "best_threshold_f" (each frame's soft mask at its best threshold, then averaged) on the annotated frames of `ids`.

    Logits are upsampled (bilinear) to each mask's resolution; `sigmoid > 0.5` is the mask.
    `audio_from` gives clips another clip's audio (the shuffled-audio control).
    """
    was_training = model.training
    model.eval()
    dataset = SegmentationClips(path, ids, image_size, "annotated", audio_from)
    rows: list[dict[str, float]] = []
    try:
        for start in range(0, len(ids), clips_per_batch):
            items = [dataset[i] for i in range(start, min(start + clips_per_batch, len(ids)))]
            images = torch.cat([it["images"] for it in items]).to(device)
            audio = torch.cat([it["audio"] for it in items]).to(device)
            logits = model(images, audio)["mask_logits"].float()
            offset = 0
            for it in items:
                truth = dataset.store.read(ids[int(it["index"])], ("masks",))["masks"].astype(bool)
                count = len(truth)
                scores = F.interpolate(
                    logits[offset : offset + count], size=truth.shape[1:], mode="bilinear", align_corners=False
                )[:, 0]
                offset += count
                probs = scores.sigmoid().cpu().numpy()
                ious = metrics.mask_iou_batch(probs > 0.5, truth)
                rows += [
                    {"iou": float(iou), "best_threshold_f": metrics.f_measure_soft(p, g)}
                    for iou, p, g in zip(ious, probs, truth)
                ]
    finally:
        model.train(was_training)
    summary = metrics.summarize(rows)
    best_f = [r["best_threshold_f"] for r in rows if not np.isnan(r["best_threshold_f"])]
    return {
        "miou": summary["miou"],
        "best_threshold_f": float(np.mean(best_f)) if best_f else None,
        "frames": len(rows),
        "clips": len(ids),
    }


def rotated_audio(ids: list[str]) -> dict[str, str]:
    """The shuffled-audio control: clip i gets clip i+1's audio (a derangement of the sorted ids)."""
    if len(ids) < 2:
        raise UsageError("shuffled audio needs at least 2 clips")
    order = sorted(ids)
    return {clip: order[(k + 1) % len(order)] for k, clip in enumerate(order)}
