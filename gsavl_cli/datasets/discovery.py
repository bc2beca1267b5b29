"""From a path on disk to clips, and from a name to a store: what every layout shares.

The one folder walk (`scan_folder`; `list_videos` for `localize`), clip-id lists
(`--subset`), `detect_layout` / `discover` over the registered layouts, and the named
datasets (`store_name` registers a store, `resolve_dataset` finds it again).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gsavl_cli.datasets.base import (
    LOCALIZER_BATCH,
    LOCALIZER_EPOCHS,
    SPLITS,
    ClipSource,
    NamedDataset,
    get_dataset,
    list_datasets,
)
from gsavl_cli.errors import UsageError

if TYPE_CHECKING:
    from gsavl_cli.datasets.base import Dataset

VIDEO_SUFFIXES = {".mp4", ".mkv", ".avi", ".mov", ".webm", ".flv", ".m4v", ".mpg", ".mpeg", ".wmv", ".3gp", ".ts"}
AUDIO_SUFFIXES = {".wav", ".mp3", ".m4a", ".aac", ".flac", ".ogg", ".oga", ".opus", ".wma"}
FALLBACK_LAYOUT = "folder"
"""What `detect_layout` answers when no registered layout recognises the folder."""


# ---------------------------------------------------------------- the folder walk


@dataclass(frozen=True)
class Ignored:
    """A file or folder that the folder walk did not consider, and why (preprocess reports them)."""

    source: Path
    reason: str

    def to_json(self) -> dict[str, str]:
        """The entry as JSON values, for preprocess's `--json` report."""
        return {"source": str(self.source), "reason": self.reason}


def _not_a_clip(path: Path) -> str | None:
    """Why a file met in the walk is not a clip; None for a readable video."""
    if path.name.startswith("."):
        return "hidden file"
    if path.is_symlink() and not path.exists():
        return "unreadable: broken link"
    suffix = path.suffix.lower()
    if suffix in AUDIO_SUFFIXES:
        return f"audio only ({suffix}): a clip needs a video stream"
    if suffix not in VIDEO_SUFFIXES:
        return f"not a video ({suffix or 'no suffix'})"
    if not path.is_file():
        return "not a regular file"
    if not os.access(path, os.R_OK):
        return "unreadable: permission denied"
    return None


def scan_folder(folder: Path) -> tuple[list[Path], list[Ignored]]:
    """(videos, ignored) under `folder`, recursively, each sorted by path (the one folder walk).

    Hidden files and folders (temporary files of interrupted writes among them) are
    skipped, a hidden folder reported once and not entered; linked folders are
    followed, each real folder once.
    """
    videos: list[Path] = []
    ignored: list[Ignored] = []
    seen: set[str] = set()

    def unreadable(exc: OSError) -> None:
        ignored.append(Ignored(Path(exc.filename or folder), f"unreadable folder: {exc.strerror or exc}"))

    for here, dirs, files in os.walk(folder, onerror=unreadable, followlinks=True):
        seen.add(os.path.realpath(here))
        base = Path(here)
        ignored.extend(Ignored(base / d, "hidden folder") for d in dirs if d.startswith("."))
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and os.path.realpath(base / d) not in seen)
        for name in files:
            reason = _not_a_clip(base / name)
            if reason is None:
                videos.append(base / name)
            else:
                ignored.append(Ignored(base / name, reason))
    return sorted(videos), sorted(ignored, key=lambda item: str(item.source))


def list_videos(folder: Path) -> list[Path]:
    """The readable, non-hidden video files under `folder`, recursively, sorted."""
    return scan_folder(Path(folder))[0]


# ---------------------------------------------------------------- clip-id lists (--subset)

_START = re.compile(r"^(?P<ytid>.+)_(?P<start>\d+)$")


def vggsound_key(name: str) -> str:
    """Normalises `abc_000030` and `abc_30` to one key, so lists made by other tools match."""
    stem = Path(name).stem if "." in Path(name).name else name
    m = _START.match(stem)
    return f"{m['ytid']}_{int(m['start'])}" if m else stem


def read_subset(path: Path) -> set[str]:
    """A clip-id list, one per line (or CSV whose first column is the id)."""
    if not path.exists():
        from gsavl_cli.weights import SUBSET_LISTS

        raise UsageError(
            f"subset list not found: {path}", hint=f"pass a file of clip ids, or one of: {', '.join(SUBSET_LISTS)}"
        )
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read subset list {path}: {exc.strerror}") from None
    return {vggsound_key(line.split(",")[0].strip()) for line in lines if line.strip()}


def resolve_subset(value: str | Path) -> set[str]:
    """Clip ids from a file, or from a published list by name (downloaded once into the cache)."""
    from gsavl_cli.weights import SUBSET_LISTS, resolve_weights

    if str(value) in SUBSET_LISTS:
        return read_subset(resolve_weights(f"subset_{value}"))
    return read_subset(Path(value))


