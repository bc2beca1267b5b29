"""AVSBench-semantic: `metadata.csv` and `{subset}/{uid}/{frames,labels_rgb,audio.wav}` for subsets v1s, v1m, v2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gsavl_cli.datasets.base import ClipSource, Dataset, NamedDataset, read_metadata_csv, register_dataset, wanted
from gsavl_cli.errors import UsageError

SUBSETS = ("v1s", "v1m", "v2")
"""The release's subsets (its `label` column and top-level folders); `--semantic-subsets` picks among them."""


@register_dataset
class AVSBenchSemantic(Dataset):
    """One frame per second (5 in v1, 10 in v2) and a label image per annotated frame; AVSBench's bilinear resize."""

    name = "avsbench-semantic"
    description = "AVSBench-semantic (v1s, v1m, v2)"
    test_interpolation = "bilinear"
    augment = False
    store = "avsbench-semantic"
    subsets = SUBSETS
    named = (NamedDataset("avsbench-semantic", description, store="avsbench-semantic"),)

    def detect(self, root: Path) -> bool:
        """A semantic root holds metadata.csv and at least one subset folder (v1s, v1m, v2)."""
        return (root / "metadata.csv").exists() and any((root / s).is_dir() for s in self.subsets)

    def clips(
        self, source: Path, split: str = "all", subsets: tuple[str, ...] | None = None, **_: Any
    ) -> list[ClipSource]:
        """The clips of `subsets` (default: all of them); a log-mel example per frame."""
        subsets = self.subsets if subsets is None else subsets
        unknown = set(subsets) - set(self.subsets)
        if unknown:
            raise UsageError(
                f"unknown AVSBench-semantic subset(s): {', '.join(sorted(unknown))}",
                hint=f"choose from {', '.join(self.subsets)}",
            )
        rows = read_metadata_csv(
            source / "metadata.csv",
            {"uid": (("uid",), 1), "split": (("split",), 5), "label": (("label",), 6), "a_obj": (("a_obj",), 4)},
        )
        clips = []
        for row in rows:
            if row.get("label") not in subsets or not wanted(row.get("split"), split):
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
