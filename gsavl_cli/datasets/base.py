"""One object per dataset layout on disk, and the registry that finds it by name.

A `Dataset` holds everything gsavl knows about one layout: how to recognise its root
(`detect`), how to list its clips (`clips` -> `ClipSource` records; nothing here decodes
media), and the protocol facts the commands ask it for by the store's layout name
(`store.settings["layout"]`): the test-time resize, whether training augments, SSL2AVS's
default epochs, preprocess's audio window, and the named datasets that live in its store
(docs/architecture.md, "Adding a dataset layout").
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from gsavl_cli.errors import UsageError

SPLITS = ("train", "val", "test", "all")
INTERPOLATIONS = ("bilinear", "bicubic")
LOCALIZER_BATCH = 128
"""The localizer's batch size for a dataset without its own schedule (`NamedDataset.batch_size`)."""
LOCALIZER_EPOCHS = 20
"""The localizer's epochs for a dataset without its own schedule (`NamedDataset.epochs`)."""


@dataclass
class ClipSource:
    """Where one clip's pieces are; paths are absolute."""

    clip_id: str
    video: Path | None = None
    audio: Path | None = None  # a separate audio file (wav); else the video's audio
    frame_files: list[Path] | None = None  # the dataset's own frames; else decode `video`
    frame_times: list[float] | None = None  # seconds; None = the settings' default
    mask_files: dict[int, Path] = field(default_factory=dict)  # frame index -> mask image
    boxes: list[list[float]] | None = None  # normalised x1,y1,x2,y2
    split: str | None = None
    category: str | None = None
    vggish_examples: int = 1  # pad the log-mel to at least this many examples
    order: int | None = None  # position in the dataset's own listing (its metadata CSV): the official loaders' order

    @property
    def source(self) -> Path:
        """The path that names the clip in reports: its video, else its audio, else its first frame."""
        return self.video or self.audio or (self.frame_files[0] if self.frame_files else Path("?"))


@dataclass(frozen=True)
class NamedDataset:
    """A name `--dataset NAME` accepts: the store it lives in and how the localizer trains on it.

    `store` is the named store holding its clips (a VGGSound subset shares the `vggsound`
    store); `subset` is the published clip list (`weights.SUBSET_LISTS`) that `train`
    applies by default and that `preprocess --subset` names the store after.
    """

    name: str
    description: str
    store: str
    subset: str | None = None
    batch_size: int = LOCALIZER_BATCH
    epochs: int = LOCALIZER_EPOCHS


class Dataset:
    """A dataset layout: subclass it, set the facts that differ, implement `clips` (and `detect`).

    The class attributes are the defaults of an in-the-wild folder of videos; each
    layout module overrides what its original protocol does differently.
    """

    name: str = ""
    description: str = ""
    test_interpolation: str = "bicubic"
    """The test-time resize of the dataset's protocol: "bilinear" or "bicubic"."""
    augment: bool = False
    """Whether training augments frames (EZ-VSL's resize, crop, flip) or feeds the plain test resize."""
    segmentation_epochs: int = 30
    """SSL2AVS's default epochs on this layout (AVSegFormer's schedule)."""
    vggish_examples: int = 1
    """Log-mel examples a clip's whole-clip features are padded to (`ClipSource.vggish_examples`)."""
    vggish_seconds: float | None = None
    """preprocess's default centred audio window for the log-mel features (None: the whole clip)."""
    store: str | None = None
    """The name preprocess registers the store under; None: the source folder's (or video's) own name."""
    named: tuple[NamedDataset, ...] = ()
    """The names `--dataset` accepts for this layout's stores, before any is registered."""

    def detect(self, root: Path) -> bool:
        """Whether the folder `root` is laid out like this dataset (`detect_layout` asks in order)."""
        return False

    def clips(self, source: Path, split: str = "all", **options: Any) -> list[ClipSource]:
        """The clips of `split` under `source`; options: annotations, subsets, ignored (see `discover`)."""
        raise NotImplementedError

    def store_name(self, source: Path) -> str:
        """The name `preprocess` registers a store of `source` under."""
        return self.store or (source.stem if source.is_file() else source.resolve().name)

    def test_transform(self, size: int = 224) -> Callable[..., Any]:
        """`features.test_transform` with this dataset's interpolation."""
        from gsavl_cli.data import features

        return features.test_transform(size, self.test_interpolation)

    def train_transform(self, size: int = 224) -> Callable[..., Any]:
        """EZ-VSL's augmentation when the protocol augments, else the plain test resize."""
        from gsavl_cli.data import features

        return features.train_transform(size) if self.augment else self.test_transform(size)

    def __repr__(self) -> str:
        return f"<dataset layout {self.name!r}>"


D = TypeVar("D", bound="type[Dataset] | Dataset")
_REGISTRY: dict[str, Dataset] = {}


def register_dataset(dataset: D) -> D:
    """Registers a `Dataset` subclass (as a class decorator) or instance under its `name`.

    Registration order is the order `detect_layout` asks in; the folder layout answers last.
    """
    obj = dataset() if isinstance(dataset, type) else dataset
    if not obj.name:
        raise ValueError(f"{type(obj).__name__} has no name")
    if obj.test_interpolation not in INTERPOLATIONS:
        raise ValueError(f"dataset {obj.name!r}: test_interpolation must be one of {INTERPOLATIONS}")
    previous = _REGISTRY.get(obj.name)
    if previous is not None and type(previous) is not type(obj):
        raise ValueError(f"a dataset layout named {obj.name!r} is already registered")
    _REGISTRY[obj.name] = obj
    return dataset


def unregister_dataset(name: str) -> None:
    """Removes a registered layout (tests and plugins that register one for a while)."""
    _REGISTRY.pop(name, None)


def get_dataset(name: str) -> Dataset:
    """The layout registered as `name`; one UsageError listing the registered ones otherwise."""
    if name not in _REGISTRY:
        raise UsageError(
            f"unknown dataset layout {name!r}",
            hint=f"registered layouts: {', '.join(_REGISTRY)} (a plugin's layout needs its package imported)",
        )
    return _REGISTRY[name]


def list_datasets() -> list[Dataset]:
    """The registered layouts, in registration order."""
    return list(_REGISTRY.values())


# ---------------------------------------------------------------- helpers for layout modules


def read_metadata_csv(path: Path, columns: dict[str, tuple[tuple[str, ...], int]]) -> list[dict[str, str]]:
    """Reads a metadata CSV by header names, falling back to column positions.

    `columns` maps our field name to (accepted header names, position).
    """
    if not path.exists():
        raise UsageError(f"metadata file not found: {path}", hint="SOURCE must be the dataset's root folder")
    with path.open(newline="", encoding="utf-8") as f:
        table = [row for row in csv.reader(f) if row]
    if not table:
        return []
    header = [h.strip().lower() for h in table[0]]
    by_name = {
        ours: next((header.index(n) for n in names if n in header), None) for ours, (names, _) in columns.items()
    }
    has_header = any(v is not None for v in by_name.values())
    index = {ours: (by_name[ours] if by_name[ours] is not None else pos) for ours, (_, pos) in columns.items()}
    body = table[1:] if has_header else table
    return [{ours: row[i].strip() for ours, i in index.items() if i < len(row)} for row in body]


def wanted(split: str | None, want: str) -> bool:
    """Whether a clip of `split` belongs to the requested split `want` ("all" takes every clip)."""
    return want == "all" or split == want


def data_root(source: Path, name: str) -> Path:
    """`source/name` when the release nests its data there, else `source` itself."""
    return source / name if (source / name).is_dir() else source
