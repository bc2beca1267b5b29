"""The one way gsavl finds and runs ffmpeg: the binary, its command lines, its errors.

Every ffmpeg process of `gsavl_cli.io.media` starts from `ffmpeg_command`, so the
global options (no stdin, no banner, a log level) are the same everywhere, and its
failures become `MediaError`s through `FfmpegFailed` / `last_error_line`.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gsavl_cli.errors import MediaError

_GLOBAL_ARGS = ("-nostdin", "-hide_banner")
_NOISE_LINES = (
    "At least one output file must be specified",
    "Conversion failed!",
    "Exiting normally",
)


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


def ffmpeg_command(*args: str, loglevel: str = "error") -> list[str]:
    """An ffmpeg command line: the binary and our global options, then `args` (inputs, outputs).

    `loglevel="info"` is for the runs whose stderr is parsed (the stream summary, `showinfo`).
    """
    return [ffmpeg_binary(), *_GLOBAL_ARGS, "-loglevel", loglevel, *args]


def flags(options: Mapping[str, Any]) -> list[str]:
    """Encoder options as arguments: `{"c:v": "mpeg4", "q:v": 2}` -> `-c:v mpeg4 -q:v 2`."""
    return [arg for name, value in options.items() for arg in (f"-{name}", str(value))]


@functools.cache
def ffmpeg_encoders() -> frozenset[str]:
    """Names of the encoders this ffmpeg build has (to pick codecs that exist)."""
    out = subprocess.run(ffmpeg_command("-encoders"), capture_output=True, text=True).stdout
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


class FfmpegFailed(MediaError):
    """An ffmpeg run that exited non-zero; keeps its stderr for callers that refine the error."""

    def __init__(self, path: Path, stderr: str) -> None:
        super().__init__(
            f"ffmpeg cannot read {path.name}: {last_error_line(stderr)}",
            hint="the file is corrupt or in an unsupported format; re-download or re-encode it",
        )
        self.stderr = stderr


def run_ffmpeg(args: list[str], path: Path) -> bytes:
    """Run an ffmpeg command that reads `path` and return its stdout; a non-zero exit raises `FfmpegFailed`."""
    proc = subprocess.run(args, capture_output=True)
    if proc.returncode != 0:
        raise FfmpegFailed(path, proc.stderr.decode("utf-8", "replace"))
    return proc.stdout


def check_file(path: str | os.PathLike) -> Path:
    """Catch the common mistakes before ffmpeg turns them into a vaguer message."""
    path = Path(path)
    if not path.exists():
        raise MediaError(f"{path}: no such file", hint="check the path")
    if path.is_dir():
        raise MediaError(f"{path} is a directory, not a media file", hint="pass a video file")
    if path.stat().st_size == 0:
        raise MediaError(f"{path.name} is empty (0 bytes)", hint="the file was not fully written; recreate it")
    return path
