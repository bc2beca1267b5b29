"""Mask archives: one binary mask per video frame, bit-packed in an `.npz`, written as a stream.

A 10-minute clip at 30 frames/s has 18 000 masks; as bool arrays at 640x360 that is
4 GB, packed 8 per byte and deflated it is a few MB. The writer adds the masks a chunk
at a time (one zip member per chunk, so memory holds one chunk) and the reader unpacks
one frame at a time. Members, all plain arrays that `np.load` reads without pickle:

- `format`: the string `gsavl-masks/1`;
- `size`: int64 [2], the mask (height, width);
- `times`: float64 [F], each mask's time in the clip (s);
- `counts`: int64 [C], how many masks each chunk member holds;
- `bits_000000`, `bits_000001`, ...: uint8 [n, ceil(H*W/8)], `np.packbits` of each
  row-major flattened mask (big bit order: the first pixel is the top bit).

`write_mask_pngs` writes the same masks as a PNG sequence (0/255, AVSBench style).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from gsavl_cli.errors import UsageError
from gsavl_cli.io.files import atomic_path
from gsavl_cli.io.media import write_png

FORMAT = "gsavl-masks/1"
_CHUNK_PREFIX = "bits_"
_HINT = "pass a mask archive written by `gsavl localize --masks`"


def pack_masks(masks: np.ndarray) -> np.ndarray:
    """[F,H,W] bool -> [F, ceil(H*W/8)] uint8."""
    masks = np.asarray(masks, dtype=bool)
    return np.packbits(masks.reshape(len(masks), -1), axis=1)


def unpack_masks(bits: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """[F, ceil(H*W/8)] uint8 -> [F,H,W] bool."""
    height, width = size
    flat = np.unpackbits(bits, axis=1, count=height * width)
    return flat.reshape(len(bits), height, width).astype(bool)


def _put(archive: zipfile.ZipFile, name: str, array: np.ndarray) -> None:
    with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
        np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)


class MaskWriter:
    """Adds masks to an open archive (see `mask_writer`)."""

    def __init__(self, archive: zipfile.ZipFile, size: tuple[int, int]) -> None:
        self._archive = archive
        self.size = (int(size[0]), int(size[1]))
        self._times: list[np.ndarray] = []
        self._counts: list[int] = []

    def __len__(self) -> int:
        return sum(self._counts)

    def add(self, masks: np.ndarray, times: Sequence[float] | np.ndarray) -> None:
        """Append masks [n,H,W] (bool, or 0/nonzero) shown at `times` [n] seconds."""
        masks = np.asarray(masks)
        times = np.asarray(times, dtype=np.float64).reshape(-1)
        if masks.ndim != 3 or masks.shape[1:] != self.size:
            raise UsageError(f"masks must be [n,{self.size[0]},{self.size[1]}], got {masks.shape}")
        if len(masks) != len(times):
            raise UsageError(f"{len(masks)} masks but {len(times)} times")
        if not len(masks):
            return
        _put(self._archive, f"{_CHUNK_PREFIX}{len(self._counts):06d}", pack_masks(masks != 0))
        self._times.append(times)
        self._counts.append(len(masks))

    def _close(self) -> None:
        _put(self._archive, "format", np.array(FORMAT))
        _put(self._archive, "size", np.array(self.size, dtype=np.int64))
        _put(self._archive, "times", np.concatenate(self._times) if self._times else np.zeros(0))
        _put(self._archive, "counts", np.array(self._counts, dtype=np.int64))


@contextmanager
def mask_writer(path: str | os.PathLike, size: tuple[int, int]) -> Iterator[MaskWriter]:
    """Write a mask archive of (height, width) masks; it appears at `path` only when complete."""
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
            writer = MaskWriter(archive, size)
            yield writer
            writer._close()


def write_masks(path: str | os.PathLike, masks: np.ndarray, times: Sequence[float] | np.ndarray) -> None:
    """All masks [F,H,W] at once (a convenience over `mask_writer`)."""
    masks = np.asarray(masks)
    with mask_writer(path, masks.shape[1:]) as out:
        out.add(masks, times)


class MaskArchive:
    """A mask archive opened for reading; `archive[i]` unpacks frame i only."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        try:
            self._npz = np.load(self.path, allow_pickle=False)
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise UsageError(f"{self.path.name} is not a mask archive: {exc}", hint=_HINT) from exc
        found = str(self._npz["format"]) if "format" in self._npz.files else None
        if found != FORMAT:
            self._npz.close()
            raise UsageError(f"{self.path.name} is not a {FORMAT} archive (format {found})", hint=_HINT)
        self.size: tuple[int, int] = tuple(int(v) for v in self._npz["size"])  # type: ignore[assignment]
        self.times: np.ndarray = self._npz["times"]
        self._ends = np.cumsum(self._npz["counts"])
        self._cached: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.times)

    def _chunk(self, index: int) -> np.ndarray:
        if self._cached is None or self._cached[0] != index:
            self._cached = (index, self._npz[f"{_CHUNK_PREFIX}{index:06d}"])
        return self._cached[1]

    def __getitem__(self, frame: int) -> np.ndarray:
        """The mask [H,W] bool of frame `frame` (negative counts from the end)."""
        if not -len(self) <= frame < len(self):
            raise IndexError(f"frame {frame} of {len(self)}")
        frame %= len(self)
        chunk = int(np.searchsorted(self._ends, frame, side="right"))
        row = frame - (int(self._ends[chunk - 1]) if chunk else 0)
        return unpack_masks(self._chunk(chunk)[row : row + 1], self.size)[0]

    def __iter__(self) -> Iterator[np.ndarray]:
        for frame in range(len(self)):
            yield self[frame]

    def all(self) -> np.ndarray:
        """Every mask as one [F,H,W] bool array (mind the memory for long clips)."""
        height, width = self.size
        chunks = [unpack_masks(self._chunk(i), self.size) for i in range(len(self._ends))]
        return np.concatenate(chunks) if chunks else np.zeros((0, height, width), dtype=bool)

    def close(self) -> None:
        """Closes the archive's file."""
        self._npz.close()

    def __enter__(self) -> MaskArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_masks(path: str | os.PathLike) -> MaskArchive:
    """Open a mask archive (use as a context manager, or call `close()`)."""
    return MaskArchive(path)


def write_mask_pngs(directory: str | os.PathLike, masks: np.ndarray, first_index: int = 0) -> list[Path]:
    """Masks [n,H,W] as `mask_000123.png` (0/255), numbered from `first_index`; each file atomic."""
    folder = Path(directory)
    paths = [folder / f"mask_{first_index + i:06d}.png" for i in range(len(masks))]
    for path, mask in zip(paths, masks):
        write_png(path, np.asarray(mask, dtype=bool))
    return paths
