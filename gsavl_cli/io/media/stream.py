"""Whole videos through one ffmpeg process each way, a chunk of frames at a time.

`iter_frames` decodes at a chosen rate (the frame on screen at each tick, the same rule
as `read_frames`); `video_writer` encodes RGB frames and muxes audio back in, writing
atomically. Memory holds one chunk, so clip length does not matter.

imageio-ffmpeg's `read_frames` / `write_frames` generators are not used: they ignore
ffmpeg's exit status, `write_frames` leaves ffmpeg's stderr on the terminal (so its
error cannot become a `MediaError`) and has no audio-only output, and `read_frames`
logs a warning for every rotated video.
"""

from __future__ import annotations

import math
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import numpy as np

from gsavl_cli.errors import MediaError, UsageError
from gsavl_cli.io.files import atomic_path
from gsavl_cli.io.media.command import (
    FfmpegFailed,
    check_file,
    ffmpeg_command,
    ffmpeg_encoders,
    file_url,
    flags,
    last_error_line,
)
from gsavl_cli.io.media.info import MediaInfo, exact_rate, probe


def sampling_rate(info: MediaInfo, every: float | None) -> Fraction:
    """Frames per second of `iter_frames`: one frame every `every` s, or the clip's own rate (None)."""
    if every is None:
        return exact_rate(info.fps)
    if not every > 0 or not math.isfinite(every):
        raise UsageError(f"the sampling interval must be > 0 s, got {every}", hint="e.g. --every 0.25")
    return 1 / Fraction(str(every)).limit_denominator(1000)


def expected_frames(info: MediaInfo, every: float | None) -> int:
    """How many frames `iter_frames` will give (ticks before the end; an estimate for progress bars)."""
    ticks = info.duration * float(sampling_rate(info, every))
    return max(1, math.ceil(ticks - 1e-6))


@dataclass(frozen=True)
class FrameChunk:
    """Consecutive sampled frames: indices start..start+F-1, shown at `times` (s)."""

    start: int
    times: np.ndarray  # [F] float64
    frames: np.ndarray  # [F,H,W,3] uint8 RGB, displayed size (rotation applied)

    def __len__(self) -> int:
        return len(self.times)


def _read_full(stream: IO[bytes], buffer: bytearray) -> int:
    """Fill `buffer` from a pipe; fewer bytes only at the end of the stream."""
    view, got = memoryview(buffer), 0
    while got < len(buffer):
        n = stream.readinto(view[got:])  # type: ignore[attr-defined]
        if not n:
            break
        got += n
    return got


def _log_text(log: IO[bytes]) -> str:
    log.seek(0)
    return log.read().decode("utf-8", "replace")


def iter_frames(
    path: str | os.PathLike,
    *,
    every: float | None = None,
    chunk_size: int = 16,
    info: MediaInfo | None = None,
) -> Iterator[FrameChunk]:
    """Stream a video's frames in chunks from one ffmpeg process; memory holds one chunk.

    Frame k is the frame on screen at k / rate (the same rule as `read_frames`): the `fps`
    filter with `round=up` takes the last frame whose timestamp is <= the tick, and
    `start_time=0` repeats the first frame if the video starts late. `every=None` gives
    every frame at the clip's rate (each decoded frame of a constant-rate video; a
    variable-rate one is resampled to its average rate). Stopping early kills ffmpeg.
    """
    path = check_file(path)
    info = info or probe(path)
    if not info.has_video:
        raise MediaError(f"{path.name} has no video stream", hint="pass a video file, not an audio file")
    if chunk_size < 1:
        raise UsageError(f"chunk size must be >= 1, got {chunk_size}")
    rate = sampling_rate(info, every)
    args = ffmpeg_command(
        "-i", file_url(path), "-map", "0:v:0", "-vf", f"fps=fps={rate}:start_time=0:round=up",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:",
    )  # fmt: skip
    frame_bytes = info.width * info.height * 3
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log)
        try:
            index = 0
            while True:
                buffer = bytearray(chunk_size * frame_bytes)
                count = _read_full(proc.stdout, buffer) // frame_bytes  # type: ignore[arg-type]
                if count:
                    frames = np.frombuffer(buffer, np.uint8, count * frame_bytes).reshape(
                        count, info.height, info.width, 3
                    )
                    ticks = np.arange(index, index + count, dtype=np.float64)
                    yield FrameChunk(index, ticks * rate.denominator / rate.numerator, frames)
                    index += count
                if count < chunk_size:
                    break
            if proc.wait() != 0:
                raise FfmpegFailed(path, _log_text(log))
            if index == 0:
                raise MediaError(
                    f"ffmpeg decoded no frame from {path.name}", hint="the video stream is empty or corrupt"
                )
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdout.close()  # type: ignore[union-attr]


