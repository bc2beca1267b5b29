"""`gsavl localize` over a whole video: every SECONDS (or every frame) through the Predictor.

The clip streams through in chunks: one ffmpeg process decodes frames at the chosen
rate (`media.iter_frames`), each chunk is prepared in one batch (localizer and SAM
image encoder), each frame gets its own audio window centred on its time and its own
heatmap -> prompts -> mask, and the chunk's overlays, masks and timeline entries are
written before the next chunk is decoded. Memory therefore holds one chunk of frames,
the clip's 16 kHz mono waveform (4 MB per minute) and a few hundred bytes of timeline
per frame, whatever the clip's length.

Outputs (any of them): an overlay video at the sampling rate with the clip's own audio
muxed back, a mask archive (`gsavl_cli.io.masks`), a PNG sequence of the masks and a
JSON timeline (per frame: time, prompts, score, mask area, cascade rounds). Video and
archive appear only when complete; the timeline is written last.

Optional temporal smoothing (`smooth=TAU` seconds) replaces each frame's heatmap with an
exponential moving average over time before sampling: s_k = a h_k + (1 - a) s_{k-1}
with a = 1 - exp(-dt / TAU), dt the time between processed frames, so the average
forgets at the same speed whatever the sampling rate; the average is renormalised to
[0, 1]. TAU about the sampling interval damps flicker; a TAU much longer than the time
an object takes to move its own size makes the heatmap lag behind moving objects.

Propagation (`propagate=True`, the `sam2` segmenter's video predictor, `segment.sam2_video`):
the first sampled frame is prompted from its heatmap; every later one gets the mask SAM 2
carries over from the frames before, and where that mask's agreement with the frame's heatmap
(the cascade's soft IoU) is below `cascade_threshold`, the frame is prompted again from its
heatmap and the track restarts there (the sounding object may have changed). The timeline's
`source` says which: `prompted`, `propagated` or `re-prompted`. The video model encodes each
sampled frame once and keeps a fixed window of memory, so the run streams like the others.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gsavl_cli import samplers
from gsavl_cli.commands.localize import clip_key, prediction_summary
from gsavl_cli.data.audio_input import window_around
from gsavl_cli.errors import MediaError, UsageError
from gsavl_cli.io import media
from gsavl_cli.io.files import write_atomic
from gsavl_cli.io.masks import mask_writer, write_mask_pngs
from gsavl_cli.model import normalise_map
from gsavl_cli.predictor import ClipInput, Prediction, Predictor, SamplerChoice, prompt_generator
from gsavl_cli.segment.base import soft_iou
from gsavl_cli.viz.drawing import overlay

WHOLE_CLIP_WINDOW = 5.0
"""Audio per frame (s) for checkpoints that record no window (trained on whole 5 s AVSBench clips)."""


@dataclass
class VideoSettings:
    """What to sample, how to localize each frame, and where to write."""

    every: float | None = 0.25
    map_name: str = "avobj"
    sampler: SamplerChoice = field(default_factory=lambda: SamplerChoice("prob"))
    seed: int = 123
    negatives: int = 0
    mask_choice: str = "single"
    cascade_rounds: int = 1
    cascade_threshold: float = 0.3
    smooth: float | None = None
    video: Path | None = None
    masks: Path | None = None
    mask_pngs: Path | None = None
    timeline: Path | None = None
    chunk_size: int = 16
    batch_size: int = 4
    key: str | None = None
    propagate: bool = False

    def check(self) -> None:
        """Refuses settings that would write nothing, or a bad smoothing constant, chunk size or batch size."""
        if not any((self.video, self.masks, self.mask_pngs, self.timeline)):
            raise UsageError(
                "nothing to write for the video", hint="pass --video, --masks, --mask-pngs and/or --timeline"
            )
        if self.smooth is not None and not self.smooth > 0:
            raise UsageError(f"the smoothing time constant must be > 0 s, got {self.smooth}", hint="e.g. --smooth 0.5")
        if self.chunk_size < 1 or self.batch_size < 1:
            raise UsageError(f"chunk size and batch size must be >= 1, got {self.chunk_size} and {self.batch_size}")


def ema_weight(dt: float, tau: float) -> float:
    """The new frame's weight in an exponential moving average with time constant `tau` seconds."""
    return 1.0 - math.exp(-max(dt, 0.0) / tau)


