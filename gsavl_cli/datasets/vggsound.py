"""VGGSound clips (`{id}.mp4`, or `frames/{id}.jpg` + `audio/{id}.wav`) with VGG-SS's optional `vggss.json` boxes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from gsavl_cli.datasets.base import ClipSource, Dataset, NamedDataset, register_dataset, wanted
from gsavl_cli.datasets.discovery import VIDEO_SUFFIXES, vggsound_key
from gsavl_cli.errors import UsageError

ANNOTATIONS_FILE = "vggss.json"
_VGGSOUND_CLIP = re.compile(r"^[A-Za-z0-9_-]{11}_\d{6}$")


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


def _vggsound_names(source: Path) -> bool:
    """A flat folder whose videos are all named as VGGSound releases them: `{youtube id}_{start:06d}`."""
    videos = [p for p in source.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith(".")]
    return bool(videos) and all(_VGGSOUND_CLIP.match(p.stem) for p in videos)


@register_dataset
class VGGSound(Dataset):
    """Annotated clips are the VGG-SS test split; the others are training clips.

    EZ-VSL's (and the original's) protocol: training augments (bicubic short-side resize
    to 1.1x, random crop, flip), the VGG-SS test resizes with `Resize((224, 224), BICUBIC)`,
    and the model hears the middle 3 s of each clip.
    """

    name = "vggsound"
    description = "VGGSound clips, VGG-SS boxes when vggss.json is given"
    test_interpolation = "bicubic"
    augment = True
    vggish_seconds = 3.0  # the VGGSound protocol's "middle 3 s"
    vggish_examples = 3
    store = "vggsound"
    named = (
        NamedDataset(
            "vggsound10k", "VGGSound-10K training clips (EZ-VSL's vggss_10k list)", "vggsound", subset="vggss_10k"
        ),
        NamedDataset("vggsound144k", "VGGSound-144K training clips", "vggsound", subset="vggss_144k"),
        NamedDataset("vggss", "VGG-Sound Source test clips with boxes", "vggsound"),
    )

    def detect(self, root: Path) -> bool:
        """A VGGSound root holds vggss.json, frames/ and audio/ folders, or videos named as VGGSound releases them."""
        return (
            (root / ANNOTATIONS_FILE).exists()
            or ((root / "frames").is_dir() and (root / "audio").is_dir())
            or _vggsound_names(root)
        )

    def clips(self, source: Path, split: str = "all", annotations: Path | None = None, **_: Any) -> list[ClipSource]:
        """The boxes come from `annotations`, else from SOURCE/vggss.json when there is one."""
        if annotations is None and (source / ANNOTATIONS_FILE).exists():
            annotations = source / ANNOTATIONS_FILE
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
            clip.vggish_examples = self.vggish_examples
            if wanted(clip.split, split):
                clips.append(clip)
        return clips
