"""Training: the self-supervised localizer or a supervised segmentation model (SSL2AVS);
one process, or DDP under torchrun.

Every epoch: train, validate (localizer: heatmap cIoU/AUC when the validation data has
annotations; SSL2AVS: mask M_J), write `last.pt` and, when validation improved,
`best.pt`. `last.pt` holds the optimizer and RNG states, so `--resume` continues
exactly. What differs between model families (data, model, optimizer, loss step,
validation) is the `Recipe` its registered `ModelFamily` gives (`model.family`); the
loop is shared.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from gsavl_cli.data.clips import collate
from gsavl_cli.data.order import EpochOrder, SeededItems
from gsavl_cli.datasets import filter_subset
from gsavl_cli.distributed import init_distributed
from gsavl_cli.errors import GsavlError, UsageError
from gsavl_cli.io.files import write_atomic
from gsavl_cli.io.store import open_store
from gsavl_cli.model import ModelConfig, load_checkpoint, save_checkpoint
from gsavl_cli.model.config import EZVSL_SECONDS
from gsavl_cli.model.family import Recipe, Step, family_for
from gsavl_cli.training_health import Collapse, contrastive_collapse, validation_collapse


@dataclass
class TrainConfig:
    """Everything `gsavl train` can be told, for any model family; the run folder's config.json records it."""

    data: Path
    out: Path
    model: Any = field(default_factory=ModelConfig)  # a registered family's configuration (`model.family`)
    val: Path | None = None
    split: str = "train"
    val_split: str | None = None  # None: the first of test/val found in the validation file
    epochs: int = 20
    batch_size: int = 128
    lr: float | None = None  # None: the family's default (localizer 1e-4 Adam, ssl2avs 2e-5 AdamW)
    seed: int = 123
    workers: int = 2
    patience: int | None = None
    resume: bool = False
    device: str = "cpu"
    pretrained: bool = True
    vggish_checkpoint: Path | None = None
    resnet_checkpoint: Path | None = None
    max_steps: int | None = None  # per epoch; for smoke tests and benchmarks
    subset: str | None = None  # a clip-id list file or a published list name
    identity_init: bool = False  # with pretrained=False: identity image trunk (see model.identity_init)
    backbone_checkpoint: Path | None = None  # ssl2avs: ImageNet ResNet-50 / PVT-v2-b5 weights file
    frames: str = "all"  # ssl2avs: every frame of a clip (AVSegFormer) or only the annotated ones (faster)
    augment: bool = False  # ssl2avs: random flip + crop of each clip (not AVSegFormer's protocol; small data)
    negative_audio: float | None = None  # share of clips with negative audio and an empty target (None: the family's)
    checkpoint_every: int = 1  # write last.pt every N epochs and at the end (best.pt whenever validation improves)
    exclude: tuple[str, ...] = ()  # clip ids left out (`--skip-bad`: the damaged ones)

    def to_json(self) -> dict[str, Any]:
        """The config as JSON values, the model as its family's dict (what config.json holds)."""
        data = asdict(self)
        data["model"] = self.model.to_dict()
        return json.loads(json.dumps(data, default=str))


@dataclass
class EpochLog:
    """One epoch's record: loss, throughput, the share of time spent waiting for data, validation, signs of collapse."""

    epoch: int
    loss: float
    samples_per_s: float
    data_wait_share: float
    seconds: float
    val: dict[str, Any] | None = None
    best: bool = False
    tied: bool = False  # the contrastive loss sat at its all-logits-equal value (`training_health`)
    collapse: Collapse | None = None  # a sign of collapse seen at this epoch (`training_health`)


def trained_audio_window(path: Path, audio_encoder: str = "vggish") -> float | None:
    """The audio window (s) of the stored features the model trains on, recorded in the
    checkpoint so every command gives the model the same input.

    VGGish: the preprocess window, else the median clip length (AVSBench: 5 s). EZ-VSL's
    spectrogram: the window the store's spectrograms were cut with (3 s).
    """
    with open_store(path) as store:
        if audio_encoder == "resnet18":
            return float(store.settings.get("spectrogram_seconds", EZVSL_SECONDS))
        window = store.settings.get("vggish_seconds")
        if window:
            return float(window)
        durations = [float(store.meta(i).get("duration", 0.0)) for i in store.ids]
    positive = [d for d in durations if d > 0]
    return round(float(np.median(positive)), 2) if positive else None


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _check_out(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"cannot write to {out}: {exc.strerror}", hint="choose another --out folder") from None


