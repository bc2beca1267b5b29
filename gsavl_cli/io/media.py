"""Decoding video frames and audio with the ffmpeg binary, without ffprobe.

Everything goes through `ffmpeg` itself so that the one static binary shipped by
imageio-ffmpeg is enough: `probe` parses the stream summary that `ffmpeg -i` prints,
`read_frames` seeks and pipes raw RGB, `read_audio` pipes mono float32 PCM. Whole
videos stream through one ffmpeg process each way, a chunk of frames at a time:
`iter_frames` decodes at a chosen rate, `video_writer` encodes (and muxes audio back).
Images (PNG masks, extracted frames) are encoded and decoded with torchvision.io.
"""

from __future__ import annotations

import functools
import math
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import ffmpeg
import numpy as np
import torch
import torchvision.io as tvio

from gsavl_cli.errors import MediaError, UsageError
from gsavl_cli.io.files import atomic_path, write_atomic

_GLOBAL_ARGS = ("-nostdin", "-hide_banner")
_NOISE_LINES = (
    "At least one output file must be specified",
    "Conversion failed!",
    "Exiting normally",
)
_IMAGE_DEMUXERS = ("_pipe", "image2")
_TIME_EPS = 1e-4


@dataclass(frozen=True)
class MediaInfo:
    """What `ffmpeg -i` tells about a file; width/height are the displayed (rotated) size."""

    duration: float
    width: int
    height: int
    fps: float
    has_video: bool
    has_audio: bool
    rotation: int


@functools.cache
def ffmpeg_binary() -> str:
    """The ffmpeg executable: `ffmpeg` on PATH, else the static binary of imageio-ffmpeg."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as exc:
        raise MediaError(
            "ffmpeg was not found",
            hint="install ffmpeg (e.g. `apt install ffmpeg`) or `pip install imageio-ffmpeg`",
        ) from exc


@functools.cache
def ffmpeg_encoders() -> frozenset[str]:
    """Names of the encoders this ffmpeg build has (to pick codecs that exist)."""
    out = subprocess.run(
        [ffmpeg_binary(), *_GLOBAL_ARGS, "-loglevel", "error", "-encoders"], capture_output=True, text=True
    ).stdout
    return frozenset(m.group(1) for m in re.finditer(r"^ [VAS][\w.]{5} (\S+)", out, re.M))


def file_url(path: Path) -> str:
    """An ffmpeg URL for a local file: `file:` keeps names with `:` or a leading `-` literal."""
    return "file:" + str(path.resolve())


def last_error_line(stderr: str) -> str:
    """The last stderr line that says something, without ffmpeg's `[ctx @ 0x..]` prefixes."""
    for raw in reversed(stderr.splitlines()):
        line = re.sub(r"^(\[[^\]]*\]\s*)+", "", raw).strip()
        if line and not line.startswith(_NOISE_LINES):
            return line.removeprefix("Error opening input files: ")
    return "unknown error"


class _FfmpegFailed(MediaError):
    """An ffmpeg run that exited non-zero; keeps its stderr for callers that refine the error."""

    def __init__(self, path: Path, stderr: str) -> None:
        super().__init__(
            f"ffmpeg cannot read {path.name}: {last_error_line(stderr)}",
            hint="the file is corrupt or in an unsupported format; re-download or re-encode it",
        )
        self.stderr = stderr


def _run(args: list[str], path: Path) -> bytes:
    """Run ffmpeg and return its stdout; a non-zero exit raises `_FfmpegFailed`."""
    proc = subprocess.run(args, capture_output=True)
    if proc.returncode != 0:
        raise _FfmpegFailed(path, proc.stderr.decode("utf-8", "replace"))
    return proc.stdout


def ffmpeg_command(stream: ffmpeg.nodes.OutputStream, loglevel: str = "error") -> list[str]:
    """Compile an ffmpeg-python graph with our global options placed before the inputs."""
    args = ffmpeg.compile(stream, cmd=ffmpeg_binary())
    return [args[0], *_GLOBAL_ARGS, "-loglevel", loglevel, *args[1:]]


def _check_file(path: str | os.PathLike) -> Path:
    """Catch the common mistakes before ffmpeg turns them into a vaguer message."""
    path = Path(path)
    if not path.exists():
        raise MediaError(f"{path}: no such file", hint="check the path")
    if path.is_dir():
        raise MediaError(f"{path} is a directory, not a media file", hint="pass a video file")
    if path.stat().st_size == 0:
        raise MediaError(f"{path.name} is empty (0 bytes)", hint="the file was not fully written; recreate it")
    return path


def _parse_rate(text: str) -> float:
    """ffmpeg rates: `29.97`, `25`, `1k`."""
    return float(text[:-1]) * 1000 if text.endswith("k") else float(text)


