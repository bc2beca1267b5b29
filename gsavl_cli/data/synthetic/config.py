"""What a synthetic world holds (`WorldConfig`) and the checks that keep it renderable."""

from __future__ import annotations

from dataclasses import dataclass

from gsavl_cli.data.synthetic.classes import CLASSES
from gsavl_cli.data.synthetic.scene import BACKGROUNDS
from gsavl_cli.errors import UsageError

KEYFRAMES = 5  # AVSBench S4: one frame per second of a 5 s clip
SPLITS = ("train", "val", "test")


@dataclass
class WorldConfig:
    """Size and content of a synthetic world.

    `object_scale` is the range of object radii as a fraction of the frame's shorter
    side (AVSBench's sounding objects cover about 20-40 % of the frame: 0.3-0.4 gives
    that); `objects` the inclusive range of objects per clip, the sounding one
    included (1 means no silent distractor).
    """

    n_train: int = 24
    n_val: int = 0
    n_test: int = 8
    n_classes: int = 4
    width: int = 160
    height: int = 120
    seconds: float = 5.0
    fps: int = 8
    seed: int = 0
    object_scale: tuple[float, float] = (0.13, 0.2)
    objects: tuple[int, int] = (2, 3)
    background: str = "texture"


def check_size(width: int, height: int, fps: int) -> None:
    """Frames the encoder takes (even sides, 4:2:0) and the scene needs (16 px or more), at 1+ fps."""
    if width < 16 or height < 16 or width % 2 or height % 2:
        raise UsageError(f"frame size {width}x{height} is not usable", hint="use even sizes of at least 16 pixels")
    if fps < 1:
        raise UsageError(f"fps must be at least 1, got {fps}")


def check_config(config: WorldConfig) -> list[str]:
    """The classes in use; rejects configurations the S4 layout cannot hold."""
    check_size(config.width, config.height, config.fps)
    if not 2 <= config.n_classes <= len(CLASSES):
        raise UsageError(f"n_classes must be between 2 and {len(CLASSES)}, got {config.n_classes}")
    if config.seconds < KEYFRAMES:
        raise UsageError(f"clips must last at least {KEYFRAMES} s for the S4 layout, got {config.seconds:g}")
    if min(config.n_train, config.n_val, config.n_test) < 0:
        raise UsageError("clip counts must not be negative")
    low, high = config.object_scale
    if not 0.02 <= low <= high <= 0.5:
        raise UsageError(f"object_scale must satisfy 0.02 <= low <= high <= 0.5, got {config.object_scale}")
    if not 1 <= config.objects[0] <= config.objects[1]:
        raise UsageError(f"objects per clip must be a range of at least 1, got {config.objects}")
    if config.background not in BACKGROUNDS:
        raise UsageError(f"unknown background {config.background!r}", hint=f"choose from {', '.join(BACKGROUNDS)}")
    return CLASSES[: config.n_classes]
