"""What the model hears for a frame: its audio window of the clip's waveform, and the features of it.

One rule for every command (docs/api.md, "The rules it enforces"): the window the
checkpoint was trained with (`audio_window` of any family's configuration), centred on
the frame's time and shifted to stay inside the clip; the front end its configuration
names (`audio_encoder`: VGGish log-mel examples or the EZ-VSL spectrogram).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from gsavl_cli.data import features


def window_around(
    waveform: np.ndarray, time: float, seconds: float, sample_rate: int = features.SAMPLE_RATE
) -> np.ndarray:
    """`seconds` of audio centred on `time`, shifted to stay inside the clip (tiled if shorter)."""
    length = int(round(seconds * sample_rate))
    if len(waveform) <= length:
        return features.centre_window(waveform, sample_rate, seconds)
    start = int(round(time * sample_rate)) - length // 2
    start = min(max(start, 0), len(waveform) - length)
    return waveform[start : start + length]


def audio_window(waveform: np.ndarray, time: float | None, seconds: float | None) -> np.ndarray:
    """The samples the model hears for a frame at `time` (None: the clip-level audio).

    With no recorded window (VGGish trained on whole clips) the whole clip; at `time=None`
    the window in the middle of the clip, as `preprocess` stores it.
    """
    if seconds is None:
        return waveform
    if time is None:
        return features.centre_window(waveform, features.SAMPLE_RATE, seconds)
    return window_around(waveform, time, seconds)


def audio_input(waveform: np.ndarray, time: float | None, config: Any) -> torch.Tensor:
    """The model's audio features for a mono 16 kHz waveform: VGGish examples or the EZ-VSL spectrogram.

    Every family's configuration names its front end (`audio_encoder`) and window (`audio_window`).
    """
    samples = audio_window(np.asarray(waveform, dtype=np.float32), time, config.audio_window)
    if config.audio_encoder == "vggish":
        return features.vggish_examples(samples, features.SAMPLE_RATE)
    return features.ezvsl_spectrogram(samples, features.SAMPLE_RATE, float(config.audio_window))


def silent_like(waveform: np.ndarray) -> np.ndarray:
    """The `--audio silent` control: digital silence of the same length."""
    return np.zeros_like(np.asarray(waveform, dtype=np.float32))
