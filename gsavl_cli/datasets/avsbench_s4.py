"""AVSBench-object S4 (single sound source): `s4_meta_data.csv` + `s4_data/{raw_videos,audio_wav,visual_frames,gt_masks}`."""

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
class AVSBenchS4(Dataset):
    """Five frames per 5 s clip; a mask on the first frame of training clips, on all five otherwise.

    The original's AVS loader tests and trains on `transforms.Resize((224, 224))`, PIL's
    bilinear default, without augmentation (docs/results.md, "Conventions").
    """

    name = "avsbench-s4"
    description = "AVSBench-object S4 (train/val/test)"
    test_interpolation = "bilinear"
    augment = False
    segmentation_epochs = 30  # AVSegFormer's S4 schedule
    vggish_examples = 5  # one log-mel example per second of the 5 s clip
    store = "avsbench-s4"
    named = (NamedDataset("avsbench-s4", description, store="avsbench-s4", batch_size=32, epochs=10),)

    def detect(self, root: Path) -> bool:
        """An S4 root holds AVSBench's s4_meta_data.csv."""
        return (root / "s4_meta_data.csv").exists()

    def clips(self, source: Path, split: str = "all", **_: Any) -> list[ClipSource]:
        """The clips of `split` listed in s4_meta_data.csv: five frames, masks on the first (train) or all five."""
        rows = read_metadata_csv(
            source / "s4_meta_data.csv",
            {
                "name": (("name", "video_id", "vid"), 0),
                "category": (("category", "label"), 2),
                "split": (("split",), 3),
            },
        )
        data = data_root(source, "s4_data")
        clips = []
        for row in rows:
            name, category, row_split = row["name"], row["category"], row["split"]
            if not wanted(row_split, split):
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
                    vggish_examples=self.vggish_examples,
                )
            )
        return clips
