"""The closed choices of the CLI and the settings dataclasses, as enums (light to import).

The library validates the same names (e.g. `model.MAP_NAMES`, `segment.SEGMENTERS`); a test
keeps the two in step.
"""

from __future__ import annotations

from enum import Enum


class MapName(str, Enum):
    """The heatmap that prompts the segmenter: av (audio-visual), obj (the training-free object prior), avobj (their
    mix, weighted by --alpha), text (zero-shot: CLIPSeg on the label CLAP hears) or textobj (text mixed with obj)."""

    av = "av"
    obj = "obj"
    avobj = "avobj"
    text = "text"  # no training: the optional extra gsavl[zeroshot]
    textobj = "textobj"


class ClapModel(str, Enum):
    """The zero-shot audio tagger of the text maps (`model.zeroshot.AUDIO_TAGGERS` holds the same names)."""

    clap_htsat_unfused = "clap-htsat-unfused"  # laion/clap-htsat-unfused
    larger_clap_general = "larger_clap_general"  # laion/larger_clap_general


class SegmenterName(str, Enum):
    """What turns the prompts into a mask: SAM, SAM 2, the heatmap region around them (no weights), or the model's own
    head."""

    sam = "sam"
    sam2 = "sam2"  # Segment Anything 2.1 (the optional extra gsavl[sam2])
    region = "region"
    model = "model"  # a segmentation model's own mask head (SSL2AVS)


class SamModel(str, Enum):
    """Which SAM to load: vit_h (the paper's), vit_l, vit_b, or tiny (a test model, only from --sam-checkpoint) for
    `--segmenter sam`; a SAM 2.1 Hiera (t, s, b+, l) for `--segmenter sam2`.

    One enum for both generations, so `--sam-model` stays one option; the values name the family
    (`vit_*` SAM, `sam2.1_*` SAM 2), and each segmenter refuses the other's (`segment.SAM_ARCHS`,
    `segment.SAM2_MODELS` hold the same names).
    """

    vit_h = "vit_h"
    vit_l = "vit_l"
    vit_b = "vit_b"
    tiny = "tiny"
    sam2_1_hiera_t = "sam2.1_hiera_t"
    sam2_1_hiera_s = "sam2.1_hiera_s"
    sam2_1_hiera_b_plus = "sam2.1_hiera_b+"
    sam2_1_hiera_l = "sam2.1_hiera_l"


class MaskChoice(str, Enum):
    """Which SAM mask to keep: its single-mask output (paper), the best predicted IoU, or the best heatmap agreement."""

    single = "single"
    score = "score"
    heatmap = "heatmap"


class FrameMode(str, Enum):
    """Which frames of a clip are evaluated, and with which audio."""

    first = "first"  # each clip's first frame with the clip-level audio (GSAVL protocol)
    all = "all"  # every annotated frame with its own audio window (AVS benchmark)


class AudioMode(str, Enum):
    """What the model hears at evaluation: the clip's own audio, a control that tests whether it listens, or all of them.

    silent, noise and offscreen are the negative conditions of AVSBench-Robust (Li et al., arXiv 2502.00358):
    nothing in the frame makes the sound, so every foreground pixel is a false positive. shuffled is a control,
    not a negative: the other clip may be of the same category, so its sound may well be in the frame.
    """

    normal = "normal"
    silent = "silent"  # digital silence: what the model finds without sound
    shuffled = "shuffled"  # each clip hears another clip's audio (seeded): does the model listen?
    noise = "noise"  # white noise at --noise-dbfs, seeded per clip
    offscreen = "offscreen"  # the audio of a clip of another category (seeded): a sound nothing in the frame makes
    all = "all"  # every condition above over the same frames: the robustness table

    @property
    def negative(self) -> bool:
        """Whether nothing in the frame makes the sound (silent, noise, offscreen): FPR and abstention are scored."""
        return self in (AudioMode.silent, AudioMode.noise, AudioMode.offscreen)

    def conditions(self) -> tuple[AudioMode, ...]:
        """The conditions this choice evaluates: itself, or for `all` each one in the robustness table's order."""
        if self is AudioMode.all:
            return (AudioMode.normal, AudioMode.shuffled, AudioMode.silent, AudioMode.noise, AudioMode.offscreen)
        return (self,)
