"""The HDF5 store that `preprocess` writes and every later stage reads.

One file per preprocessed dataset. Each clip is a group under `/clips`; the group gets
its `complete` attribute only after all of its arrays are written and flushed, so a
run that dies mid-clip leaves a group that the next run removes and redoes. Frames are
kept as PNG bytes at their original resolution (SAM needs them; PNG is lossless and
about a third of the raw size).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from gsavl_cli import __version__
from gsavl_cli.errors import DamagedClipError, UsageError
from gsavl_cli.io.media import decode_image, encode_image

SCHEMA_VERSION = 1
_CLIPS = "clips"
_ARRAYS = ("waveform", "vggish", "spectrogram", "masks", "boxes")
WAVEFORM_LIMIT = 100.0
"""Decoded audio lies in [-1, 1]; stored samples far beyond it are damaged bytes, not sound."""


@dataclass
class ClipRecord:
    """Everything one clip contributes to the store."""

    clip_id: str
    frames: np.ndarray  # [F,H,W,3] uint8
    frame_times: list[float]
    waveform: np.ndarray  # [N] float32, 16 kHz mono
    vggish: np.ndarray | None = None  # [T,96,64]
    spectrogram: np.ndarray | None = None  # [257,F]
    masks: np.ndarray | None = None  # [M,H,W] bool
    mask_frames: list[int] | None = None  # frame index of each mask
    boxes: np.ndarray | None = None  # [K,4] normalised x1,y1,x2,y2
    meta: dict[str, Any] = field(default_factory=dict)  # source, duration, split, category


def hdf5_name(clip_id: str) -> str:
    """HDF5 names cannot hold '/', and '.' alone is reserved."""
    return clip_id.replace("/", "|")


def check_schema(f: h5py.File, path: Path) -> None:
    """Refuses a file that is not a gsavl store, or one of another schema version (re-run preprocess)."""
    version = f.attrs.get("schema_version")
    if version is None or _CLIPS not in f:
        raise UsageError(
            f"{path} is not a gsavl data file",
            hint="make one with `gsavl preprocess VIDEOS -o FILE.h5`",
        )
    if int(version) != SCHEMA_VERSION:
        raise UsageError(
            f"{path} has schema version {version}; this gsavl reads version {SCHEMA_VERSION}",
            hint="re-run `gsavl preprocess` with this version of gsavl",
        )


def _open_h5(path: Path, mode: str) -> h5py.File:
    try:
        return h5py.File(path, mode)
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}", hint="check the path, or run `gsavl preprocess` first") from None
    except OSError as exc:
        raise UsageError(
            f"{path} is not a readable HDF5 file ({exc.__class__.__name__})",
            hint="it may be truncated or from another tool; re-create it with `gsavl preprocess --overwrite`",
        ) from None


class StoreWriter:
    """Appends clips to a store; re-opening an existing store resumes it.

    `settings` are compared with the ones already in the file so that features made
    with different parameters are never mixed silently.
    """

    def __init__(self, path: Path, settings: dict[str, Any], *, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.settings = settings
        if overwrite and self.path.exists():
            self.path.unlink()
        if self.path.exists():
            self._file = _open_h5(self.path, "r+")
            check_schema(self._file, self.path)
            self._check_settings()
            self._drop_incomplete()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = h5py.File(self.path, "w")
            self._file.attrs["schema_version"] = SCHEMA_VERSION
            self._file.attrs["tool_version"] = __version__
            self._file.attrs["settings"] = json.dumps(settings, sort_keys=True)
            self._file.create_group(_CLIPS)
            self._file.flush()

    def _check_settings(self) -> None:
        stored = json.loads(self._file.attrs["settings"])
        if stored != json.loads(json.dumps(self.settings, sort_keys=True)):
            changed = sorted(k for k in set(stored) | set(self.settings) if stored.get(k) != self.settings.get(k))
            raise UsageError(
                f"{self.path} was made with different settings ({', '.join(changed)})",
                hint="pass --overwrite to start over, or choose another -o file",
            )

    def _drop_incomplete(self) -> None:
        clips = self._file[_CLIPS]
        for key in [k for k, g in clips.items() if not g.attrs.get("complete", False)]:
            del clips[key]
        self._file.flush()

    @property
    def done_ids(self) -> set[str]:
        """The ids of the clips already complete in the store: what a resumed preprocess skips."""
        return {g.attrs["id"] for g in self._file[_CLIPS].values()}

    def write(self, record: ClipRecord) -> None:
        """Writes one clip, replacing any earlier copy; it counts as complete only once all of it is flushed."""
        clips = self._file[_CLIPS]
        key = hdf5_name(record.clip_id)
        if key in clips:
            del clips[key]
        group = clips.create_group(key)
        group.attrs["id"] = record.clip_id
        group.attrs["frame_times"] = np.asarray(record.frame_times, dtype=np.float64)
        group.attrs["meta"] = json.dumps(record.meta, sort_keys=True)
        encoded = group.create_dataset("frames", (len(record.frames),), dtype=h5py.vlen_dtype(np.uint8))
        for i, frame in enumerate(record.frames):
            encoded[i] = np.frombuffer(encode_image(frame), dtype=np.uint8)
        for name in _ARRAYS:
            value = getattr(record, name)
            if value is not None:
                compression = "gzip" if name == "masks" else None
                group.create_dataset(name, data=value, compression=compression)
        if record.mask_frames is not None:
            group.attrs["mask_frames"] = np.asarray(record.mask_frames, dtype=np.int64)
        self._file.flush()
        group.attrs["complete"] = True
        self._file.flush()

    def close(self) -> None:
        """Flushes and closes the file; calling it again does nothing."""
        if self._file.id.valid:
            self._file.flush()
            self._file.close()

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Store(Mapping[str, dict[str, np.ndarray]]):
    """Read-only random access to a store; opens the file lazily in each process.

    DataLoader workers are forked processes: an h5py handle must not cross a fork, so
    the handle is keyed by the process id.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._file: h5py.File | None = None
        self._pid = -1
        f = self._h5()
        self.settings: dict[str, Any] = json.loads(f.attrs["settings"])
        self.tool_version = str(f.attrs.get("tool_version", "?"))
        groups = f[_CLIPS]
        self._keys = {g.attrs["id"]: k for k, g in groups.items() if g.attrs.get("complete", False)}
        self.ids: list[str] = sorted(self._keys)

    def _h5(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            self._file = _open_h5(self.path, "r")
            self._pid = os.getpid()
            check_schema(self._file, self.path)
        return self._file

    def _group(self, clip_id: str) -> h5py.Group:
        try:
            return self._h5()[_CLIPS][self._keys[clip_id]]
        except KeyError:
            raise UsageError(f"clip {clip_id!r} is not in {self.path}") from None

    def __getitem__(self, clip_id: str) -> dict[str, np.ndarray]:
        group = self._group(clip_id)
        item = {name: self._array(clip_id, group, name) for name in _ARRAYS if name in group}
        item["frames"] = self._frames(clip_id, group)
        item["frame_times"] = np.asarray(group.attrs["frame_times"])
        if "mask_frames" in group.attrs:
            item["mask_frames"] = np.asarray(group.attrs["mask_frames"])
        return item

    def read(self, clip_id: str, names: tuple[str, ...]) -> dict[str, np.ndarray]:
        """Only the named arrays; training reads log-mel and one frame, not everything."""
        group = self._group(clip_id)
        out: dict[str, np.ndarray] = {}
        for name in names:
            if name == "frames":
                out[name] = self._frames(clip_id, group)
            elif name == "first_frame":
                out[name] = self._frames(clip_id, group, first=True)[0]
            elif name in group:
                out[name] = self._array(clip_id, group, name)
            elif name in group.attrs:
                out[name] = np.asarray(group.attrs[name])
        return out

    def _damaged(self, clip_id: str, what: str) -> DamagedClipError:
        return DamagedClipError(f"damaged clip {clip_id!r} in {self.path}: {what}", clip=clip_id, reason=what)

    def _array(self, clip_id: str, group: h5py.Group, name: str) -> np.ndarray:
        """One stored array, checked: unreadable bytes and non-finite or impossible values name the clip."""
        try:
            value = group[name][()]
        except (OSError, ValueError, RuntimeError) as exc:
            raise self._damaged(clip_id, f"{name} cannot be read ({exc})") from None
        if value.dtype.kind == "f":
            if not np.isfinite(value).all():
                raise self._damaged(clip_id, f"{name} holds non-finite values (NaN or infinity)")
            if name == "waveform" and value.size and float(np.abs(value).max()) > WAVEFORM_LIMIT:
                raise self._damaged(clip_id, f"waveform reaches {float(np.abs(value).max()):.3g}, far outside [-1, 1]")
        return value

    def _frames(self, clip_id: str, group: h5py.Group, first: bool = False) -> np.ndarray:
        try:
            encoded = [group["frames"][0]] if first else list(group["frames"][()])
        except (OSError, ValueError, RuntimeError) as exc:
            raise self._damaged(clip_id, f"frames cannot be read ({exc})") from None
        frames = []
        for i, data in enumerate(encoded):
            try:
                frames.append(decode_image(bytes(data)))
            except Exception as exc:  # the image decoder's own words say what is broken
                raise self._damaged(clip_id, f"frame {i} does not decode ({type(exc).__name__}: {exc})") from None
        if not frames:
            raise self._damaged(clip_id, "no frames")
        return np.stack(frames)

    def verify(self, clip_id: str) -> str | None:
        """Reads and decodes everything of one clip; the reason it is damaged, or None."""
        try:
            self[clip_id]
        except DamagedClipError as exc:
            return exc.reason
        return None

    def meta(self, clip_id: str) -> dict[str, Any]:
        """A clip's metadata (source, duration, split, category) without reading its arrays."""
        group = self._group(clip_id)
        return json.loads(group.attrs["meta"])

    def arrays(self, clip_id: str) -> dict[str, tuple[tuple[int, ...], str]]:
        """Shapes and dtypes without reading the data (for `gsavl inspect`)."""
        group = self._group(clip_id)
        shapes = {name: (group[name].shape, str(group[name].dtype)) for name in group}
        frames = group["frames"]
        if len(frames):
            first = self._frames(clip_id, group, first=True)[0]
            shapes["frames"] = ((len(frames), *first.shape), "uint8")
        return shapes

    def split_ids(self, split: str | None) -> list[str]:
        """The ids of the clips in `split` (None or "all": every clip), sorted."""
        if split in (None, "all"):
            return list(self.ids)
        return [i for i in self.ids if self.meta(i).get("split") == split]

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __len__(self) -> int:
        return len(self.ids)

    def close(self) -> None:
        """Closes this process's handle; reading again reopens the file."""
        if self._file is not None and self._file.id.valid:
            self._file.close()
        self._file = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_file"] = None
        state["_pid"] = -1
        return state


def find_damaged(
    path: str | Path, ids: list[str] | None = None, on_clip: Callable[[str], None] | None = None
) -> dict[str, str]:
    """Every clip of `ids` (default: all) whose arrays or frames do not read back: clip id -> what is wrong."""
    damaged = {}
    with open_store(path) as store:
        for clip_id in store.ids if ids is None else ids:
            reason = store.verify(clip_id)
            if reason is not None:
                damaged[clip_id] = reason
            if on_clip is not None:
                on_clip(clip_id)
    return damaged


def open_store(path: str | Path) -> Store:
    """Open a store for reading: `with open_store(p) as s: s.ids, s.settings, s[clip_id]`."""
    return Store(Path(path))
