"""Dataset layouts on disk -> lists of `ClipSource` records.

Each layout knows where a clip's video or frames, audio and annotations live; nothing
here decodes media. `preprocess` turns the records into the HDF5 store.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gsavl_cli.errors import UsageError

VIDEO_SUFFIXES = {".mp4", ".mkv", ".avi", ".mov", ".webm", ".flv", ".m4v", ".mpg", ".mpeg", ".wmv", ".3gp", ".ts"}
AUDIO_SUFFIXES = {".wav", ".mp3", ".m4a", ".aac", ".flac", ".ogg", ".oga", ".opus", ".wma"}
LayoutFn = Callable[..., "list[ClipSource]"]
_LAYOUTS: dict[str, LayoutFn] = {}


def register_layout(name: str) -> Callable[[LayoutFn], LayoutFn]:
    """Decorator registering `fn(source, split="all", **options) -> list[ClipSource]` as layout `name`."""

    def decorate(fn: LayoutFn) -> LayoutFn:
        if name in _LAYOUTS and _LAYOUTS[name] is not fn:
            raise ValueError(f"a layout named {name!r} is already registered")
        _LAYOUTS[name] = fn
        return fn

    return decorate


def list_layouts() -> list[str]:
    """Registered layout names (plus "auto", which detects one)."""
    return ["auto", *_LAYOUTS]


SPLITS = ("train", "val", "test", "all")
SEMANTIC_SUBSETS = ("v1s", "v1m", "v2")


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
        return self.video or self.audio or (self.frame_files[0] if self.frame_files else Path("?"))


def _rows(path: Path, columns: dict[str, tuple[tuple[str, ...], int]]) -> list[dict[str, str]]:
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


def _wanted(split: str | None, want: str) -> bool:
    return want == "all" or split == want


def _data_root(source: Path, name: str) -> Path:
    return source / name if (source / name).is_dir() else source


@register_layout("folder")
def folder_layout(
    source: Path, split: str = "all", ignored: list[Ignored] | None = None, **_: object
) -> list[ClipSource]:
    """Every video under SOURCE, recursively; the clip id is the path without suffix.

    What the walk skips (hidden, not a video, unreadable) is appended to `ignored`.
    """
    if source.is_file():
        return [ClipSource(clip_id=source.stem, video=source.resolve())]
    videos, skipped = scan_folder(source)
    if ignored is not None:
        ignored.extend(skipped)
    return [ClipSource(clip_id=str(p.relative_to(source).with_suffix("")), video=p.resolve()) for p in videos]


@register_layout("avsbench-s4")
def avsbench_s4_layout(source: Path, split: str = "all", **_: object) -> list[ClipSource]:
    """AVSBench-object S4: `s4_meta_data.csv` + `s4_data/{raw_videos,audio_wav,visual_frames,gt_masks}`."""
    rows = _rows(
        source / "s4_meta_data.csv",
        {"name": (("name", "video_id", "vid"), 0), "category": (("category", "label"), 2), "split": (("split",), 3)},
    )
    data = _data_root(source, "s4_data")
    clips = []
    for row in rows:
        name, category, row_split = row["name"], row["category"], row["split"]
        if not _wanted(row_split, split):
            continue
        frames_dir = data / "visual_frames" / row_split / category / name
        masks_dir = data / "gt_masks" / row_split / category / name
        n_masks = 1 if row_split == "train" else 5
        clips.append(
            ClipSource(
                clip_id=name,
                video=data / "raw_videos" / row_split / category / f"{name}.mp4",
                audio=data / "audio_wav" / row_split / category / f"{name}.wav",
                frame_files=[frames_dir / f"{name}_{i}.png" for i in range(1, 6)],
                frame_times=[float(i) for i in range(5)],
                mask_files={i: masks_dir / f"{name}_{i + 1}.png" for i in range(n_masks)},
                split=row_split,
                category=category,
                vggish_examples=5,
            )
        )
    return clips


@register_layout("avsbench-ms3")
def avsbench_ms3_layout(source: Path, split: str = "all", **_: object) -> list[ClipSource]:
    """AVSBench-object MS3: flat videos, per-split audio and masks, `ms3_meta_data.csv`."""
    rows = _rows(source / "ms3_meta_data.csv", {"name": (("name", "video_id", "vid"), 0), "split": (("split",), -1)})
    data = _data_root(source, "ms3_data")
    clips = []
    for row in rows:
        name, row_split = row["name"], row["split"]
        if not _wanted(row_split, split):
            continue
        clips.append(
            ClipSource(
                clip_id=name,
                video=data / "raw_videos" / f"{name}.mp4",
                audio=data / "audio_wav" / row_split / f"{name}.wav",
                frame_files=[data / "visual_frames" / name / f"{name}.mp4_{i}.png" for i in range(1, 6)],
                frame_times=[float(i) for i in range(5)],
                mask_files={i: data / "gt_masks" / row_split / name / f"{name}_{i + 1}.png" for i in range(5)},
                split=row_split,
                vggish_examples=5,
            )
        )
    return clips


@register_layout("avsbench-semantic")
def avsbench_semantic_layout(
    source: Path, split: str = "all", subsets: tuple[str, ...] = SEMANTIC_SUBSETS, **_: object
) -> list[ClipSource]:
    """AVSBench-semantic: `metadata.csv` and `{subset}/{uid}/{frames,labels_rgb,audio.wav}`."""
    unknown = set(subsets) - set(SEMANTIC_SUBSETS)
    if unknown:
        raise UsageError(
            f"unknown AVSBench-semantic subset(s): {', '.join(sorted(unknown))}",
            hint=f"choose from {', '.join(SEMANTIC_SUBSETS)}",
        )
    rows = _rows(
        source / "metadata.csv",
        {"uid": (("uid",), 1), "split": (("split",), 5), "label": (("label",), 6), "a_obj": (("a_obj",), 4)},
    )
    clips = []
    for row in rows:
        if row.get("label") not in subsets or not _wanted(row.get("split"), split):
            continue
        clip_dir = source / row["label"] / row["uid"]
        frames = sorted((clip_dir / "frames").glob("*.jpg"), key=lambda p: int(p.stem) if p.stem.isdigit() else 0)
        masks = {int(p.stem): p for p in (clip_dir / "labels_rgb").glob("*.png") if p.stem.isdigit()}
        clips.append(
            ClipSource(
                clip_id=f"{row['label']}/{row['uid']}",
                audio=clip_dir / "audio.wav",
                frame_files=frames,
                frame_times=[float(i) for i in range(len(frames))],
                mask_files=masks,
                split=row.get("split"),
                category=row.get("a_obj") or None,
                vggish_examples=len(frames) or 1,
            )
        )
    return clips


_START = re.compile(r"^(?P<ytid>.+)_(?P<start>\d+)$")


def vggsound_key(name: str) -> str:
    """Normalises `abc_000030` and `abc_30` to one key, so lists made by other tools match."""
    stem = Path(name).stem if "." in Path(name).name else name
    m = _START.match(stem)
    return f"{m['ytid']}_{int(m['start'])}" if m else stem


def read_vggss_annotations(path: Path) -> dict[str, dict]:
    """`vggss.json`: [{file, class, bbox: [[x1,y1,x2,y2], ...] normalised}] -> by clip key."""
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"cannot read annotations {path}: {exc}", hint="pass the VGG-SS `vggss.json` file") from None
    out = {}
    for entry in entries:
        boxes = np.clip(np.asarray(entry.get("bbox", []), dtype=np.float64).reshape(-1, 4), 0.0, 1.0)
        out[vggsound_key(entry["file"])] = {"class": entry.get("class"), "boxes": boxes.tolist()}
    return out


@register_layout("vggsound")
def vggsound_layout(source: Path, split: str = "all", annotations: Path | None = None, **_: object) -> list[ClipSource]:
    """VGGSound clips (`{id}.mp4`, or `frames/{id}.jpg` + `audio/{id}.wav`) + optional `vggss.json`.

    Annotated clips are the VGG-SS test split; the others are training clips.
    """
    annotated = read_vggss_annotations(annotations) if annotations else {}
    found: dict[str, ClipSource] = {}
    for frame in sorted((source / "frames").glob("*.jpg")) if (source / "frames").is_dir() else []:
        audio = source / "audio" / f"{frame.stem}.wav"
        if audio.exists():
            found[vggsound_key(frame.stem)] = ClipSource(
                clip_id=frame.stem, audio=audio.resolve(), frame_files=[frame.resolve()], frame_times=[0.0]
            )
    for video in sorted(p for p in source.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES):
        found.setdefault(vggsound_key(video.stem), ClipSource(clip_id=video.stem, video=video.resolve()))
    clips = []
    for key, clip in found.items():
        note = annotated.get(key)
        clip.split = "test" if note else "train"
        if note:
            clip.boxes, clip.category = note["boxes"], note["class"]
        clip.vggish_examples = 3
        if _wanted(clip.split, split):
            clips.append(clip)
    return clips


def detect_layout(source: Path) -> str:
    """Recognises the official releases by their metadata files; anything else is a folder."""
    if (source / "s4_meta_data.csv").exists():
        return "avsbench-s4"
    if (source / "ms3_meta_data.csv").exists():
        return "avsbench-ms3"
    if (source / "metadata.csv").exists() and any((source / s).is_dir() for s in SEMANTIC_SUBSETS):
        return "avsbench-semantic"
    if (source / "vggss.json").exists() or ((source / "frames").is_dir() and (source / "audio").is_dir()):
        return "vggsound"
    if _vggsound_names(source):
        return "vggsound"
    return "folder"


_VGGSOUND_CLIP = re.compile(r"^[A-Za-z0-9_-]{11}_\d{6}$")


def _vggsound_names(source: Path) -> bool:
    """A flat folder whose videos are all named as VGGSound releases them: `{youtube id}_{start:06d}`."""
    videos = [p for p in source.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith(".")]
    return bool(videos) and all(_VGGSOUND_CLIP.match(p.stem) for p in videos)


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
    if subset is None:
        return ids
    keep = resolve_subset(subset)
    return [i for i in ids if vggsound_key(i) in keep]


def discover(
    source: Path,
    layout: str = "auto",
    split: str = "all",
    *,
    annotations: Path | None = None,
    subsets: tuple[str, ...] = SEMANTIC_SUBSETS,
    subset: str | Path | None = None,
    ignored: list[Ignored] | None = None,
) -> tuple[str, list[ClipSource]]:
    """Resolves the layout and lists the clips of the requested split.

    With `ignored`, the folder layout appends the files its walk did not consider.
    """
    if not source.exists():
        raise UsageError(f"no such file or folder: {source}", hint="pass a video, a folder of videos or a dataset root")
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}", hint=f"choose from {', '.join(SPLITS)}")
    if layout == "auto":
        layout = detect_layout(source) if source.is_dir() else "folder"
    if layout not in _LAYOUTS:
        raise UsageError(f"unknown layout {layout!r}", hint=f"choose from {', '.join(list_layouts())}")
    if annotations is None and (source / "vggss.json").exists():
        annotations = source / "vggss.json"
    clips = _LAYOUTS[layout](
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


NAMED_DATASETS = {
    "vggsound10k": "VGGSound-10K training clips (EZ-VSL's vggss_10k list)",
    "vggsound144k": "VGGSound-144K training clips",
    "vggss": "VGG-Sound Source test clips with boxes",
    "avsbench-s4": "AVSBench-object S4 (train/val/test)",
    "avsbench-ms3": "AVSBench-object MS3 (train/val/test, several sound sources)",
    "avsbench-semantic": "AVSBench-semantic (v1s, v1m, v2)",
}
STORE_OF = {"vggsound10k": "vggsound", "vggsound144k": "vggsound", "vggss": "vggsound"}
"""Named datasets that are subsets of one preprocessed store (train applies the subset list)."""
LAYOUT_NAMES = {
    "vggsound": "vggsound",
    "avsbench-s4": "avsbench-s4",
    "avsbench-ms3": "avsbench-ms3",
    "avsbench-semantic": "avsbench-semantic",
}
SUBSET_NAMES = {"vggss_10k": "vggsound10k", "vggss_144k": "vggsound144k"}


def store_name(layout: str, source: Path, subset: str | None = None) -> str:
    """The name `preprocess` registers a store under: the dataset's, or the folder's for plain videos."""
    if subset in SUBSET_NAMES:
        return SUBSET_NAMES[subset]
    return LAYOUT_NAMES.get(layout) or (source.stem if source.is_file() else source.resolve().name)


def resolve_dataset(name_or_path: str) -> Path:
    """An HDF5 path as given, or a dataset name registered by `gsavl preprocess` (see `gsavl datasets`)."""
    from gsavl_cli.home import data_dir, named_stores

    path = Path(name_or_path)
    if path.suffix in (".h5", ".hdf5") or path.exists():
        if not path.exists():
            raise UsageError(f"no such data file: {path}", hint="make it with `gsavl preprocess SOURCE -o FILE.h5`")
        return path
    stores = named_stores()
    for name in (name_or_path, STORE_OF.get(name_or_path)):
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
    if name_or_path in NAMED_DATASETS:
        raise UsageError(
            f"dataset {name_or_path} has not been preprocessed (named stores: {known})",
            hint=f"run `gsavl preprocess SOURCE` on the dataset's folder (it registers the store), "
            f"or place it at {data_dir() / (name_or_path + '.h5')}; see docs/data.md",
        )
    raise UsageError(
        f"unknown dataset {name_or_path!r} (named stores: {known})",
        hint="pass an HDF5 file, a name from `gsavl datasets`, or one of: " + ", ".join(NAMED_DATASETS),
    )


@dataclass(frozen=True)
class Ignored:
    """A file or folder that the folder walk did not consider, and why (preprocess reports them)."""

    source: Path
    reason: str

    def to_json(self) -> dict[str, str]:
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
