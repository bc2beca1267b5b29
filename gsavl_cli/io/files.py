"""The one atomic-write helper: readers never see a half-written file under the final name."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
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
