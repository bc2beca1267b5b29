"""Plain videos: a single file, or every video under a folder (the one folder walk)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gsavl_cli.datasets.base import ClipSource, Dataset, register_dataset
from gsavl_cli.datasets.discovery import Ignored, scan_folder


@register_dataset
class Folder(Dataset):
    """Every video under SOURCE, recursively; the clip id is the path without suffix.

    In-the-wild videos are treated like VGGSound: bicubic test resize and EZ-VSL's
    training augmentation (gsavl's choice, not the original's; docs/results.md, "Conventions").
    The store is named after the folder (or the video).
    """

    name = "folder"
    description = "a video, or every video under a folder"
    test_interpolation = "bicubic"
    augment = True

    def detect(self, root: Path) -> bool:
        """Any folder is a folder of videos: the fallback layout."""
        return True  # the fallback: `detect_layout` answers folder when nothing else matches

    def clips(
        self, source: Path, split: str = "all", ignored: list[Ignored] | None = None, **_: Any
    ) -> list[ClipSource]:
        """What the walk skips (hidden, not a video, unreadable) is appended to `ignored`."""
        if source.is_file():
            return [ClipSource(clip_id=source.stem, video=source.resolve())]
        videos, skipped = scan_folder(source)
        if ignored is not None:
            ignored.extend(skipped)
        return [ClipSource(clip_id=str(p.relative_to(source).with_suffix("")), video=p.resolve()) for p in videos]
