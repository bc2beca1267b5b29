"""AVSBench-object MS3 (several sound sources): flat videos, per-split audio and masks, `ms3_meta_data.csv`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gsavl_cli.datasets.base import (
    ClipSource,
    Dataset,
    NamedDataset,
    data_root,
    read_metadata_csv,
    register_dataset,
    wanted,
)


@register_dataset
class AVSBenchMS3(Dataset):
    """Five frames per 5 s clip, a mask on each; the S4 protocol's plain bilinear resize, no augmentation."""

    name = "avsbench-ms3"
    description = "AVSBench-object MS3 (train/val/test, several sound sources)"
    test_interpolation = "bilinear"
    augment = False
    segmentation_epochs = 60  # AVSegFormer's MS3 schedule
    vggish_examples = 5
    store = "avsbench-ms3"
    named = (NamedDataset("avsbench-ms3", description, store="avsbench-ms3"),)

    def detect(self, root: Path) -> bool:
        """An MS3 root holds AVSBench's ms3_meta_data.csv."""
        return (root / "ms3_meta_data.csv").exists()

    def clips(self, source: Path, split: str = "all", **_: Any) -> list[ClipSource]:
        """The clips of `split` listed in ms3_meta_data.csv: five frames, each with a mask and a second of audio."""
        rows = read_metadata_csv(
            source / "ms3_meta_data.csv", {"name": (("name", "video_id", "vid"), 0), "split": (("split",), -1)}
        )
        data = data_root(source, "ms3_data")
        clips = []
        for row in rows:
            name, row_split = row["name"], row["split"]
            if not wanted(row_split, split):
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
                    vggish_examples=self.vggish_examples,
                )
            )
        return clips
