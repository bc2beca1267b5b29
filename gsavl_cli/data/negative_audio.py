"""Negative audio: sounds that nothing in the frame makes (AVSBench-Robust's test conditions).

Li et al., "Do Audio-Visual Segmentation Models Truly Segment Sounding Objects?" (arXiv
2502.00358) test a model with silence, white noise and the audio of a video of another
category. The waveforms here replace a clip's own 16 kHz waveform; the model's features
are then computed from them by gsavl's own audio front end, exactly as for real audio
(AVSBench-Robust computed a librosa log-mel of its generated files instead). Every draw is
seeded per clip, so a clip hears the same noise and the same partner whatever else is
evaluated with it, on one process or many.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping

import numpy as np

from gsavl_cli.errors import UsageError

FULL_SCALE_NOISE_DBFS = 20 * math.log10(1 / math.sqrt(3))
"""The RMS level (dB re 1.0) of white noise uniform over the full scale [-1, 1]: about -4.77 dBFS."""

DEFAULT_NOISE_DBFS = -4.77
"""`--noise-dbfs`'s default: full-scale uniform noise, what AVSBench-Robust's generator amounts to (it draws
uniform samples in [-1, 1]; its files, float64 bytes read as 16-bit samples, are random full-scale noise)."""


def clip_rng(seed: int, clip_id: str, purpose: str) -> np.random.Generator:
    """A generator that depends only on (seed, clip id, purpose): the same clip always gets the same draw."""
    digest = hashlib.sha256(f"{seed}/{purpose}/{clip_id}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def white_noise_like(waveform: np.ndarray, dbfs: float, seed: int, clip_id: str) -> np.ndarray:
    """`--audio noise`: white noise as long as `waveform`, uniform, at an RMS of `dbfs` dB re full scale (1.0).

    Uniform samples in [-a, a] have an RMS of a / sqrt(3), so a = sqrt(3) * 10^(dbfs / 20), capped at the full scale
    (a = 1 at about -4.77 dBFS, the loudest uniform noise that does not clip).
    """
    amplitude = min(1.0, math.sqrt(3) * 10 ** (dbfs / 20))
    noise = clip_rng(seed, clip_id, "noise").uniform(-amplitude, amplitude, len(np.asarray(waveform)))
    return noise.astype(np.float32)


def offscreen_partners(categories: Mapping[str, str | None], seed: int) -> dict[str, str]:
    """`--audio offscreen`: for each clip, a clip of another category (uniformly drawn, seeded per clip).

    `categories` maps each evaluated clip to its category (the store's metadata). A store without categories,
    or with a single one, cannot say which sound is off-screen: a UsageError.
    """
    missing = sorted(i for i, c in categories.items() if not c)
    hint = (
        "offscreen audio needs clips of two or more categories: preprocess a layout that records them "
        "(avsbench-s4, avsbench-semantic, vggsound), or use --audio silent, noise or shuffled"
    )
    if missing:
        raise UsageError(
            f"--audio offscreen needs each clip's category; {len(missing)} of {len(categories)} clips have none "
            f"(e.g. {missing[0]})",
            hint=hint,
        )
    kinds = sorted({str(c) for c in categories.values()})
    if len(kinds) < 2:
        raise UsageError(
            f"--audio offscreen needs clips of at least 2 categories; all {len(categories)} are {kinds[0]!r}"
            if kinds
            else "--audio offscreen needs at least 2 clips",
            hint=hint,
        )
    ids = sorted(categories)
    others = {kind: [i for i in ids if categories[i] != kind] for kind in kinds}
    out = {}
    for clip_id in ids:
        pool = others[str(categories[clip_id])]
        out[clip_id] = pool[int(clip_rng(seed, clip_id, "offscreen").integers(len(pool)))]
    return out