def _stream_blocks(stderr: str) -> list[tuple[str, list[str]]]:
    """(stream line, following detail lines) for every stream of input #0."""
    blocks: list[tuple[str, list[str]]] = []
    for line in stderr.splitlines():
        if re.match(r"\s*Stream #0:\d+", line):
            blocks.append((line, []))
        elif blocks and line.startswith(" "):
            blocks[-1][1].append(line)
        elif blocks:
            break
    return blocks


def _rotation(details: list[str]) -> int:
    """Clockwise display rotation in degrees (0/90/180/270) from side data or a `rotate` tag."""
    text = "\n".join(details)
    matrix = re.search(r"rotation of (-?[\d.]+) degrees", text, re.I)
    if matrix:  # the display matrix angle is counter-clockwise
        return round(-float(matrix.group(1))) % 360
    tag = re.search(r"^\s*rotate\s*:\s*(-?\d+)", text, re.M)
    return int(tag.group(1)) % 360 if tag else 0


def _duration(stderr: str) -> float | None:
    match = re.search(r"Duration:\s*(\d+):(\d+):([\d.]+)", stderr)
    if not match:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _decoded_duration(path: Path) -> float:
    """Duration by reading every packet (stream copy, no decoding) when the header lacks it."""
    args = [
        ffmpeg_binary(), *_GLOBAL_ARGS, "-loglevel", "error", "-i", file_url(path),
        "-map", "0", "-c", "copy", "-f", "null", "-progress", "pipe:1", "-",
    ]  # fmt: skip
    times = re.findall(r"out_time_us=(\d+)", _run(args, path).decode())
    return int(times[-1]) / 1e6 if times else 0.0


def probe(path: str | os.PathLike) -> MediaInfo:
    """Duration, displayed frame size, frame rate, streams and rotation of a media file."""
    path = _check_file(path)
    proc = subprocess.run([ffmpeg_binary(), *_GLOBAL_ARGS, "-i", file_url(path)], capture_output=True)
    stderr = proc.stderr.decode("utf-8", "replace")
    if "Input #0" not in stderr:
        raise MediaError(
            f"ffmpeg cannot read {path.name}: {last_error_line(stderr)}",
            hint="the file is corrupt or not a video/audio file; re-download or re-encode it",
        )
    blocks = _stream_blocks(stderr)
    video = next(
        ((line, det) for line, det in blocks if ": Video:" in line and "(attached pic)" not in line),
        None,
    )
    has_audio = any(": Audio:" in line for line, _ in blocks)
    if video is None and not has_audio:
        raise MediaError(f"{path.name} has no video or audio stream", hint="pass a video file")
    width = height = rotation = 0
    fps = 0.0
    if video is not None:
        line, details = video
        size = re.search(r", ([1-9]\d*)x([1-9]\d*)\b", line)
        if size is None:
            raise MediaError(f"ffmpeg reports no frame size for {path.name}", hint="re-encode the video")
        width, height = int(size.group(1)), int(size.group(2))
        rotation = _rotation(details)
        if rotation in (90, 270):
            width, height = height, width
        rate = re.search(r"([\d.]+k?) fps", line) or re.search(r"([\d.]+k?) tbr", line)
        fps = _parse_rate(rate.group(1)) if rate else 0.0
    is_image = re.search(r"Input #0, (\S+),", stderr).group(1).endswith(_IMAGE_DEMUXERS)
    duration = 0.0 if is_image else _duration(stderr)
    if duration is None:
        duration = _decoded_duration(path)
    return MediaInfo(duration, width, height, fps, video is not None, has_audio, rotation)


def _frames_between(path: Path, start: float, length: float, info: MediaInfo) -> tuple[np.ndarray, np.ndarray]:
    """Frames decoded from [start, start + length] and their timestamps in seconds.

    Timestamps come from the `showinfo` filter: ffmpeg's own `-t` cut is off by up to a
    frame, so we select frames by their real presentation times instead.
    """
    stream = ffmpeg.input(file_url(path), ss=f"{start:.6f}", t=f"{length:.6f}").output(
        "pipe:",
        map="0:v:0",
        vf="showinfo",
        fps_mode="passthrough",
        format="rawvideo",
        pix_fmt="rgb24",
    )
    proc = subprocess.run(ffmpeg_command(stream, loglevel="info"), capture_output=True)
    stderr = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise _FfmpegFailed(path, stderr)
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
    path = _check_file(path)
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
    path = _check_file(path)
    window = {"ss": f"{max(start, 0.0):.6f}"}
    if duration is not None:
        window["t"] = f"{duration:.6f}"
    stream = ffmpeg.input(file_url(path)).output("pipe:", map="0:a:0", ac=1, ar=sample_rate, format="f32le", **window)
    try:
        raw = _run(ffmpeg_command(stream), path)
    except _FfmpegFailed as exc:
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


