"""The closed choices of the CLI and the settings dataclasses, as enums (light to import).

The library validates the same names (e.g. `model.MAP_NAMES`, `segment.SEGMENTERS`); a test
keeps the two in step.
"""

from __future__ import annotations

from enum import Enum


class MapName(str, Enum):
    av = "av"
    obj = "obj"
    avobj = "avobj"


class SegmenterName(str, Enum):
    sam = "sam"
    region = "region"
    model = "model"  # a segmentation model's own mask head (SSL2AVS)


class SamModel(str, Enum):
    vit_h = "vit_h"
    vit_l = "vit_l"
    vit_b = "vit_b"
    tiny = "tiny"


class MaskChoice(str, Enum):
    single = "single"
    score = "score"
    heatmap = "heatmap"


class FrameMode(str, Enum):
    first = "first"  # each clip's first frame with the clip-level audio (GSAVL protocol)
    all = "all"  # every annotated frame with its own audio window (AVS benchmark)


class AudioMode(str, Enum):
    normal = "normal"
    silent = "silent"  # digital silence: what the model finds without sound
    shuffled = "shuffled"  # each clip hears another clip's audio (seeded): does the model listen?