def train_ids(path: Path, split: str, subset: str | None, exclude: tuple[str, ...] = ()) -> list[str]:
    """The training clips of `split` (and `subset`), less `exclude`; a UsageError naming the splits when none."""
    with open_store(path) as store:
        ids = [i for i in filter_subset(store.split_ids(split), subset) if i not in exclude]
        splits = sorted({str(store.meta(i).get("split")) for i in store.ids})
    if not ids:
        where = f"split {split!r}" + (f" and subset {subset}" if subset else "")
        raise UsageError(
            f"{path} has no clips in {where} (its splits: {', '.join(splits)})",
            hint="pass --split all, another split or another subset",
        )
    return ids


def _loader(
    dataset: Dataset,
    cfg: TrainConfig,
    world: int,
    rank: int,
    collate_fn: Callable[[list[Any]], Any] | None = collate,
) -> DataLoader:
    """Batches in an order, and with augmentation draws, that depend on the seed and the epoch only.

    Not on `--workers` (a speed knob) nor on the main process's RNG: see `gsavl_cli.data.order`.
    """
    sampler = EpochOrder(len(dataset), cfg.seed, world, rank)  # type: ignore[arg-type]
    per_rank = max(1, cfg.batch_size // world)
    return DataLoader(
        SeededItems(dataset),
        batch_size=min(per_rank, len(sampler)),
        sampler=sampler,
        drop_last=True,
        num_workers=cfg.workers,
        collate_fn=collate_fn,
        pin_memory=cfg.device.startswith("cuda"),
        persistent_workers=cfg.workers > 0,
    )


def _autocast(device: str) -> torch.autocast:
    """bf16 on CUDA GPUs that support it; fp32 elsewhere (on the CPU bf16 is many times slower)."""
    enabled = device.startswith("cuda") and torch.cuda.is_bf16_supported()
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=enabled)


