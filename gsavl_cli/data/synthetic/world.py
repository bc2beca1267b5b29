"""Whole synthetic worlds in the AVSBench layouts (S4: one sounding object, MS3: two).

A clip shows 2-3 objects of different classes and plays the sound of the sounding
one(s); their pixel mask is the ground truth. Clips are rendered to real video files
with ffmpeg, with the frames, masks, WAVs and metadata CSV that AVSBench ships, so the
real loaders, preprocessing, training and evaluation all run on it end to end.
Everything is deterministic given the seed.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gsavl_cli.data.synthetic.config import KEYFRAMES, SPLITS, WorldConfig, check_config
from gsavl_cli.data.synthetic.encode import write_video
from gsavl_cli.data.synthetic.scene import render_scene, scene_categories
from gsavl_cli.data.synthetic.sound import SAMPLE_RATE, class_sound, wav_bytes
from gsavl_cli.errors import UsageError
from gsavl_cli.io.files import write_atomic
from gsavl_cli.io.media import write_png


@dataclass(frozen=True)
class SyntheticClip:
    """One rendered clip of a world, with its ground truth at t = 0, 1, 2, 3, 4 s."""

    name: str
    split: str
    category: str
    video: Path
    audio: Path
    frames: np.ndarray  # [5,H,W,3] uint8, the video's frames at the key times
    masks: np.ndarray  # [5,H,W] bool, the sounding object


def _sounding_classes(index: int, classes: list[str], count: int) -> list[str]:
    """Clip `index`'s sounding classes, balanced: class i mod n, then (MS3) a different partner.

    The partner's offset cycles through 1..n-1, so every ordered pair of classes occurs.
    """
    n = len(classes)
    first = classes[index % n]
    if count == 1:
        return [first]
    return [first, classes[(index + 1 + (index // n) % (n - 1)) % n]]


def _render_clip_arrays(
    split: str, index: int, classes: list[str], config: WorldConfig, n_sounding: int
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(sounding classes, frames, masks, waveform) of clip `index` of a split.

    The random state depends only on (seed, split, index), so growing one split keeps
    the other clips. Several sounding objects play their sounds mixed.
    """
    sounding = _sounding_classes(index, classes, n_sounding)
    rng = np.random.default_rng([config.seed, SPLITS.index(split), index])
    count = max(int(rng.integers(config.objects[0], config.objects[1] + 1)), n_sounding)
    categories = scene_categories(rng, sounding if n_sounding > 1 else sounding[0], classes, count)
    frames, masks = render_scene(
        rng,
        categories,
        config.width,
        config.height,
        config.seconds,
        config.fps,
        scale=config.object_scale,
        background=config.background,
        sounding=n_sounding,
    )
    sounds = [class_sound(category, config.seconds, rng) for category in sounding]
    waveform = sounds[0] if n_sounding == 1 else np.clip(0.6 * np.sum(sounds, axis=0), -1, 1).astype(np.float32)
    return sounding, frames, masks, waveform


def _write_s4_clip(root: Path, split: str, index: int, classes: list[str], config: WorldConfig) -> SyntheticClip:
    """Clip `index` of a split in the S4 layout: one sounding object, class i mod n_classes;
    masks of the first frame for train clips, of all 5 for val/test (as AVSBench-S4)."""
    name = f"syn_{split}_{index:04d}"
    (category,), frames, masks, waveform = _render_clip_arrays(split, index, classes, config, 1)
    data = root / "s4_data"
    relative = Path(split) / category
    audio = data / "audio_wav" / relative / f"{name}.wav"
    video = data / "raw_videos" / relative / f"{name}.mp4"
    key = np.arange(KEYFRAMES) * config.fps
    n_masks = 1 if split == "train" else KEYFRAMES
    for i in range(KEYFRAMES):
        write_png(data / "visual_frames" / relative / name / f"{name}_{i + 1}.png", frames[key[i]])
        if i < n_masks:
            write_png(data / "gt_masks" / relative / name / f"{name}_{i + 1}.png", masks[key[i]])
    write_atomic(audio, wav_bytes(waveform, SAMPLE_RATE))
    write_video(video, frames, config.fps, waveform)
    return SyntheticClip(name, split, category, video, audio, frames[key], masks[key])


def _write_ms3_clip(root: Path, split: str, index: int, classes: list[str], config: WorldConfig) -> SyntheticClip:
    """Clip `index` of a split in the MS3 layout: two sounding objects of different classes,
    their sounds mixed, the mask their union on all 5 key frames (every split, as AVSBench-MS3)."""
    name = f"syn_{split}_{index:04d}"
    sounding, frames, masks, waveform = _render_clip_arrays(split, index, classes, config, 2)
    data = root / "ms3_data"
    audio = data / "audio_wav" / split / f"{name}.wav"
    video = data / "raw_videos" / f"{name}.mp4"
    key = np.arange(KEYFRAMES) * config.fps
    for i in range(KEYFRAMES):
        write_png(data / "visual_frames" / name / f"{name}.mp4_{i + 1}.png", frames[key[i]])
        write_png(data / "gt_masks" / split / name / f"{name}_{i + 1}.png", masks[key[i]])
    write_atomic(audio, wav_bytes(waveform, SAMPLE_RATE))
    write_video(video, frames, config.fps, waveform)
    return SyntheticClip(name, split, "+".join(sounding), video, audio, frames[key], masks[key])


def _write_s4_metadata(root: Path, clips: list[SyntheticClip]) -> None:
    """`s4_meta_data.csv` as AVSBench ships it: name, start, category, split."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["name", "start", "category", "split"])
    writer.writerows([clip.name, 0, clip.category, clip.split] for clip in clips)
    write_atomic(root / "s4_meta_data.csv", text.getvalue().encode())


def _write_ms3_metadata(root: Path, clips: list[SyntheticClip]) -> None:
    """`ms3_meta_data.csv`: the video id first and a `split` column, as AVSBench's MS3 loader reads it."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["video_id", "split"])
    writer.writerows([clip.name, clip.split] for clip in clips)
    write_atomic(root / "ms3_meta_data.csv", text.getvalue().encode())


_WRITERS: dict[str, tuple[Callable[..., SyntheticClip], Callable[[Path, list[SyntheticClip]], None]]] = {
    "avsbench-s4": (_write_s4_clip, _write_s4_metadata),
    "avsbench-ms3": (_write_ms3_clip, _write_ms3_metadata),
}
WORLD_LAYOUTS = tuple(_WRITERS)


def render_world(root: str | os.PathLike, config: WorldConfig, layout: str = "avsbench-s4") -> list[SyntheticClip]:
    """Render a whole world into `root` in an AVSBench layout and return its clips.

    `avsbench-s4`: one sounding object per clip; `avsbench-ms3`: two, their sounds mixed.
    """
    if layout not in _WRITERS:
        raise UsageError(f"unknown synthetic world layout {layout!r}", hint=f"choose from {', '.join(WORLD_LAYOUTS)}")
    classes = check_config(config)
    write_clip, write_metadata = _WRITERS[layout]
    root = Path(root)
    counts = {"train": config.n_train, "val": config.n_val, "test": config.n_test}
    clips = [write_clip(root, split, i, classes, config) for split in SPLITS for i in range(counts[split])]
    write_metadata(root, clips)
    return clips