def encoder_options() -> tuple[dict[str, Any], dict[str, Any]]:
    """(video, audio) encoder options: H.264 + AAC where the ffmpeg build has them, else MPEG-4 / MP3."""
    have = ffmpeg_encoders()
    if "libx264" in have:
        video: dict[str, Any] = {"c:v": "libx264", "preset": "veryfast", "crf": 18}
    else:
        video = {"c:v": "mpeg4", "q:v": 2}
    if "aac" in have:
        audio: dict[str, Any] = {"c:a": "aac", "b:a": "128k"}
    elif "libmp3lame" in have:
        audio = {"c:a": "libmp3lame", "q:a": 2}
    else:
        raise MediaError("this ffmpeg build has neither an AAC nor an MP3 encoder", hint="install a full ffmpeg build")
    return {**video, "pix_fmt": "yuv420p"}, audio


class VideoWriter:
    """The ffmpeg process behind `video_writer`: `write` pipes RGB frames to its encoder."""

    def __init__(self, process: subprocess.Popen, name: str, size: tuple[int, int] | None, log: IO[bytes]) -> None:
        self._process = process
        self._name = name
        self._size = size
        self._log = log
        self.frames_written = 0

    def _failed(self) -> MediaError:
        self._process.wait()
        return MediaError(
            f"ffmpeg cannot write {self._name}: {last_error_line(_log_text(self._log))}",
            hint="check the output format, the ffmpeg build and the free disk space",
        )

    def write(self, frames: np.ndarray) -> None:
        """Encode one frame [H,W,3] or a chunk [F,H,W,3] of uint8 RGB at the writer's size."""
        array = np.asarray(frames)
        array = array[None] if array.ndim == 3 else array
        if self._size is None:
            raise UsageError("this writer has no video stream")
        width, height = self._size
        if array.dtype != np.uint8 or array.ndim != 4 or array.shape[1:] != (height, width, 3):
            raise UsageError(f"frames must be uint8 [F,{height},{width},3], got {array.dtype} {array.shape}")
        try:
            self._process.stdin.write(np.ascontiguousarray(array).data)  # type: ignore[union-attr]
        except (BrokenPipeError, ValueError):
            raise self._failed() from None
        self.frames_written += len(array)

    def _finish(self) -> None:
        if self._process.stdin is not None:
            with suppress(BrokenPipeError):
                self._process.stdin.close()
        if self._process.wait() != 0:
            raise self._failed()

    def _kill(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()


@contextmanager
def video_writer(
    path: str | os.PathLike,
    *,
    fps: float | Fraction,
    size: tuple[int, int] | None,
    audio: str | os.PathLike | None = None,
    video_options: dict[str, Any] | None = None,
    audio_options: dict[str, Any] | None = None,
) -> Iterator[VideoWriter]:
    """Encode frames written chunk by chunk, muxing in the first audio stream of `audio`.

    `size` is (width, height) of the frames (None: an audio-only file). ffmpeg writes to
    a hidden sibling (`atomic_path`) that is renamed when the block ends without error;
    an exception or Ctrl-C kills ffmpeg and removes it, so no half-written video ever
    appears under `path`. Odd frame sizes are padded by a pixel (4:2:0 needs even ones).
    """
    if size is None and audio is None:
        raise UsageError("a video needs frames or an audio stream")
    defaults = encoder_options() if video_options is None or audio_options is None else ({}, {})
    video_options = defaults[0] if video_options is None else video_options
    audio_options = defaults[1] if audio_options is None else audio_options
    sound = check_file(audio) if audio is not None else None
    path = Path(path)
    with atomic_path(path) as tmp, tempfile.TemporaryFile() as log:
        inputs: list[str] = []
        maps: list[str] = []
        options: dict[str, Any] = {}
        if size is not None:
            width, height = size
            inputs += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps), "-i", "pipe:"]
            maps += ["-map", "0:v:0"]
            options.update(video_options)
            if width % 2 or height % 2:
                options["vf"] = "pad=ceil(iw/2)*2:ceil(ih/2)*2"
        if sound is not None:
            maps += ["-map", f"{inputs.count('-i')}:a:0"]
            inputs += ["-i", file_url(sound)]
            options.update(audio_options)
        args = ffmpeg_command("-y", *inputs, *maps, *flags(options), file_url(tmp))
        stdin = subprocess.PIPE if size is not None else subprocess.DEVNULL
        process = subprocess.Popen(args, stdin=stdin, stdout=subprocess.DEVNULL, stderr=log)
        writer = VideoWriter(process, path.name, size, log)
        try:
            yield writer
            writer._finish()
        except BaseException:
            writer._kill()
            raise