class HeatmapSmoother:
    """Exponential moving average of heatmaps over time (see the module docstring)."""

    def __init__(self, tau: float) -> None:
        if not tau > 0:
            raise UsageError(f"the smoothing time constant must be > 0 s, got {tau}")
        self.tau = tau
        self._state: torch.Tensor | None = None
        self._time = 0.0

    def __call__(self, heatmap: torch.Tensor, at: float) -> torch.Tensor:
        """Fold in the heatmap [H,W] of the frame at `at` s; returns the smoothed map in [0,1]."""
        heat = heatmap.float()
        if self._state is None:
            self._state = heat
        else:
            weight = ema_weight(at - self._time, self.tau)
            self._state = weight * heat + (1.0 - weight) * self._state
        self._time = at
        return normalise_map(self._state)


def frame_key(key: str, at: float) -> str:
    """The seeding key of the frame at `at` s: random prompts differ per frame, and are reproducible."""
    return f"{key}@{at:.3f}"


class _NoProgress:
    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, *args: Any, **kwargs: Any) -> int:
        """Stands in for rich's `Progress.add_task` when no bar is shown; the task id is never used."""
        return 0

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Ignores the progress update (no bar is shown)."""
        return None


def _frame_entry(index: int, at: float, found: Prediction, source: str | None = None) -> dict[str, Any]:
    facts = {k: v for k, v in prediction_summary(found).items() if k not in ("map", "sampler", "segmenter")}
    return {"index": index, "time": round(float(at), 6), **facts, **({"source": source} if source else {})}


def _chunk_inputs(chunk: media.FrameChunk, waveform: np.ndarray, key: str, predictor: Predictor) -> list[ClipInput]:
    """Each frame with its own audio window and seeding key."""
    whole_clip = predictor.config.audio_window is None
    return [
        ClipInput(
            frame,
            window_around(waveform, float(at), WHOLE_CLIP_WINDOW) if whole_clip else waveform,
            time=None if whole_clip else float(at),
            key=frame_key(key, float(at)),
        )
        for frame, at in zip(chunk.frames, chunk.times)
    ]


def _propagate_chunk(
    chunk: media.FrameChunk,
    waveform: np.ndarray,
    key: str,
    predictor: Predictor,
    settings: VideoSettings,
    smoother: HeatmapSmoother | None,
) -> list[tuple[np.ndarray, Prediction, str]]:
    """Heatmap, prediction and source (prompted / propagated / re-prompted) of each frame, tracked by SAM 2."""
    tracker: Any = predictor.segmenter
    prepared = predictor.prepare(_chunk_inputs(chunk, waveform, key, predictor), maps=(settings.map_name,))
    results = []
    for clip, at in zip(prepared, chunk.times):
        heat = predictor.heatmap_tensor(settings.map_name, clip=clip)
        if smoother is not None:
            heat = smoother(heat, float(at))

        def sample(clip_key: str = clip.key, heat: torch.Tensor = heat) -> samplers.Prompts:
            generator = prompt_generator(settings.seed, clip_key, settings.map_name, settings.sampler.name)
            return samplers.sample(
                settings.sampler.name,
                heat,
                generator=generator,
                negatives=settings.negatives,
                **settings.sampler.params,
            )

        prompts = None if tracker.index >= 0 else sample()
        result = tracker.step(clip.frame, prompts)
        source = "prompted" if prompts is not None else "propagated"
        agreement = float(soft_iou(heat, torch.from_numpy(result.mask).to(heat.device)))
        if prompts is None and agreement < settings.cascade_threshold:
            prompts, source = sample(), "re-prompted"
            result = tracker.prompt(prompts)
            agreement = float(soft_iou(heat, torch.from_numpy(result.mask).to(heat.device)))
        shown = (
            prompts if prompts is not None else samplers.Prompts(np.zeros((0, 2), np.float32), np.zeros(0, np.int64))
        )
        found = Prediction(
            points=shown.points,
            labels=shown.labels,
            mask=result.mask,
            score=float(result.score),
            rounds=1,
            map=settings.map_name,
            sampler=settings.sampler.name,
            segmenter=tracker.name,
            agreement=agreement,
        )
        results.append((heat.float().cpu().numpy(), found, source))
    return results


def _localize_chunk(
    chunk: media.FrameChunk,
    waveform: np.ndarray,
    key: str,
    predictor: Predictor,
    settings: VideoSettings,
    smoother: HeatmapSmoother | None,
) -> list[tuple[np.ndarray, Prediction]]:
    """Heatmap and prediction of each frame of a chunk (embeddings and heatmaps batched)."""
    inputs = _chunk_inputs(chunk, waveform, key, predictor)
    prepared = predictor.prepare(inputs, maps=(settings.map_name,), batch_size=settings.batch_size)
    results = []
    for clip, at in zip(prepared, chunk.times):
        heat = predictor.heatmap_tensor(settings.map_name, clip=clip)
        if smoother is not None:
            heat = smoother(heat, float(at))
        found = predictor.predict(
            settings.map_name,
            settings.sampler.name,
            settings.seed,
            clip=clip,
            heatmap=heat if smoother is not None else None,
            negatives=settings.negatives,
            mask_choice=settings.mask_choice,
            cascade_rounds=settings.cascade_rounds,
            cascade_threshold=settings.cascade_threshold,
            **settings.sampler.params,
        )
        results.append((heat.float().cpu().numpy(), found))
    return results


def _summary(
    path: Path,
    key: str,
    info: media.MediaInfo,
    rate: Fraction,
    settings: VideoSettings,
    predictor: Predictor,
    frames: int,
    elapsed: float,
) -> dict[str, Any]:
    """The run's settings and figures (the timeline's header, and what the CLI prints)."""
    targets = {
        "video": settings.video,
        "masks": settings.masks,
        "mask_pngs": settings.mask_pngs,
        "timeline": settings.timeline,
    }
    return {
        "clip": str(path),
        "key": key,
        "frames": frames,
        "every": settings.every,
        "fps": float(rate),
        "frame_size": [info.height, info.width],
        "duration": info.duration,
        "map": settings.map_name,
        "sampler": settings.sampler.name,
        "sampler_params": settings.sampler.params,
        "segmenter": predictor.segmenter.name,
        "seed": settings.seed,
        "negatives": settings.negatives,
        "mask_choice": settings.mask_choice,
        "cascade_rounds": settings.cascade_rounds,
        "smooth": settings.smooth,
        "propagate": settings.propagate,
        "audio_window": predictor.config.audio_window or WHOLE_CLIP_WINDOW,
        "outputs": {name: str(target) for name, target in targets.items() if target is not None},
        "seconds": round(elapsed, 3),
        "frames_per_second": round(frames / elapsed, 3) if elapsed > 0 else None,
    }


def localize_video(
    path: str | Path,
    predictor: Predictor,
    settings: VideoSettings,
    *,
    progress: Callable[[], Any] | None = None,
) -> dict[str, Any]:
    """Localize the sounding object along a whole clip; writes the outputs, returns a summary.

    `progress` is a factory of rich-like progress bars (`console.progress`); the bar
    counts frames and shows frames/s and the time left.
    """
    path = Path(path)
    settings.check()
    info = media.probe(path)
    if not info.has_video:
        raise MediaError(f"{path.name} has no video stream", hint="pass a video file")
    if not info.has_audio:
        raise MediaError(f"{path.name} has no audio stream", hint="localization needs the clip's sound")
    rate = media.sampling_rate(info, settings.every)
    if settings.propagate:
        if not hasattr(predictor.segmenter, "step"):
            raise UsageError("--propagate tracks with SAM 2's video predictor", hint="pass --segmenter sam2 with it")
        predictor.segmenter.reset()  # type: ignore[attr-defined]
    waveform = media.read_audio(path)
    key = settings.key or clip_key(path)
    smoother = HeatmapSmoother(settings.smooth) if settings.smooth is not None else None
    entries: list[dict[str, Any]] = []
    started = time.perf_counter()
    with ExitStack() as stack:
        video = (
            stack.enter_context(
                media.video_writer(settings.video, fps=rate, size=(info.width, info.height), audio=path)
            )
            if settings.video
            else None
        )
        masks = stack.enter_context(mask_writer(settings.masks, (info.height, info.width))) if settings.masks else None
        bar = stack.enter_context((progress or _NoProgress)())
        task = bar.add_task(f"localize {path.name}", total=media.expected_frames(info, settings.every), rate="")
        frames = stack.enter_context(
            closing(media.iter_frames(path, every=settings.every, chunk_size=settings.chunk_size, info=info))
        )
        with torch.inference_mode():
            for chunk in frames:
                if settings.propagate:
                    tracked = _propagate_chunk(chunk, waveform, key, predictor, settings, smoother)
                    found, sources = [(h, p) for h, p, _ in tracked], [s for _, _, s in tracked]
                else:
                    found = _localize_chunk(chunk, waveform, key, predictor, settings, smoother)
                    sources = [None] * len(found)
                if video is not None:
                    video.write(
                        np.stack(
                            [
                                overlay(frame, heat, p.mask, p.points, p.labels)
                                for frame, (heat, p) in zip(chunk.frames, found)
                            ]
                        )
                    )
                if masks is not None:
                    masks.add(np.stack([p.mask for _, p in found]), chunk.times)
                if settings.mask_pngs is not None:
                    write_mask_pngs(settings.mask_pngs, np.stack([p.mask for _, p in found]), chunk.start)
                entries.extend(
                    _frame_entry(chunk.start + i, at, p, source)
                    for i, (at, (_, p), source) in enumerate(zip(chunk.times, found, sources))
                )
                elapsed = time.perf_counter() - started
                bar.update(task, advance=len(chunk), rate=f"{len(entries) / elapsed:.1f} frames/s")
        bar.update(task, total=len(entries), completed=len(entries))
    summary = _summary(path, key, info, rate, settings, predictor, len(entries), time.perf_counter() - started)
    if settings.propagate:
        summary["sources"] = {
            s: sum(e["source"] == s for e in entries) for s in ("prompted", "propagated", "re-prompted")
        }
    if settings.timeline is not None:
        write_atomic(settings.timeline, json.dumps({**summary, "timeline": entries}, indent=1).encode("utf-8"))
    return summary


def propagating_predictor(settings: Any) -> Predictor:
    """A Predictor for `--propagate`: the model and heatmaps as usual, SAM 2's video tracker as its segmenter.

    `settings` is a `LocalizeSettings` with `segmenter="sam2"`; the image segmenter is not loaded
    (the video model encodes each frame itself).
    """
    from dataclasses import replace

    from gsavl_cli.commands.localize import make_predictor
    from gsavl_cli.segment.sam2_video import Sam2VideoTracker, load_sam2_video

    if settings.segmenter != "sam2":
        raise UsageError("--propagate tracks with SAM 2's video predictor", hint="pass --segmenter sam2 with it")
    tracker = Sam2VideoTracker(
        load_sam2_video(settings.sam_model, settings.sam_checkpoint, device=settings.device), device=settings.device
    )
    predictor = make_predictor(replace(settings, segmenter="region"))  # heatmaps only; the tracker makes the masks
    predictor.segmenter = tracker
    return predictor
