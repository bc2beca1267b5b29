"""`gsavl localize`: decode a clip in memory, then the same pipeline as `eval`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gsavl_cli.io import media

from gsavl_cli import samplers
from gsavl_cli.io.layouts import VIDEO_SUFFIXES
from gsavl_cli.errors import UsageError
from gsavl_cli.commands.evaluate import SamplerChoice
from gsavl_cli.io.media import write_atomic, write_png
from gsavl_cli.pipeline import audio_at, batch_heatmaps, load_models, make_segmenter
from gsavl_cli.viz.drawing import colourise, overlay as draw_overlay

@dataclass
class LocalizeOptions:
    checkpoint: Path
    time: float | None
    map_name: str
    samplers: list[SamplerChoice]
    negatives: int
    segmenter: str
    sam_model: str
    sam_checkpoint: Path | None
    mask_choice: str
    cascade_rounds: int
    alpha: float
    prior_checkpoint: Path | None
    device: str
    seed: int
    pretrained_prior: bool = True


def expand_clips(paths: list[Path]) -> list[Path]:
    """Files as given; folders expanded to the videos inside (recursively)."""
    clips: list[Path] = []
    for path in paths:
        if path.is_dir():
            clips.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES))
        elif path.exists():
            clips.append(path)
        else:
            raise UsageError(f"no such file: {path}", hint="pass a video file or a folder of videos")
    if not clips:
        raise UsageError("no video files found", hint="pass a video file or a folder of videos")
    return clips


def localize_one(path: Path, options: LocalizeOptions, models, segmenter) -> dict[str, Any]:
    """Runs the pipeline on one clip; returns the arrays and facts to write."""
    timings: dict[str, float] = {}
    tick = time.perf_counter()
    info = media.probe(path)
    if not info.has_audio:
        raise media.MediaError(f"{path.name} has no audio stream", hint="localization needs the clip's sound")
    at = options.time
    if at is not None and (at < 0 or at > info.duration):
        raise UsageError(f"--time {at:g} s is outside {path.name} (0 to {info.duration:.2f} s)")
    frame = media.read_frames(path, [at or 0.0], info)[0]
    audio = audio_at(media.read_audio(path), at, models.config)
    timings["decode_s"] = time.perf_counter() - tick
    tick = time.perf_counter()
    heat = batch_heatmaps(models, [frame], [audio], (options.map_name,), alpha=options.alpha)[options.map_name][0]
    timings["heatmap_s"] = time.perf_counter() - tick
    tick = time.perf_counter()
    embedding = segmenter.embed([frame])[0]
    timings["image_encoder_s"] = time.perf_counter() - tick
    tick = time.perf_counter()
    choice = options.samplers[0]
    generator = samplers.make_generator(options.seed)
    if options.cascade_rounds > 1:
        result = segmenter.cascade(embedding, heat, choice.name, generator, rounds=options.cascade_rounds, mask_choice=options.mask_choice, **choice.params)
        prompts = samplers.sample(choice.name, heat, generator=samplers.make_generator(options.seed), **choice.params)
    else:
        prompts = samplers.sample(choice.name, heat, generator=generator, negatives=options.negatives, **choice.params)
        result = segmenter.segment(embedding, prompts, mask_choice=options.mask_choice, heatmap=heat)
    timings["prompt_and_decoder_s"] = time.perf_counter() - tick
    return {"frame": frame, "heatmap": heat.float().cpu().numpy(), "prompts": prompts, "result": result, "timings": timings, "time": at or 0.0}


def localize_clips(
    clips: list[Path],
    options: LocalizeOptions,
    *,
    output: Path | None,
    out_dir: Path | None,
    overlay: Path | None,
    heatmap: Path | None,
    json_file: Path | None,
    progress: Callable[..., Any],
) -> list[dict[str, Any]]:
    """Localizes each clip with models loaded once; writes masks (+ extras) and returns summaries."""
    paths = expand_clips(clips)
    single = len(paths) == 1 and out_dir is None
    if single and output is None:
        output = paths[0].with_suffix(".mask.png")
    if not single and output is not None:
        raise UsageError("-o names one mask, but several clips were given", hint="use --out-dir for several clips")
    models = load_models(options.checkpoint, options.device, (options.map_name,), pretrained_prior=options.pretrained_prior, prior_checkpoint=options.prior_checkpoint)
    segmenter = make_segmenter(options.segmenter, options.device, sam_model=options.sam_model, sam_checkpoint=options.sam_checkpoint)
    summaries = []
    with progress() as bar:
        task = bar.add_task("localize", total=len(paths), rate="")
        for path in paths:
            found = localize_one(path, options, models, segmenter)
            target = output if single else Path(out_dir) / f"{path.stem}.mask.png"
            extra = {} if single else {"overlay": Path(out_dir) / f"{path.stem}.overlay.png", "heatmap": Path(out_dir) / f"{path.stem}.heatmap.png", "json": Path(out_dir) / f"{path.stem}.json"}
            summaries.append(_write_outputs(path, found, options, segmenter.name, target,
                                            overlay if single else extra["overlay"] if overlay else None,
                                            heatmap if single else extra["heatmap"] if heatmap else None,
                                            json_file if single else extra["json"] if json_file else None))
            bar.advance(task)
    return summaries


def _write_outputs(path, found, options, segmenter_name, mask_path, overlay_path, heatmap_path, json_path) -> dict[str, Any]:
    result, prompts = found["result"], found["prompts"]
    write_png(mask_path, result.mask)
    if overlay_path is not None:
        write_png(overlay_path, draw_overlay(found["frame"], found["heatmap"], result.mask, prompts.points, prompts.labels))
    if heatmap_path is not None:
        write_png(heatmap_path, colourise(found["heatmap"]))
    summary = {
        "clip": str(path), "mask": str(mask_path), "time": found["time"], "map": options.map_name,
        "sampler": options.samplers[0].name, "sampler_params": options.samplers[0].params, "segmenter": segmenter_name,
        "sam_model": options.sam_model if segmenter_name == "sam" else None,
        "points": prompts.points.round(2).tolist(), "labels": prompts.labels.tolist(), "mask_area": int(result.mask.sum()),
        "frame_size": list(found["frame"].shape[:2]),
        "sam_score": None if np.isnan(result.score) else result.score, "cascade_rounds": result.rounds, "timings": found["timings"],
    }
    if json_path is not None:
        write_atomic(json_path, json.dumps(summary, indent=2).encode("utf-8"))
    return summary
