"""`gsavl localize`: decode a clip in memory, then the same `Predictor` path as `eval`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from gsavl_cli.datasets import list_videos
from gsavl_cli.errors import MediaError, UsageError
from gsavl_cli.io import media
from gsavl_cli.io.files import write_atomic, write_atomic_with
from gsavl_cli.model import ALIGN_CORNERS
from gsavl_cli.model.zeroshot import Heard, ZeroShotSettings
from gsavl_cli.predictor import Prediction, Predictor, SamplerChoice
from gsavl_cli.viz.drawing import colourise
from gsavl_cli.viz.drawing import overlay as draw_overlay


@dataclass
class LocalizeSettings:
    """Everything `gsavl localize` can be told about one frame per clip."""

    checkpoint: Path | None  # None: training-free maps only (obj, text, textobj)
    time: float | None = None
    map_name: str | None = None  # None: the predictor's default (avobj; av for a model with its own mask)
    sampler: SamplerChoice = field(default_factory=lambda: SamplerChoice("prob"))
    negatives: int = 0
    segmenter: str | None = None  # None: the model's own mask head if it has one, else SAM
    sam_model: str = "vit_h"
    sam_checkpoint: Path | None = None
    mask_choice: str = "single"
    cascade_rounds: int = 1
    cascade_threshold: float = 0.3
    alpha: float = 0.4
    align_corners: bool = ALIGN_CORNERS
    resnet_checkpoint: Path | None = None
    pretrained_prior: bool = True
    device: str = "cpu"
    seed: int = 123
    abstain: bool | None = None  # None: when the checkpoint stores an abstention threshold (`gsavl calibrate`)
    zeroshot: ZeroShotSettings = field(default_factory=ZeroShotSettings)  # the text maps' models and labels


@dataclass
class LocalizeOutputs:
    """Where to write: one mask (`output`) for one clip, or a folder for several."""

    output: Path | None = None
    out_dir: Path | None = None
    overlay: Path | None = None
    heatmap_png: Path | None = None
    heatmap_npy: Path | None = None
    json_file: Path | None = None


def expand_clips(paths: list[Path]) -> list[Path]:
    """Files as given; folders expanded to the videos inside (recursively)."""
    clips: list[Path] = []
    for path in paths:
        if path.is_dir():
            clips.extend(list_videos(path))
        elif path.exists():
            clips.append(path)
        else:
            raise UsageError(f"no such file: {path}", hint="pass a video file or a folder of videos")
    if not clips:
        raise UsageError("no video files found", hint="pass a video file or a folder of videos")
    return clips


def make_predictor(settings: LocalizeSettings) -> Predictor:
    """The Predictor these settings describe: checkpoint, segmenter, SAM weights, object prior and map mixing."""
    return Predictor.from_checkpoint(
        settings.checkpoint,
        device=settings.device,
        segmenter=settings.segmenter,
        sam_model=settings.sam_model,
        sam_checkpoint=settings.sam_checkpoint,
        resnet_checkpoint=settings.resnet_checkpoint,
        alpha=settings.alpha,
        align_corners=settings.align_corners,
        pretrained_prior=settings.pretrained_prior,
        abstain=settings.abstain if settings.checkpoint is not None else False,
        zeroshot=settings.zeroshot,
    )


def clip_key(path: Path) -> str:
    """The seeding key of a clip: its file name without suffix (a store's clip id for the same clip)."""
    return Path(path).stem


def localize_one(path: Path, settings: LocalizeSettings, predictor: Predictor) -> dict[str, Any]:
    """Decodes the frame and the audio, then heatmap -> prompts -> mask through the Predictor."""
    timings: dict[str, float] = {}
    tick = time.perf_counter()
    info = media.probe(path)
    if not info.has_audio:
        raise MediaError(f"{path.name} has no audio stream", hint="localization needs the clip's sound")
    at = settings.time
    if at is not None and not 0 <= at <= info.duration:
        raise UsageError(f"--time {at:g} s is outside {path.name} (0 to {info.duration:.2f} s)")
    frame = media.read_frames(path, [at or 0.0], info)[0]
    waveform = media.read_audio(path)
    timings["decode_s"] = time.perf_counter() - tick
    tick = time.perf_counter()
    predictor.set_clip(frame, waveform, time=at, key=clip_key(path))
    timings["image_encoder_s"] = time.perf_counter() - tick
    tick = time.perf_counter()
    heat = predictor.heatmaps((settings.map_name,))[settings.map_name]
    timings["heatmap_s"] = time.perf_counter() - tick
    tick = time.perf_counter()
    found = predictor.predict(
        settings.map_name,
        settings.sampler.name,
        settings.seed,
        negatives=settings.negatives,
        mask_choice=settings.mask_choice,
        cascade_rounds=settings.cascade_rounds,
        cascade_threshold=settings.cascade_threshold,
        **settings.sampler.params,
    )
    timings["prompt_and_decoder_s"] = time.perf_counter() - tick
    return {"frame": frame, "heatmap": heat, "prediction": found, "timings": timings, "time": at or 0.0}


def localize_clips(
    clips: list[Path], settings: LocalizeSettings, outputs: LocalizeOutputs, *, progress: Callable[..., Any]
) -> list[dict[str, Any]]:
    """Localizes each clip with the models loaded once; writes masks (+ extras) and returns summaries."""
    paths = expand_clips(clips)
    single = len(paths) == 1 and outputs.out_dir is None
    if not single and outputs.output is not None:
        raise UsageError("-o names one mask, but several clips were given", hint="use --out-dir for several clips")
    predictor = make_predictor(settings)
    settings = replace(settings, map_name=settings.map_name or predictor.default_map)
    summaries = []
    with progress() as bar:
        task = bar.add_task("localize", total=len(paths), rate="")
        for path in paths:
            found = localize_one(path, settings, predictor)
            summaries.append(_write_outputs(path, found, settings, _targets(path, outputs, single)))
            bar.advance(task)
    return summaries


def _targets(path: Path, outputs: LocalizeOutputs, single: bool) -> LocalizeOutputs:
    if single:
        return LocalizeOutputs(
            outputs.output or path.with_suffix(".mask.png"),
            None,
            outputs.overlay,
            outputs.heatmap_png,
            outputs.heatmap_npy,
            outputs.json_file,
        )
    folder, stem = Path(outputs.out_dir), path.stem  # type: ignore[arg-type]
    return LocalizeOutputs(
        folder / f"{stem}.mask.png",
        folder,
        folder / f"{stem}.overlay.png" if outputs.overlay else None,
        folder / f"{stem}.heatmap.png" if outputs.heatmap_png else None,
        folder / f"{stem}.heatmap.npy" if outputs.heatmap_npy else None,
        folder / f"{stem}.json" if outputs.json_file else None,
    )


def heard_summary(heard: Heard) -> list[dict[str, Any]] | None:
    """The labels a zero-shot map heard, as JSON (None for the other maps)."""
    return [{"label": label, "score": round(score, 6)} for label, score in heard] or None


def prediction_summary(found: Prediction) -> dict[str, Any]:
    """The JSON facts of one prediction (shared by the single-frame and video outputs)."""
    return {
        "map": found.map,
        "sampler": found.sampler,
        "segmenter": found.segmenter,
        "points": found.points.round(2).tolist(),
        "labels": found.labels.tolist(),
        "mask_area": int(found.mask.sum()),
        "score": None if np.isnan(found.score) else float(found.score),
        "rounds": found.rounds,
        "agreement": None if np.isnan(found.agreement) else round(float(found.agreement), 6),
        "abstained": found.abstained,
        "listening": None if np.isnan(found.listening) else round(float(found.listening), 6),
        "heard": heard_summary(found.heard),
    }


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # a handle: np.save would append .npy to a bare name
        np.save(f, np.asarray(array, dtype=np.float32), allow_pickle=False)


def _write_outputs(
    path: Path, found: dict[str, Any], settings: LocalizeSettings, to: LocalizeOutputs
) -> dict[str, Any]:
    prediction: Prediction = found["prediction"]
    media.write_png(to.output, prediction.mask)
    if to.overlay is not None:
        media.write_png(
            to.overlay,
            draw_overlay(found["frame"], found["heatmap"], prediction.mask, prediction.points, prediction.labels),
        )
    if to.heatmap_png is not None:
        media.write_png(to.heatmap_png, colourise(found["heatmap"]))
    if to.heatmap_npy is not None:
        write_atomic_with(to.heatmap_npy, lambda tmp: _save_npy(tmp, found["heatmap"]))
    summary = {
        "clip": str(path),
        "mask": str(to.output),
        "time": found["time"],
        **prediction_summary(prediction),
        "sampler_params": settings.sampler.params,
        "sam_model": settings.sam_model if prediction.segmenter in ("sam", "sam2") else None,
        "frame_size": list(found["frame"].shape[:2]),
        "timings": found["timings"],
    }
    if to.json_file is not None:
        write_atomic(to.json_file, json.dumps(summary, indent=2).encode("utf-8"))
    return summary
