"""Audio front ends and image transforms, in torch so that they batch on any device.

Two audio front ends (the GSAVL paper):

- the VGGish log-mel examples, with parity to `torchvggish.vggish_input`: 400-sample
  frames without centring, zero-padded to 512 for the FFT, and mel filters whose
  triangles are built in the mel domain (not in Hz as `torchaudio` builds them);
- the EZ-VSL log spectrogram, with parity to
  `scipy.signal.spectrogram(x, fs, nperseg=512, noverlap=274)`: per-segment mean
  removal, periodic Tukey(0.25) window, one-sided PSD density scaling.

Image transforms follow the original per dataset (docs/results.md, "Conventions"): VGGSound trains with
EZ-VSL's augmentation (bicubic short-side resize to 1.1x, random crop, flip) and tests
with a bicubic square resize; AVSBench trains and tests on a plain bilinear square
resize; ImageNet normalisation throughout. Which one a store gets is its dataset layout's
choice (`gsavl_cli.datasets`: `Dataset.test_transform` / `train_transform`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch
import torchaudio.functional as AF
from torchvision.transforms import v2

from gsavl_cli.errors import UsageError

SAMPLE_RATE = 16000

# VGGish (AudioSet) front-end settings at 16 kHz.
VGGISH_WINDOW = 400
VGGISH_HOP = 160
VGGISH_FFT = 512
VGGISH_MEL_BANDS = 64
VGGISH_FMIN = 125.0
VGGISH_FMAX = 7500.0
VGGISH_LOG_OFFSET = 0.01
VGGISH_EXAMPLE_FRAMES = 96

# EZ-VSL spectrogram settings (scipy.signal.spectrogram defaults otherwise).
EZVSL_NPERSEG = 512
EZVSL_NOVERLAP = 274
EZVSL_TUKEY_ALPHA = 0.25
EZVSL_LOG_EPS = 1e-7
EZVSL_STD = 12.0

# resampy's `kaiser_best` filter, the one torchvggish's reference uses: 50 zero crossings
# of the output-rate sinc, which torchaudio counts in rolloff-scaled units.
_KAISER_BEST_ROLLOFF = 0.9173473712608761
_RESAMPLE_KAISER_BEST = dict(
    lowpass_filter_width=50 * _KAISER_BEST_ROLLOFF,
    rolloff=_KAISER_BEST_ROLLOFF,
    resampling_method="sinc_interp_kaiser",
    beta=12.9846,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    """HTK mel scale, as in torchvggish's `mel_features.hertz_to_mel`."""
    return 1127.0 * torch.log1p(hz / 700.0)


@lru_cache(maxsize=8)
def _cached_mel_matrix(device: torch.device | None, dtype: torch.dtype) -> torch.Tensor:
    bins = VGGISH_FFT // 2 + 1
    bins_mel = _hz_to_mel(torch.linspace(0.0, SAMPLE_RATE / 2, bins, dtype=torch.float64))
    edges = torch.tensor([VGGISH_FMIN, VGGISH_FMAX], dtype=torch.float64)
    edges_mel = torch.linspace(*_hz_to_mel(edges).tolist(), VGGISH_MEL_BANDS + 2, dtype=torch.float64)
    lower, centre, upper = edges_mel[:-2], edges_mel[1:-1], edges_mel[2:]
    rising = (bins_mel[:, None] - lower) / (centre - lower)
    falling = (upper - bins_mel[:, None]) / (upper - centre)
    matrix = torch.minimum(rising, falling).clamp_min(0.0)
    matrix[0] = 0.0  # HTK excludes the DC bin
    return matrix.to(device=device, dtype=dtype)


