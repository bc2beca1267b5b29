"""frame + audio -> heatmaps -> prompts -> mask: the one path `localize` and `eval` share.

`eval` calls the same functions with batches; `localize` with a batch of one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gsavl_cli.data import features
from gsavl_cli.errors import UsageError
from gsavl_cli.model import ModelConfig, Localizer, ObjectPrior, build_object_prior, heatmaps, load_checkpoint

MAPS = ("av", "obj", "avobj")


@dataclass
class Models:
    localizer: Localizer
    config: ModelConfig
    prior: ObjectPrior | None
    device: str


def parse_maps(text: str) -> tuple[str, ...]:
    maps = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in maps if m not in MAPS]
    if unknown or not maps:
        raise UsageError(f"unknown map(s): {', '.join(unknown) or text!r}", hint=f"choose from {', '.join(MAPS)}")
    return maps


def load_models(
    checkpoint: Path,
    device: str,
    maps: tuple[str, ...],
    *,
    pretrained_prior: bool = True,
    prior_checkpoint: Path | None = None,
) -> Models:
    """The trained localizer, and the frozen object prior only when a map needs it."""
    loaded = load_checkpoint(checkpoint, map_location="cpu")
    localizer = loaded.localizer.to(device).eval()
    prior = None
    if any(m in ("obj", "avobj") for m in maps):
        prior = build_object_prior(pretrained=pretrained_prior, checkpoint=prior_checkpoint).to(device).eval()
    return Models(localizer, loaded.config, prior, device)


def audio_features(waveform: np.ndarray, config: ModelConfig, sample_rate: int = features.SAMPLE_RATE) -> torch.Tensor:
    """The model's audio input for one in-memory waveform (what `preprocess` would store)."""
    if config.audio_encoder == "vggish":
        return features.vggish_examples(waveform, sample_rate)
    return features.ezvsl_spectrogram(waveform, sample_rate)


EZVSL_SECONDS = 3.0


def window_around(waveform: np.ndarray, time: float, seconds: float, sample_rate: int = features.SAMPLE_RATE) -> np.ndarray:
    """`seconds` of audio centred on `time`, shifted to stay inside the clip (tiled if shorter)."""
    length = int(round(seconds * sample_rate))
    if len(waveform) <= length:
        return features.centre_window(waveform, sample_rate, seconds)
    start = int(round(time * sample_rate)) - length // 2
    start = min(max(start, 0), len(waveform) - length)
    return waveform[start : start + length]


def audio_at(waveform: np.ndarray, time: float | None, config: ModelConfig) -> torch.Tensor:
    """The audio input for a frame at `time`: EZ-VSL's 3 s around it, or the clip's log-mel.

    `time=None` is the protocol's clip-level audio (VGGish: the whole clip; EZ-VSL: the
    centred 3 s).
    """
    if config.audio_encoder == "vggish":
        return audio_features(waveform, config)
    if time is None:
        return audio_features(features.centre_window(waveform, features.SAMPLE_RATE, EZVSL_SECONDS), config)
    return audio_features(window_around(waveform, time, EZVSL_SECONDS), config)


def batch_heatmaps(
    models: Models,
    frames: list[np.ndarray],
    audio: list[torch.Tensor],
    maps: tuple[str, ...],
    *,
    alpha: float = 0.4,
    sizes: list[tuple[int, int]] | None = None,
) -> dict[str, list[torch.Tensor]]:
    """Heatmaps for a batch of frames with their audio, each at its frame's size (or `sizes`)."""
    transform = features.test_transform(models.config.image_size)
    images = torch.stack([transform(f) for f in frames]).to(models.device)
    lengths = torch.tensor([a.shape[0] for a in audio], dtype=torch.long, device=models.device)
    if audio[0].dim() == 3:
        padded = torch.nn.utils.rnn.pad_sequence(list(audio), batch_first=True)
    else:
        padded = torch.stack(list(audio))
    sizes = sizes or [(f.shape[0], f.shape[1]) for f in frames]
    return heatmaps(models.localizer, models.prior, images, padded.to(models.device), lengths, sizes, alpha=alpha, maps=maps)


SEGMENTERS = ("sam", "threshold")


def make_segmenter(kind: str, device: str, *, sam_model: str = "vit_h", sam_checkpoint: Path | None = None):
    """SAM (weights through the resolver) or the labelled no-SAM threshold baseline."""
    from gsavl_cli.segment import SamSegmenter, ThresholdSegmenter, load_sam

    if kind == "threshold":
        return ThresholdSegmenter(device=device)
    if kind != "sam":
        raise UsageError(f"unknown segmenter {kind!r}", hint=f"choose from {', '.join(SEGMENTERS)}")
    return SamSegmenter(load_sam(sam_model, sam_checkpoint, device=device), device=device)