def _train_epoch(
    model,
    loader,
    optimizer,
    cfg: TrainConfig,
    on_step: Callable[[int, float], None] | None,
    loss_step: Step,
) -> tuple[float, int, float, float]:
    model.train()
    total, count, waited = 0.0, 0, 0.0
    start = tick = time.perf_counter()
    for step, batch in enumerate(loader):
        if cfg.max_steps is not None and step >= cfg.max_steps:
            break
        waited += time.perf_counter() - tick
        loss, samples = loss_step(model, batch, cfg.device, _autocast(cfg.device))
        value = loss.item()  # one device sync per step
        if not math.isfinite(value):
            raise GsavlError(f"the loss became {value} at step {step}", hint="lower --lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += value * samples
        count += samples
        if on_step is not None:
            on_step(samples, value)
        tick = time.perf_counter()
    seconds = time.perf_counter() - start
    return total / max(count, 1), count, seconds, waited / max(seconds, 1e-9)


def _resume_state(cfg: TrainConfig, model, optimizer) -> dict[str, Any]:
    last = cfg.out / "last.pt"
    if not last.exists():
        raise UsageError(f"--resume: {last} does not exist", hint="train without --resume first")
    loaded = load_checkpoint(last, map_location="cpu")
    if loaded.config.to_dict() != cfg.model.to_dict():
        raise UsageError(
            f"--resume: {last} was trained with another model configuration",
            hint="use the same --model options or a new --out",
        )
    model.load_state_dict(loaded.model.state_dict())
    state = loaded.extra
    if "optimizer" in loaded.raw:
        optimizer.load_state_dict(loaded.raw["optimizer"])
    torch.set_rng_state(state["torch_rng"])  # the loader's order needs no state: it follows from the seed
    return state


def train(
    cfg: TrainConfig,
    *,
    on_epoch: Callable[[EpochLog], None] | None = None,
    on_step_factory: Callable[[int, int], Callable[[int, float], None] | None] | None = None,
) -> Path:
    """Trains and returns the path of the checkpoint to use (best.pt, else last.pt)."""
    if cfg.checkpoint_every < 1:
        raise UsageError(f"--checkpoint-every must be at least 1, got {cfg.checkpoint_every}")
    rank, world, cfg.device = init_distributed(cfg.device)
    if rank == 0:
        _check_out(cfg.out)
    _seed_everything(cfg.seed)
    recipe: Recipe = family_for(cfg.model).recipe(cfg, world)
    model, optimizer = recipe.model, recipe.optimizer
    state = {"epoch": 0, "best": -math.inf, "bad_epochs": 0}
    if cfg.resume:
        state.update(_resume_state(cfg, model, optimizer))
    wrapped = DistributedDataParallel(model, **recipe.ddp_options) if world > 1 else model
    loader = _loader(recipe.dataset, cfg, world, rank, recipe.collate)
    if rank == 0:
        write_atomic(cfg.out / "config.json", json.dumps(cfg.to_json(), indent=2).encode("utf-8"))
    losses: list[float] = []  # this run's epoch losses and validation scores, for `training_health`
    scores: list[float] = []
    for epoch in range(int(state["epoch"]) + 1, cfg.epochs + 1):
        loader.sampler.set_epoch(epoch)  # type: ignore[attr-defined]
        on_step = (
            on_step_factory(epoch, len(loader) if cfg.max_steps is None else min(len(loader), cfg.max_steps))
            if on_step_factory and rank == 0
            else None
        )
        loss, count, seconds, wait_share = _train_epoch(wrapped, loader, optimizer, cfg, on_step, recipe.step)
        log = EpochLog(epoch, loss, count * world / max(seconds, 1e-9), wait_share, seconds)
        losses.append(loss)
        if recipe.chance_loss is not None:
            log.collapse = contrastive_collapse(losses, recipe.chance_loss(loader.batch_size or 1))
            log.tied = log.collapse is not None and log.collapse.kind == "tied"
        if rank == 0:
            if recipe.validate is not None:
                log.val = recipe.validate(model)
                score = log.val[recipe.score]
                scores.append(score)
                log.collapse = log.collapse or validation_collapse(scores, recipe.score)
                log.best = score > state["best"]
                state["bad_epochs"] = 0 if log.best else int(state["bad_epochs"]) + 1
                state["best"] = max(float(state["best"]), score)
            final = epoch == cfg.epochs or _should_stop(cfg, state)
            _save(
                cfg,
                model,
                optimizer,
                epoch,
                state,
                log,
                write_last=final or epoch % cfg.checkpoint_every == 0,
            )
            if on_epoch is not None:
                on_epoch(log)
        if world > 1:
            stop = torch.tensor([_should_stop(cfg, state)], dtype=torch.int32)
            dist.broadcast(stop, 0)
            if stop.item():
                break
        elif _should_stop(cfg, state):
            break
    best = cfg.out / "best.pt"
    return best if best.exists() else cfg.out / "last.pt"


def on_device(model: nn.Module, device: str) -> nn.Module:
    """The model on `device` (channels-last on CUDA, as the loss steps feed it)."""
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if device.startswith("cuda") else model


def trainable(model: nn.Module) -> list[nn.Parameter]:
    """The parameters the optimizer updates (frozen trunks excluded)."""
    return [p for p in model.parameters() if p.requires_grad]


def _should_stop(cfg: TrainConfig, state: dict[str, Any]) -> bool:
    return cfg.patience is not None and int(state["bad_epochs"]) >= cfg.patience


def _save(
    cfg: TrainConfig,
    model,
    optimizer,
    epoch: int,
    state: dict[str, Any],
    log: EpochLog,
    write_last: bool = True,
) -> None:
    extra = {
        "epoch": epoch,
        "best": float(state["best"]),
        "bad_epochs": int(state["bad_epochs"]),
        "torch_rng": torch.get_rng_state(),
        "val": log.val or {},
    }
    if write_last:
        save_checkpoint(cfg.out / "last.pt", model, cfg.model, extra=extra, optimizer_state=optimizer.state_dict())
    if log.best:
        save_checkpoint(cfg.out / "best.pt", model, cfg.model, extra={k: v for k, v in extra.items() if "rng" not in k})
    with (cfg.out / "metrics.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps(asdict(log)) + "\n")
