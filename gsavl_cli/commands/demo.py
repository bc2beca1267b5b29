"""`gsavl demo`: the whole pipeline on the synthetic world, offline, in a few minutes.

It goes through the real subcommands' library functions: render -> preprocess ->
train -> eval (trained, untrained, centre prior) -> localize. No pretrained weights
can be assumed offline, so the encoders start from random weights; SAM is used when
its weights are found, else the prompt-following region segmenter.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gsavl_cli import metrics
from gsavl_cli.commands.evaluate import EvalSettings, run_evaluation
from gsavl_cli.commands.localize import LocalizeOutputs, LocalizeSettings, localize_clips
from gsavl_cli.commands.preprocess import make_settings, run_preprocess
from gsavl_cli.commands.train import EpochLog, TrainConfig, train
from gsavl_cli.console import warning_text
from gsavl_cli.data.synthetic import WorldConfig, render_world
from gsavl_cli.datasets import discover, get_dataset
from gsavl_cli.errors import GsavlError, UsageError, WeightsError
from gsavl_cli.io.store import open_store
from gsavl_cli.model import ModelConfig, build_localizer, config_from_preset, save_checkpoint
from gsavl_cli.predictor import SamplerChoice
from gsavl_cli.segment import make_segmenter
from gsavl_cli.validation import ground_truth, heatmap_row, validation_ids


@dataclass
class DemoConfig:
    """The demo's world and recipe (docs/results.md, "the synthetic world", says why each)."""

    n_train: int = 128
    n_test: int = 64
    n_classes: int = 6  # red, green, blue, yellow, magenta, cyan: well apart for a colour-only image side
    objects: tuple[int, int] = (3, 3)  # the sounding object and two silent distractors (a random pick: 1 in 3)
    object_scale: tuple[float, float] = (0.22, 0.3)  # large objects, as AVSBench's
    width: int = 160
    height: int = 120
    background: str = "plain"  # a per-clip texture would identify the pair (a shortcut)
    epochs: int = 30
    batch_size: int = 16
    lr: float = 2e-3  # only the projections train (frozen stand-in encoders)
    image_size: int = 257  # 32 x 8 + 1: the identity trunk's 9x9 cells land where the upsampled map draws them
    beta: float = 2.0  # the global-alignment term: without it the MIL max sits on the shared background (a tie)
    vggish_seconds: float = 0.96  # one log-mel example per clip keeps CPU training short
    seed: int = 0

    def __post_init__(self) -> None:
        """Bad counts fail here, before minutes of rendering."""
        if self.epochs < 1 or self.n_train < 2 or self.n_test < 1:
            raise UsageError(
                f"the demo needs at least 1 epoch, 2 training clips and 1 test clip; got {self.epochs}, "
                f"{self.n_train}, {self.n_test}",
                hint="raise --epochs / --train-clips / --test-clips",
            )

    def world(self) -> WorldConfig:
        """The synthetic world to render from the demo's counts, sizes and seed (no validation clips)."""
        return WorldConfig(
            n_train=self.n_train,
            n_val=0,
            n_test=self.n_test,
            n_classes=self.n_classes,
            object_scale=self.object_scale,
            objects=self.objects,
            width=self.width,
            height=self.height,
            background=self.background,
            seed=self.seed,
        )

    def model(self) -> ModelConfig:
        """The gsavl preset on fixed stand-in encoders: identity image trunk, standardised random VGGish."""
        return config_from_preset(
            "gsavl",
            image_size=self.image_size,
            beta=self.beta,
            freeze_image=True,
            freeze_audio=True,
            standardize_audio=True,
            audio_seconds=self.vggish_seconds,
            test_interpolation=get_dataset("avsbench-s4").test_interpolation,
        )


def _segmenter_kind(sam_model: str, sam_checkpoint: Path | None, device: str) -> str:
    """SAM when its weights are at hand (never downloads here), else the prompt-following region segmenter."""
    import os

    previous = os.environ.get("GSAVL_OFFLINE")
    os.environ["GSAVL_OFFLINE"] = "1"
    try:
        make_segmenter("sam", device, sam_model=sam_model, sam_checkpoint=sam_checkpoint)
        return "sam"
    except WeightsError:
        return "region"
    finally:
        if previous is None:
            os.environ.pop("GSAVL_OFFLINE", None)
        else:
            os.environ["GSAVL_OFFLINE"] = previous


def centre_prior_metrics(data: Path, ids: list[str]) -> dict[str, Any]:
    """The model-free baseline: a centred disc over half the frame."""
    rows = []
    with open_store(data) as store:
        for clip_id in ids:
            item = store.read(clip_id, ("first_frame", "masks", "mask_frames", "boxes"))
            size = item["first_frame"].shape[:2]
            rows.append(heatmap_row(torch.from_numpy(metrics.centre_prior(*size)), ground_truth(item, size)))
    return metrics.summarize(rows)


def _headline(summary: dict[str, Any], sampler: str | None) -> dict[str, Any]:
    """The av-map heatmap row plus the chosen sampler's mask row."""
    results = summary["results"]
    heat = next(r for r in results if r["sampler"] is None)
    mask = next((r for r in results if r["sampler"] == sampler), heat)
    return {
        "pointing_game": heat["pointing_game"],
        "ciou": heat["ciou"],
        "heatmap_miou": heat["miou"],
        "miou": mask["miou"],
        "mask_f": mask["mask_f"],
        "segmenter": mask["segmenter"],
        "sampler": mask["sampler"],
    }


