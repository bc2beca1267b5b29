"""Synthetic clips as real video files: frames and sound muxed by ffmpeg, written atomically."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gsavl_cli.data.synthetic.classes import CLASSES
from gsavl_cli.data.synthetic.config import check_size
from gsavl_cli.data.synthetic.scene import render_scene, scene_categories
from gsavl_cli.data.synthetic.sound import SAMPLE_RATE, class_sound, wav_bytes
from gsavl_cli.errors import UsageError
from gsavl_cli.io.files import temp_sibling
from gsavl_cli.io.media import VideoWriter, encoder_options, video_writer

_VIDEO_AUDIO_RATE = 44100  # what real videos carry; readers must resample to 16 kHz


@dataclass(frozen=True)
class RenderedClip:
    """What `render_clip` wrote: the arrays behind the file (None for a missing stream)."""

    path: Path
    category: str
    fps: int
    sample_rate: int
    frames: np.ndarray | None  # [T,H,W,3] uint8
    masks: np.ndarray | None  # [T,H,W] bool, the sounding object
    waveform: np.ndarray | None  # [N] float32 in [-1,1]


def codecs() -> tuple[dict[str, object], dict[str, object]]:
    """(video, audio) encoder options: media's, the audio at the rate real videos carry."""
    video, audio = encoder_options()
    return video, {**audio, "ar": _VIDEO_AUDIO_RATE}


@contextmanager
def clip_writer(
    path: str | os.PathLike,
    fps: int,
    size: tuple[int, int] | None,
    waveform: np.ndarray | None = None,
    sample_rate: int = SAMPLE_RATE,
) -> Iterator[VideoWriter]:
    """A `media.video_writer` with `codecs()` that muxes in `waveform` (None: no sound).

    The sound goes through a hidden WAV beside `path`, removed at the end; the video
    is written under a temporary name and renamed on success, so an interrupted run
    never leaves a truncated video under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wav_tmp = temp_sibling(path.with_suffix(".wav"))
    try:
        video_options, audio_options = codecs()
        if waveform is not None:
            wav_tmp.write_bytes(wav_bytes(waveform, sample_rate))
        with video_writer(
            path,
            fps=fps,
            size=size,
            audio=wav_tmp if waveform is not None else None,
            video_options=video_options,
            audio_options=audio_options,
        ) as out:
            yield out
    finally:
        wav_tmp.unlink(missing_ok=True)


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray | None,
    fps: int,
    waveform: np.ndarray | None = None,
    sample_rate: int = SAMPLE_RATE,
) -> None:
    """Encode frames [T,H,W,3] uint8 and/or a mono waveform into a video file, atomically (`clip_writer`)."""
    size = None if frames is None else (frames.shape[2], frames.shape[1])
    with clip_writer(path, fps, size, waveform, sample_rate) as out:
        if frames is not None:
            out.write(frames)


def render_clip(
    path: str | os.PathLike,
    *,
    seconds: float = 1.0,
    width: int = 64,
    height: int = 48,
    fps: int = 8,
    audio: bool = True,
    video: bool = True,
    category: str = CLASSES[0],
    n_objects: int = 2,
    seed: int = 0,
) -> RenderedClip:
    """Render one small clip of the world to `path` (video-only or audio-only on request)."""
    if not (audio or video):
        raise UsageError("a clip needs a video or an audio stream")
    check_size(width, height, fps)
    rng = np.random.default_rng(seed)
    frames = masks = waveform = None
    if video:
        categories = scene_categories(rng, category, CLASSES, n_objects)
        frames, masks = render_scene(rng, categories, width, height, seconds, fps)
    if audio:
        waveform = class_sound(category, seconds, rng)
    write_video(path, frames, fps, waveform)
    return RenderedClip(Path(path), category, fps, SAMPLE_RATE, frames, masks, waveform)