def filter_subset(ids: list[str], subset: str | Path | None) -> list[str]:
    """`ids` that are in the clip-id list `subset` (a file or a published list's name); all of them for None."""
    if subset is None:
        return ids
    keep = resolve_subset(subset)
    return [i for i in ids if vggsound_key(i) in keep]


# ---------------------------------------------------------------- layouts


def detect_layout(source: Path) -> str:
    """The first registered layout that recognises `source` (the official releases by their metadata files); else folder."""
    if source.is_dir():
        for dataset in list_datasets():
            if dataset.name != FALLBACK_LAYOUT and dataset.detect(source):
                return dataset.name
    return FALLBACK_LAYOUT


def discover(
    source: Path,
    layout: str = "auto",
    split: str = "all",
    *,
    annotations: Path | None = None,
    subsets: tuple[str, ...] | None = None,
    subset: str | Path | None = None,
    ignored: list[Ignored] | None = None,
) -> tuple[str, list[ClipSource]]:
    """Resolves the layout and lists the clips of the requested split.

    `subsets` are AVSBench-semantic's (default: all), `subset` a clip-id list. With
    `ignored`, the folder layout appends the files its walk did not consider.
    """
    if not source.exists():
        raise UsageError(f"no such file or folder: {source}", hint="pass a video, a folder of videos or a dataset root")
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}", hint=f"choose from {', '.join(SPLITS)}")
    if layout == "auto":
        layout = detect_layout(source)
    dataset = get_dataset(layout)
    clips = dataset.clips(
        source.resolve() if source.is_dir() else source,
        split,
        annotations=annotations,
        subsets=subsets,
        ignored=ignored,
    )
    if subset is not None:
        keep = resolve_subset(subset)
        clips = [c for c in clips if vggsound_key(c.clip_id) in keep]
    for i, clip in enumerate(clips):
        clip.order = i
    return layout, clips


def store_dataset(path: Path) -> Dataset:
    """The registered layout a store was preprocessed with (`settings["layout"]`; folder when unrecorded)."""
    from gsavl_cli.io.store import open_store

    with open_store(path) as store:
        return get_dataset(str(store.settings.get("layout", FALLBACK_LAYOUT)))


# ---------------------------------------------------------------- named datasets


def named_datasets() -> dict[str, NamedDataset]:
    """Every name `--dataset` accepts before a store is registered under it, from the registered layouts."""
    return {named.name: named for dataset in list_datasets() for named in dataset.named}


def store_name(layout: str, source: Path, subset: str | None = None) -> str:
    """The name `preprocess` registers a store under: the dataset's (or its subset's), or the folder's for plain videos."""
    for named in named_datasets().values():
        if subset is not None and named.subset == subset:
            return named.name
    return get_dataset(layout).store_name(source)


def train_preset(dataset: str) -> tuple[int, int]:
    """The localizer's (batch size, epochs) for `--dataset NAME`; the defaults for a file or another name."""
    named = named_datasets().get(dataset)
    return (named.batch_size, named.epochs) if named else (LOCALIZER_BATCH, LOCALIZER_EPOCHS)


def resolve_dataset(name_or_path: str) -> Path:
    """An HDF5 path as given, or a dataset name registered by `gsavl preprocess` (see `gsavl datasets`)."""
    from gsavl_cli.home import data_dir, named_stores

    path = Path(name_or_path)
    if path.suffix in (".h5", ".hdf5") or path.exists():
        if not path.exists():
            raise UsageError(f"no such data file: {path}", hint="make it with `gsavl preprocess SOURCE -o FILE.h5`")
        return path
    stores = named_stores()
    known_names = named_datasets()
    named = known_names.get(name_or_path)
    for name in (name_or_path, named.store if named and named.store != name_or_path else None):
        entry = stores.get(name) if name else None
        if entry is None:
            continue
        if not entry.exists:
            raise UsageError(
                f"dataset {name} names {entry.path}, which is gone",
                hint=f"run `gsavl preprocess SOURCE --name {name}` again",
            )
        return Path(entry.path)
    known = ", ".join(sorted(stores)) or "none yet"
    if named is not None:
        raise UsageError(
            f"dataset {name_or_path} has not been preprocessed (named stores: {known})",
            hint=f"run `gsavl preprocess SOURCE` on the dataset's folder (it registers the store), "
            f"or place it at {data_dir() / (name_or_path + '.h5')}; see docs/data.md",
        )
    raise UsageError(
        f"unknown dataset {name_or_path!r} (named stores: {known})",
        hint="pass an HDF5 file, a name from `gsavl datasets`, or one of: " + ", ".join(known_names),
    )
