"""Frames at chosen times and mono audio, each from one short ffmpeg run.

`read_frames` seeks and pipes raw RGB, picking the frame on screen at each time by its
real timestamp; `read_audio` pipes mono float32 PCM. Whole videos stream instead
(`gsavl_cli.io.media.stream`).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gsavl_cli.errors import MediaError
from gsavl_cli.io.media.command import FfmpegFailed, check_file, ffmpeg_command, file_url, run_ffmpeg
from gsavl_cli.io.media.info import MediaInfo, probe

_TIME_EPS = 1e-4


def _frames_between(path: Path, start: float, length: float, info: MediaInfo) -> tuple[np.ndarray, np.ndarray]:
    """Frames decoded from [start, start + length] and their timestamps in seconds.

    Timestamps come from the `showinfo` filter: ffmpeg's own `-t` cut is off by up to a
    frame, so we select frames by their real presentation times instead.
    """
    args = ffmpeg_command(
        "-ss", f"{start:.6f}", "-t", f"{length:.6f}", "-i", file_url(path),
        "-map", "0:v:0", "-vf", "showinfo", "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:",
        loglevel="info",
    )  # fmt: skip
    proc = subprocess.run(args, capture_output=True)
    stderr = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise FfmpegFailed(path, stderr)
    times = start + np.array([float(t) for t in re.findall(r"pts_time:\s*(-?[\d.]+)", stderr)])
    frame_bytes = info.width * info.height * 3
    count = min(len(proc.stdout) // frame_bytes, len(times))
    frames = np.frombuffer(proc.stdout[: count * frame_bytes], np.uint8)
    return frames.reshape(count, info.height, info.width, 3), times[:count]


def _frame_at(path: Path, time: float, info: MediaInfo) -> np.ndarray:
    """The frame on screen at `time`: the last one whose timestamp is <= time.

    Decodes a short window ending at `time` and widens it while it holds no such frame
    (a gap in a variable-frame-rate stream, or a container longer than its video).
    """
    window = 2.0 / info.fps if info.fps > 0 else 0.5
    while True:
        start = max(0.0, time - window)
        frames, times = _frames_between(path, start, time - start + 2 * _TIME_EPS, info)
        shown = np.flatnonzero(times <= time + _TIME_EPS)
        if len(shown):
            return frames[shown[-1]].copy()
        if start == 0.0:
            break
        window *= 4
    if len(frames):  # `time` lies before the first frame's timestamp
        return frames[0].copy()
    raise MediaError(f"ffmpeg decoded no frame from {path.name}", hint="the video stream is empty or corrupt")


def read_frames(path: str | os.PathLike, times: Sequence[float], info: MediaInfo | None = None) -> np.ndarray:
    """Frames shown at `times` (seconds) as [F,H,W,3] uint8 RGB at the displayed resolution.

    Times before 0 give the first frame, times past the end the last one. Rotation
    metadata is applied (ffmpeg autorotates), so H and W are the displayed size.
    """
    path = check_file(path)
    info = info or probe(path)
    if not info.has_video:
        raise MediaError(f"{path.name} has no video stream", hint="pass a video file, not an audio file")
    clamped = [min(max(float(t), 0.0), info.duration) for t in times]
    if not clamped:
        return np.zeros((0, info.height, info.width, 3), np.uint8)
    return np.stack([_frame_at(path, t, info) for t in clamped])


def read_audio(
    path: str | os.PathLike,
    start: float = 0.0,
    duration: float | None = None,
    sample_rate: int = 16000,
) -> np.ndarray:
    """Mono float32 waveform in [-1, 1] from `start` for `duration` seconds (all when None).

    ffmpeg down-mixes all channels and resamples to `sample_rate`. The window is cut
    after decoding (output-side `-ss`/`-t`): input seeking shifts AAC-in-MP4 audio by
    its encoder priming (about 23 ms), which would misalign sound and frames.
    """
    path = check_file(path)
    window = ["-ss", f"{max(start, 0.0):.6f}"]
    if duration is not None:
        window += ["-t", f"{duration:.6f}"]
    args = ffmpeg_command(
        "-i", file_url(path), "-map", "0:a:0", "-ac", "1", "-ar", str(sample_rate), *window, "-f", "f32le", "pipe:"
    )  # fmt: skip
    try:
        raw = run_ffmpeg(args, path)
    except FfmpegFailed as exc:
        if "matches no streams" in exc.stderr:
            raise MediaError(
                f"{path.name} has no audio stream",
                hint="sound-source localization needs the clip's audio; pass a video with sound",
            ) from exc
        raise
    waveform = np.frombuffer(raw, np.float32)
    if waveform.size == 0:
        raise MediaError(
            f"ffmpeg decoded no audio from {path.name} (start {start:g} s)",
            hint="check that the start time lies inside the clip",
        )
    return np.clip(waveform, -1.0, 1.0)
