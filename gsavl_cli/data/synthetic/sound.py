"""The sounds of the synthetic classes, and mono WAV files of them."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import soundfile

from gsavl_cli.data.synthetic.classes import class_spec

SAMPLE_RATE = 16000


def _pulses(t: np.ndarray, rate: float) -> np.ndarray:
    return (np.mod(t * rate, 1.0) < 0.5).astype(np.float32)


# Each sound maps times t (s), the class frequency f and a generator to a waveform in [-1,1].
_SOUNDS: dict[str, Callable[[np.ndarray, float, np.random.Generator], np.ndarray]] = {
    "tone": lambda t, f, rng: np.sin(2 * np.pi * f * t),
    "chirp": lambda t, f, rng: np.sin(2 * np.pi * (f * np.mod(t, 1.0) + 1050.0 * np.mod(t, 1.0) ** 2)),
    "pulsed_noise": lambda t, f, rng: rng.uniform(-1, 1, t.shape) * _pulses(t, 4.0),
    "am_tone": lambda t, f, rng: np.sin(2 * np.pi * f * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 6.0 * t)),
    "square_wave": lambda t, f, rng: 0.6 * np.sign(np.sin(2 * np.pi * f * t)),
    "pulsed_tone": lambda t, f, rng: np.sin(2 * np.pi * f * t) * _pulses(t, 2.0),
    "fm_tone": lambda t, f, rng: np.sin(2 * np.pi * f * t + 40.0 * np.sin(2 * np.pi * 5.0 * t)),
    "chord": lambda t, f, rng: 0.5 * (np.sin(2 * np.pi * f * t) + np.sin(2 * np.pi * 1.5 * f * t)),
}


def class_sound(category: str, seconds: float, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The sound of a class: its signal with a random level and pitch jitter, plus a little noise."""
    spec = class_spec(category)
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    frequency = spec.frequency * rng.uniform(0.99, 1.01)
    signal = _SOUNDS[spec.sound](t + rng.uniform(0, 1), frequency, rng)
    noisy = rng.uniform(0.4, 0.7) * signal + rng.normal(0, 0.01, t.shape)
    return np.clip(noisy, -1, 1).astype(np.float32)


def wav_bytes(waveform: np.ndarray, sample_rate: int) -> bytes:
    """A mono PCM16 WAV file in memory.

    The samples are quantised here (x 32767, rounded) rather than by libsndfile, so the
    world's files do not depend on its float-to-integer conversion.
    """
    pcm = (np.clip(waveform, -1, 1) * 32767).round().astype("<i2")
    buffer = io.BytesIO()
    soundfile.write(buffer, pcm, sample_rate, subtype="PCM_16", format="WAV")
    return buffer.getvalue()
