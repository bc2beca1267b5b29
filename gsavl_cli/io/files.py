"""Atomic writes (readers never see a half-written file under the final name), and the guard that no output is an input."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path


def temp_sibling(path: Path) -> Path:
    """A unique hidden path next to `path` with the same suffix (so ffmpeg infers the format)."""
    path = Path(path)
    return path.with_name(f".{path.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial{path.suffix}")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary sibling to write; renamed to `path` on success, removed on any error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic_with(path: str | os.PathLike, writer: Callable[[Path], None]) -> None:
    """`writer(tmp)` writes the content to `tmp`; it appears under `path` only when complete."""
    with atomic_path(path) as tmp:
        writer(tmp)


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write bytes atomically."""
    write_atomic_with(path, lambda tmp: tmp.write_bytes(data))


def _same(a: str, b: str) -> bool:
    if os.path.abspath(a) == os.path.abspath(b) or os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links, bind mounts
    except OSError:
        return False


def guard_outputs(
    outputs: dict[str, str | os.PathLike | None],
    inputs: dict[str, str | os.PathLike | None] | None = None,
    *,
    many_inputs: Iterable[str | os.PathLike] = (),
    walked: Iterable[str | os.PathLike] = (),
    video_suffixes: Iterable[str] = (),
) -> None:
    """Refuses, before anything is written, an output that is one of the command's inputs.

    `outputs` maps an option (`-o`, `--out/best.pt`) to the path it writes; `inputs` names
    each input file; `many_inputs` are a dataset's files (compared by path only, cheaply);
    a video output inside a `walked` folder is refused too, since the next walk would
    take it for a clip.
    """
    from gsavl_cli.errors import UsageError

    named = {desc: os.fspath(p) for desc, p in (inputs or {}).items() if p is not None}
    bulk = {os.path.abspath(os.fspath(p)) for p in many_inputs}
    suffixes = {s.lower() for s in video_suffixes}
    folders = [os.path.abspath(os.fspath(f)) for f in walked]
    for option, target in outputs.items():
        if target is None:
            continue
        path = os.fspath(target)
        clash = next((desc for desc, source in named.items() if _same(path, source)), None)
        if clash is None and (os.path.abspath(path) in bulk or os.path.realpath(path) in bulk):
            clash = "one of the clips' files"
        if clash is not None:
            raise UsageError(
                f"{option} {path} is also the {clash}: writing there would destroy it",
                hint="choose another output path",
            )
        inside = next((f for f in folders if os.path.abspath(path).startswith(f + os.sep)), None)
        if inside is not None and Path(path).suffix.lower() in suffixes:
            raise UsageError(
                f"{option} {path} is a video inside the input folder {inside}: the next run would take it for a clip",
                hint="write it outside the input folder",
            )
