"""What a media file holds, read from the stream summary that `ffmpeg -i` prints (no ffprobe).

imageio-ffmpeg ships ffmpeg alone, so the summary is parsed here: duration, displayed
frame size (rotation applied), frame rate, streams. `exact_rate` recovers the exact
rational rate behind the rounded one printed.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from gsavl_cli.errors import MediaError
from gsavl_cli.io.media.command import check_file, ffmpeg_command, file_url, last_error_line, run_ffmpeg

_IMAGE_DEMUXERS = ("_pipe", "image2")
_NTSC_DENOMINATOR = 1001


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
    args = ffmpeg_command("-i", file_url(path), "-map", "0", "-c", "copy", "-f", "null", "-progress", "pipe:1", "-")
    times = re.findall(r"out_time_us=(\d+)", run_ffmpeg(args, path).decode())
    return int(times[-1]) / 1e6 if times else 0.0


def probe(path: str | os.PathLike) -> MediaInfo:
    """Duration, displayed frame size, frame rate, streams and rotation of a media file."""
    path = check_file(path)
    proc = subprocess.run(ffmpeg_command("-i", file_url(path), loglevel="info"), capture_output=True)
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