def vggish_mel_matrix(device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[257, 64] mel filter matrix, triangles linear in mel as the VGGish reference builds them."""
    return _cached_mel_matrix(torch.device(device) if device is not None else None, dtype)


def _as_float_tensor(waveform: np.ndarray | torch.Tensor) -> torch.Tensor:
    """A float tensor view of the audio; float64 stays float64 (exact parity), the rest is float32."""
    tensor = torch.as_tensor(waveform)
    if tensor.dtype != torch.float64:
        tensor = tensor.to(torch.float32)
    return tensor


def _resample_to_16k(waveforms: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Resample along the last axis with resampy's `kaiser_best` filter (the reference's)."""
    if sample_rate == SAMPLE_RATE:
        return waveforms
    if sample_rate <= 0:
        raise UsageError(f"invalid sample rate {sample_rate}", hint="pass the audio's sample rate in Hz")
    return AF.resample(waveforms, sample_rate, SAMPLE_RATE, **_RESAMPLE_KAISER_BEST)


def _tile_to_length(waveforms: torch.Tensor, length: int) -> torch.Tensor:
    """Repeat the audio along the last axis until it has at least `length` samples, then cut."""
    n = waveforms.shape[-1]
    if n == 0:
        raise UsageError("the audio is empty", hint="check that the clip has an audio track")
    if n >= length:
        return waveforms
    return waveforms.repeat(*([1] * (waveforms.dim() - 1)), math.ceil(length / n))[..., :length]


def log_mel(waveforms: torch.Tensor, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """VGGish log-mel spectrogram: [..., N] audio -> [..., frames, 64].

    frames = 1 + (N - 400) // 160 (no centring, no padding, like the reference).
    """
    x = _resample_to_16k(_as_float_tensor(waveforms), sample_rate)
    if x.shape[-1] < VGGISH_WINDOW:
        raise UsageError(
            f"audio too short for one log-mel frame: {x.shape[-1]} samples at 16 kHz (need {VGGISH_WINDOW})",
            hint="use vggish_examples, which tiles short audio",
        )
    window = torch.hann_window(VGGISH_WINDOW, periodic=True, dtype=x.dtype, device=x.device)
    frames = x.unfold(-1, VGGISH_WINDOW, VGGISH_HOP) * window
    magnitude = torch.fft.rfft(frames, n=VGGISH_FFT).abs()
    mel = magnitude @ vggish_mel_matrix(x.device, x.dtype)
    return torch.log(mel + VGGISH_LOG_OFFSET)


def _samples_for_examples(count: int) -> int:
    """Fewest 16 kHz samples that give `count` whole 96-frame examples."""
    return VGGISH_WINDOW + VGGISH_HOP * (VGGISH_EXAMPLE_FRAMES * count - 1)


def vggish_examples_batch(
    waveforms: np.ndarray | torch.Tensor, sample_rate: int = SAMPLE_RATE, min_examples: int = 1
) -> torch.Tensor:
    """[B, N] equal-length audio -> [B, T, 96, 64] float32 VGGish examples.

    Whole non-overlapping 0.96 s examples; the remainder is dropped as in the reference.
    Audio too short for `min_examples` examples is tiled (repeated) first.
    """
    x = _resample_to_16k(_as_float_tensor(waveforms), sample_rate)
    if x.dim() != 2:
        raise UsageError(f"expected audio of shape [B, N], got {tuple(x.shape)}")
    x = _tile_to_length(x, _samples_for_examples(max(min_examples, 1)))
    mel = log_mel(x)
    count = mel.shape[1] // VGGISH_EXAMPLE_FRAMES
    examples = mel[:, : count * VGGISH_EXAMPLE_FRAMES]
    return examples.reshape(x.shape[0], count, VGGISH_EXAMPLE_FRAMES, VGGISH_MEL_BANDS).float()


def vggish_examples(
    waveform: np.ndarray | torch.Tensor, sample_rate: int = SAMPLE_RATE, min_examples: int = 1
) -> torch.Tensor:
    """Mono [N] audio -> [T, 96, 64] float32 VGGish examples (see `vggish_examples_batch`)."""
    x = _as_float_tensor(waveform)
    if x.dim() != 1:
        raise UsageError(f"expected mono audio of shape [N], got {tuple(x.shape)}")
    return vggish_examples_batch(x[None], sample_rate, min_examples)[0]


def centre_window(waveform: np.ndarray | torch.Tensor, sample_rate: int, seconds: float) -> np.ndarray | torch.Tensor:
    """Exactly round(seconds * sample_rate) samples from the middle of the clip.

    A shorter clip is tiled from its start and cut to length (the EZ-VSL protocol).
    Returns the same array type as given.
    """
    length = round(seconds * sample_rate)
    n = waveform.shape[-1]
    if n == 0:
        raise UsageError("the audio is empty", hint="check that the clip has an audio track")
    if length <= 0:
        raise UsageError(f"window of {seconds} s at {sample_rate} Hz has no samples")
    start = max((n - length) // 2, 0)
    index = (start + np.arange(length)) % n
    if isinstance(waveform, torch.Tensor):
        return waveform[..., torch.from_numpy(index).to(waveform.device)]
    return np.asarray(waveform)[..., index]


def _periodic_tukey(length: int, alpha: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """scipy's `get_window(('tukey', alpha), length)`: the symmetric window of length+1, last sample dropped."""
    x = torch.arange(length, dtype=torch.float64) / length
    window = torch.ones(length, dtype=torch.float64)
    rising = x < alpha / 2
    falling = x > 1 - alpha / 2
    window[rising] = 0.5 * (1 + torch.cos(torch.pi * (2 * x[rising] / alpha - 1)))
    window[falling] = 0.5 * (1 + torch.cos(torch.pi * (2 * x[falling] / alpha - 2 / alpha + 1)))
    return window.to(device=device, dtype=dtype)


def ezvsl_spectrogram_batch(waveforms: np.ndarray | torch.Tensor, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """[B, N] already-windowed audio -> [B, 257, F] float32 normalised EZ-VSL log spectrogram.

    Equals log(scipy.signal.spectrogram(x, sample_rate, nperseg=512, noverlap=274)[2] + 1e-7) / 12;
    F = 1 + (N - 512) // 238 (200 for 3 s at 16 kHz).
    """
    x = _as_float_tensor(waveforms)
    if x.dim() != 2 or x.shape[-1] < EZVSL_NPERSEG:
        raise UsageError(f"expected audio of shape [B, N>={EZVSL_NPERSEG}], got {tuple(x.shape)}")
    segments = x.unfold(-1, EZVSL_NPERSEG, EZVSL_NPERSEG - EZVSL_NOVERLAP)
    segments = segments - segments.mean(-1, keepdim=True)
    window = _periodic_tukey(EZVSL_NPERSEG, EZVSL_TUKEY_ALPHA, x.dtype, x.device)
    power = torch.fft.rfft(segments * window).abs().square() / (sample_rate * window.square().sum())
    power[..., 1:-1] *= 2  # one-sided: fold the negative frequencies (not DC, not Nyquist)
    return (torch.log(power.transpose(-1, -2) + EZVSL_LOG_EPS) / EZVSL_STD).float()


def ezvsl_spectrogram(
    waveform: np.ndarray | torch.Tensor, sample_rate: int = SAMPLE_RATE, seconds: float = 3.0
) -> torch.Tensor:
    """Mono [N] audio -> [257, F] EZ-VSL log spectrogram of its centre `seconds` ([257, 200] for 3 s at 16 kHz)."""
    window = _as_float_tensor(centre_window(waveform, sample_rate, seconds))
    if window.dim() != 1:
        raise UsageError(f"expected mono audio of shape [N], got {tuple(window.shape)}")
    return ezvsl_spectrogram_batch(window[None], sample_rate)[0]


# ---------------------------------------------------------------- image transforms
#
# The original resized PIL images; torchvision's antialiased resize of uint8 tensors
# gives the same pixels within 1 grey level for bilinear and 2 for bicubic (measured on
# noise images against Pillow 13; tests/test_features.py checks it), so frames stay
# tensors here and batch on any device.

_MODES = {"bilinear": v2.InterpolationMode.BILINEAR, "bicubic": v2.InterpolationMode.BICUBIC}


def _mode(interpolation: str | v2.InterpolationMode) -> v2.InterpolationMode:
    if isinstance(interpolation, v2.InterpolationMode):
        return interpolation
    if interpolation not in _MODES:
        raise UsageError(f"unknown interpolation {interpolation!r}", hint=f"choose from {', '.join(_MODES)}")
    return _MODES[interpolation]


def _normalise() -> list[v2.Transform]:
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD), v2.ToPureTensor()]


def test_transform(
    size: int = 224, interpolation: str | v2.InterpolationMode = "bicubic"
) -> Callable[[np.ndarray | torch.Tensor], torch.Tensor]:
    """Evaluation transform: antialiased resize to size x size, ImageNet normalisation.

    HWC uint8 array or CHW uint8 tensor -> CHW float32. `interpolation` "bicubic" is
    the VGG-SS protocol, "bilinear" AVSBench's (a dataset layout's `test_interpolation`).
    """
    return v2.Compose(
        [v2.ToImage(), v2.Resize((size, size), interpolation=_mode(interpolation), antialias=True), *_normalise()]
    )


def train_transform(size: int = 224) -> Callable[[np.ndarray | torch.Tensor], torch.Tensor]:
    """EZ-VSL's (and the original's VGGSound) augmentation, then ImageNet normalisation.

    Bicubic antialiased resize of the SHORT side to int(1.1 * size) keeping the aspect
    ratio (300x500 -> 246x410 for size 224), random size x size crop, random horizontal
    flip. HWC uint8 array or CHW uint8 tensor -> CHW float32; draws use torch's global RNG.
    """
    return v2.Compose(
        [
            v2.ToImage(),
            v2.Resize(int(size * 1.1), interpolation=v2.InterpolationMode.BICUBIC, antialias=True),
            v2.RandomCrop(size),
            v2.RandomHorizontalFlip(),
            *_normalise(),
        ]
    )


test_transform.__test__ = False  # not a pytest test, despite the name
