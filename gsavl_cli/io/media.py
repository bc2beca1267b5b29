"""Decoding video frames and audio with the ffmpeg binary, without ffprobe.

Everything goes through `ffmpeg` itself so that the one static binary shipped by
imageio-ffmpeg is enough: `probe` parses the stream summary that `ffmpeg -i` prints,
`read_frames` seeks and pipes raw RGB, `read_audio` pipes mono float32 PCM. Images
(PNG masks, extracted frames) are encoded and decoded with torchvision.io.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import ffmpeg
import numpy as np
import torch
import torchvision.io as tvio

from gsavl_cli.errors import MediaError
from gsavl_cli.io.files import temp_sibling, write_atomic

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
        raise MediaError(
            f"{path.name} is empty (0 bytes)", hint="the file was not fully written; recreate it"
        )
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


def _frames_between(
    path: Path, start: float, length: float, info: MediaInfo
) -> tuple[np.ndarray, np.ndarray]:
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
    raise MediaError(
        f"ffmpeg decoded no frame from {path.name}", hint="the video stream is empty or corrupt"
    )


def read_frames(
    path: str | os.PathLike, times: Sequence[float], info: MediaInfo | None = None
) -> np.ndarray:
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
    stream = ffmpeg.input(file_url(path)).output(
        "pipe:", map="0:a:0", ac=1, ar=sample_rate, format="f32le", **window
    )
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