def encode_image(frame: np.ndarray) -> bytes:
    """PNG bytes of an [H,W,3] RGB or [H,W] grey/bool image (bool masks become 0/255)."""
    array = np.asarray(frame)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    if array.dtype != np.uint8 or array.ndim not in (2, 3):
        raise ValueError(f"expected an [H,W] or [H,W,C] uint8/bool image, not {array.dtype} {array.shape}")
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    tensor = tensor[None] if tensor.ndim == 2 else tensor.permute(2, 0, 1)
    return tvio.encode_png(tensor).numpy().tobytes()


def decode_image(data: bytes, mode: str = "RGB") -> np.ndarray:
    """Decode PNG/JPEG bytes to [H,W,3] uint8 RGB (`mode="GRAY"`: [H,W] uint8)."""
    tensor = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    image = tvio.decode_image(tensor, mode=tvio.ImageReadMode[mode])
    array = image.permute(1, 2, 0).numpy()
    return array[..., 0] if mode == "GRAY" else array


def read_image(path: str | os.PathLike, mode: str = "RGB") -> np.ndarray:
    """An image file as [H,W,3] uint8 RGB (`mode="GRAY"`: [H,W] uint8)."""
    path = _check_file(path)
    try:
        return decode_image(path.read_bytes(), mode)
    except RuntimeError as exc:
        raise MediaError(f"cannot decode image {path.name}: {exc}", hint="the image is corrupt") from exc


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """A binary mask PNG (0/255 grey, as in AVSBench) as [H,W] bool."""
    return read_image(path, mode="GRAY") > 127


def write_png(path: str | os.PathLike, array: np.ndarray) -> None:
    """Atomically write an [H,W] bool/uint8 mask or an [H,W,3] uint8 image as PNG."""
    write_atomic(path, encode_image(array))


# --------------------------------------------------------------------------- whole videos
_NTSC_DENOMINATOR = 1001


def exact_rate(fps: float) -> Fraction:
    """The exact rate behind the one ffmpeg prints: 29.97 -> 30000/1001, 25 -> 25.

    `probe` reads the rounded text; NTSC rates would drift by a frame every ~17 min.
    """
    if fps <= 0 or not math.isfinite(fps):
        raise MediaError(f"no usable frame rate ({fps})", hint="re-encode the video with a constant frame rate")
    ntsc = round(fps * _NTSC_DENOMINATOR / 1000)
    if abs(fps - round(fps)) > 0.005 and abs(fps - ntsc * 1000 / _NTSC_DENOMINATOR) < 0.006:
        return Fraction(ntsc * 1000, _NTSC_DENOMINATOR)
    return Fraction(str(fps)).limit_denominator(1000)


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
    path = _check_file(path)
    info = info or probe(path)
    if not info.has_video:
        raise MediaError(f"{path.name} has no video stream", hint="pass a video file, not an audio file")
    if chunk_size < 1:
        raise UsageError(f"chunk size must be >= 1, got {chunk_size}")
    rate = sampling_rate(info, every)
    stream = ffmpeg.input(file_url(path)).output(
        "pipe:", map="0:v:0", vf=f"fps=fps={rate}:start_time=0:round=up", format="rawvideo", pix_fmt="rgb24"
    )
    frame_bytes = info.width * info.height * 3
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(ffmpeg_command(stream), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log)
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
                raise _FfmpegFailed(path, _log_text(log))
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
    sound = _check_file(audio) if audio is not None else None
    path = Path(path)
    with atomic_path(path) as tmp, tempfile.TemporaryFile() as log:
        streams: list[Any] = []
        options: dict[str, Any] = {}
        if size is not None:
            width, height = size
            streams.append(ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}", r=str(fps)))
            options.update(video_options)
            if width % 2 or height % 2:
                options["vf"] = "pad=ceil(iw/2)*2:ceil(ih/2)*2"
        if sound is not None:
            streams.append(ffmpeg.input(file_url(sound))["a:0"])
            options.update(audio_options)
        args = ffmpeg_command(ffmpeg.output(*streams, file_url(tmp), **options).overwrite_output())
        stdin = subprocess.PIPE if size is not None else subprocess.DEVNULL
        process = subprocess.Popen(args, stdin=stdin, stdout=subprocess.DEVNULL, stderr=log)
        writer = VideoWriter(process, path.name, size, log)
        try:
            yield writer
            writer._finish()
        except BaseException:
            writer._kill()
            raise