def run_demo(
    folder: Path,
    config: DemoConfig,
    *,
    device: str,
    sam_model: str,
    sam_checkpoint: Path | None,
    progress: Callable[..., Any],
    say: Callable[[str], None],
) -> dict[str, Any]:
    """The whole offline demo in `folder`: render, preprocess, train, evaluate (against the untrained model and
    the centre prior) and localize one test clip; returns the headline numbers and where the outputs are."""
    started = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    say("1/6 rendering the synthetic audio-visual world")
    world = folder / "world"
    render_world(world, config.world())
    say("2/6 preprocess -> world.h5")
    data = folder / "world.h5"
    layout, clips = discover(world, "avsbench-s4")
    result = run_preprocess(
        clips, data, make_settings(layout, vggish_seconds=config.vggish_seconds), workers=1, overwrite=True
    )
    if result.failed:
        raise GsavlError(
            f"demo preprocessing failed: {result.failed[0].reason}", hint="check the ffmpeg build and free disk space"
        )
    say(
        "3/6 train (gsavl preset; no pretrained weights offline: fixed stand-in encoders, an identity image trunk and "
        "a standardised random VGGish, with trained projections)"
    )
    model_config = config.model()
    torch.manual_seed(config.seed)  # the same initial weights as the training run's
    untrained = folder / "untrained.pt"
    save_checkpoint(untrained, build_localizer(model_config, pretrained=False, identity_image_init=True), model_config)
    run = folder / "run"
    cfg = TrainConfig(
        data=data,
        out=run,
        model=model_config,
        split="train",
        epochs=config.epochs,
        batch_size=config.batch_size,
        lr=config.lr,
        seed=config.seed,
        workers=0,
        checkpoint_every=config.epochs,
        device=device,
        pretrained=False,
        identity_init=True,
    )
    logs: list[EpochLog] = []

    def on_epoch(log: EpochLog) -> None:
        logs.append(log)
        bar.update(task, advance=1, rate=f"loss {log.loss:.3f}")

    with progress() as bar:
        task = bar.add_task("train", total=config.epochs, rate="")
        train(cfg, on_epoch=on_epoch)
    for kind in dict.fromkeys(log.collapse.kind for log in logs if log.collapse is not None):
        seen = next(log.collapse for log in logs if log.collapse is not None and log.collapse.kind == kind)
        say(warning_text(f"epoch {seen.epoch}: {seen.message}", seen.hint))
    # The last epoch: the test clips are what the demo reports, so they do not pick a checkpoint.
    checkpoint = run / "last.pt"
    segmenter = _segmenter_kind(sam_model, sam_checkpoint, device)
    say(
        f"4/6 eval on the test clips with the {segmenter} segmenter"
        + ("" if segmenter == "sam" else " (no SAM weights found: the heatmap region around the prompts)")
    )
    common = dict(
        data=data,
        split="test",
        maps=("av",),
        samplers=[SamplerChoice("prob")],
        segmenter=segmenter,
        sam_model=sam_model,
        sam_checkpoint=sam_checkpoint,
        device=device,
        seed=config.seed,
    )
    trained_eval = run_evaluation(
        EvalSettings(checkpoint=checkpoint, out=folder / "eval", report=True, **common), progress=progress
    )
    say("5/6 the same evaluation for the untrained model and the centre prior")
    untrained_eval = run_evaluation(
        EvalSettings(checkpoint=untrained, out=folder / "eval_untrained", **common), progress=progress
    )
    test_ids = validation_ids(data, "test")
    centre = centre_prior_metrics(data, test_ids)
    say("6/6 localize one test clip")
    test_clip = next(c for c in clips if c.split == "test")
    outputs = {
        "mask": folder / "mask.png",
        "overlay": folder / "overlay.png",
        "heatmap": folder / "heatmap.png",
        "json": folder / "localize.json",
        "report": folder / "eval" / "report.html",
        "checkpoint": checkpoint,
        "metrics": folder / "eval" / "metrics.json",
    }
    settings = LocalizeSettings(
        checkpoint=checkpoint,
        map_name="av",
        sampler=SamplerChoice("prob"),
        segmenter=segmenter,
        sam_model=sam_model,
        sam_checkpoint=sam_checkpoint,
        device=device,
        seed=config.seed,
    )
    localize_clips(
        [test_clip.video],
        settings,
        LocalizeOutputs(outputs["mask"], None, outputs["overlay"], outputs["heatmap"], None, outputs["json"]),
        progress=progress,
    )
    return {
        "segmenter": trained_eval["settings"]["segmenter"],
        "trained": _headline(trained_eval, "prob"),
        "untrained": _headline(untrained_eval, "prob"),
        "centre_prior": {
            "pointing_game": centre["pointing_game"],
            "ciou": centre["ciou"],
            "miou": centre["miou"],
            "mask_f": centre["mask_f"],
        },
        "chance_pointing": chance_pointing(data, test_ids),
        "training": {
            "losses": [round(log.loss, 4) for log in logs],
            "tied_epochs": [log.epoch for log in logs if log.tied],
            "collapse": [asdict(log.collapse) for log in logs if log.collapse is not None],
        },
        "seconds": round(time.perf_counter() - started, 1),
        "outputs": {k: str(v) for k, v in outputs.items()},
    }


def chance_pointing(data: Path, ids: list[str]) -> float:
    """Expected pointing-game hit rate of a uniformly random point: the mean mask area fraction."""
    with open_store(data) as store:
        items = [store.read(i, ("first_frame", "masks", "mask_frames", "boxes")) for i in ids]
    return float(np.mean([ground_truth(it, it["first_frame"].shape[:2]).mean() for it in items]))
