"""Frozen trunks run once per clip during localizer training.

A frozen trunk (no gradient, eval mode) fed an input that does not change between
epochs gives the same output for a clip every epoch. `TrunkCache` keeps that output
from the clip's first visit and trains the heads on it afterwards: the loss and the
gradients are the ones the full forward gives (tests/test_train.py checks), the
trunks' forward passes are paid once instead of once per epoch. On the demo's
frozen stand-in encoders this is most of a step's time.

Used only where it is exact and fits: one process (DDP needs the wrapped forward),
the image side only without training augmentation, and only while the stored
outputs stay under `CACHE_BUDGET_BYTES`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from gsavl_cli.model.localizer import Localizer

CACHE_BUDGET_BYTES = 2 * 1024**3
_FLOAT_BYTES = 4
_AUDIO_EXAMPLES_GUESS = 10  # VGGish examples per clip for a 10 s clip (VGGSound); 1 for EZ-VSL


@dataclass
class TrunkCache:
    """Per-clip trunk outputs, keyed by the dataset index, for the sides that are cached."""

    image: bool
    audio: bool
    images: dict[int, torch.Tensor] = field(default_factory=dict)
    sounds: dict[int, torch.Tensor] = field(default_factory=dict)

    def step(
        self, model: nn.Module, batch: dict[str, torch.Tensor], device: str, autocast: torch.autocast
    ) -> tuple[torch.Tensor, int]:
        """The localizer's MIL contrastive loss on one batch, trunks from the cache where possible."""
        assert isinstance(model, Localizer)
        index = batch["index"].tolist()
        lengths = batch["lengths"].to(device, non_blocking=True)
        with autocast:
            image_trunk = self._image_trunk(model, batch, index, device)
            audio_trunk = self._audio_trunk(model, batch, index, lengths, device)
            img_maps = model.image_head(image_trunk)
            aud = model.audio.head(audio_trunk, lengths)
            loss, _ = model.loss(img_maps.float(), aud.float())
        return loss, len(index)

    def _image_trunk(
        self, model: Localizer, batch: dict[str, torch.Tensor], index: list[int], device: str
    ) -> torch.Tensor:
        if not self.image:
            return model.image_trunk(batch["images"].to(device, non_blocking=True))
        missing = [row for row, i in enumerate(index) if i not in self.images]
        if missing:
            with torch.no_grad():
                out = model.image_trunk(batch["images"][missing].to(device, non_blocking=True))
            self.images.update({index[row]: maps for row, maps in zip(missing, out)})
        return torch.stack([self.images[i] for i in index])

    def _audio_trunk(
        self, model: Localizer, batch: dict[str, torch.Tensor], index: list[int], lengths: torch.Tensor, device: str
    ) -> torch.Tensor:
        if not self.audio:
            return model.audio.trunk_features(batch["audio"].to(device, non_blocking=True), lengths)
        missing = [row for row, i in enumerate(index) if i not in self.sounds]
        if missing:
            with torch.no_grad():
                out = model.audio.trunk_features(
                    batch["audio"][missing].to(device, non_blocking=True), lengths[missing]
                )
            self.sounds.update({index[row]: feats[: int(lengths[row])] for row, feats in zip(missing, out)})
        return torch.nn.utils.rnn.pad_sequence([self.sounds[i] for i in index], batch_first=True)


def trunk_cache_for(model: Localizer, clips: int, augmented: bool, world: int) -> TrunkCache | None:
    """A cache for the frozen trunks whose outputs can be reused, or None when none can."""
    config = model.config
    if world > 1:
        return None
    cells = (config.image_size // 32 + 1) ** 2
    image_bytes = clips * model.image_proj.in_channels * cells * _FLOAT_BYTES
    audio_bytes = clips * model.audio.proj.in_features * _AUDIO_EXAMPLES_GUESS * _FLOAT_BYTES
    image = config.freeze_image and not augmented and image_bytes <= CACHE_BUDGET_BYTES
    audio = config.freeze_audio and audio_bytes + (image_bytes if image else 0) <= CACHE_BUDGET_BYTES
    return TrunkCache(image, audio) if image or audio else None
