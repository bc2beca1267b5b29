"""The audio-visual localizer (the GSAVL paper) and its multiple-instance contrastive loss.

An ImageNet ResNet-18 trunk (7x7x512 for 224x224) and a 1x1 conv give visual maps
f_v [B,dim,h,w]; the audio encoder gives f_a [B,dim]: ``vggish`` (GSAVL: VGGish per
0.96 s example -> Linear 128->dim, averaged) or ``resnet18`` (EZ-VSL: a 1-channel
ResNet-18 on the log spectrogram, global max pool -> Linear 512->dim). Features are
L2-normalised unless `normalize_features=False` (the original's "dot" ablation).

Unlike the original implementation, the pretrained VGGish weights are kept (no
re-initialisation pass over them) and can be frozen with ``freeze_audio``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gsavl_cli.errors import UsageError
from gsavl_cli.model.config import ModelConfig
from gsavl_cli.model.encoders import (
    RESNET_CHANNELS,
    ResNetTrunk,
    SpectrogramResNetAudio,
    VGGishAudio,
    identity_init,
    init_fresh,
    load_pretrained,
)


def symmetric_cross_entropy(logits: torch.Tensor) -> torch.Tensor:
    """CE over rows + CE over columns, the matching pairs on the diagonal."""
    labels = torch.arange(logits.shape[0], device=logits.device)
    return F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)


def mil_contrastive_loss(similarity: torch.Tensor, tau: float) -> torch.Tensor:
    """Multiple-instance contrastive loss: S [B_a,B_v,h,w] max-pooled over locations / tau.

    Shared by every model that aligns audio with image locations (the localizer,
    SSL2AVS's localization module).
    """
    return symmetric_cross_entropy(similarity.flatten(2).amax(dim=2) / tau)


class Localizer(nn.Module):
    """Audio-visual localizer: visual maps, audio vectors, their similarity and the loss."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        normalize = config.normalize_features
        self.image_trunk = ResNetTrunk()
        self.image_proj = nn.Conv2d(RESNET_CHANNELS, config.dim, kernel_size=1)
        if config.audio_encoder == "vggish":
            self.audio: VGGishAudio | SpectrogramResNetAudio = VGGishAudio(
                config.dim, normalize, config.standardize_audio
            )
            init_fresh(self.image_proj, self.audio.proj)
        else:
            self.audio = SpectrogramResNetAudio(config.dim, normalize, config.standardize_audio)
            init_fresh(self.image_proj, self.audio)
        for trunk in self._frozen_trunks():
            trunk.requires_grad_(False)
            trunk.eval()

    def _frozen_trunks(self) -> list[nn.Module]:
        return [
            trunk
            for trunk, frozen in (
                (self.audio.trunk, self.config.freeze_audio),
                (self.image_trunk, self.config.freeze_image),
            )
            if frozen
        ]

    def train(self, mode: bool = True) -> Localizer:
        """Like nn.Module.train, but frozen trunks stay in eval mode (BatchNorm statistics fixed)."""
        super().train(mode)
        for trunk in self._frozen_trunks():
            trunk.eval()
        return self

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """images [B,3,H,W] (ImageNet-normalised) -> feature maps [B,dim,H/32,W/32]."""
        return self.image_head(self.image_trunk(images))

    def image_head(self, trunk_maps: torch.Tensor) -> torch.Tensor:
        """The image trunk's maps [B,512,h,w] -> feature maps [B,dim,h,w] (1x1 projection, normalised)."""
        maps = self.image_proj(trunk_maps)
        return F.normalize(maps, dim=1) if self.config.normalize_features else maps

    def encode_audio(self, audio: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """audio features (see the encoders) -> [B,dim]."""
        return self.audio(audio, lengths)

    def forward(
        self, images: torch.Tensor, audio: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Image feature maps [B,dim,h,w] and audio embeddings [B,dim]: what the loss and the heatmaps compare."""
        return self.encode_image(images), self.encode_audio(audio, lengths)

    def _for_similarity(self, img: torch.Tensor, aud: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.config.similarity == "cosine":
            return F.normalize(img, dim=1), F.normalize(aud, dim=1)
        return img, aud

    def similarity(self, img_maps: torch.Tensor, aud: torch.Tensor) -> torch.Tensor:
        """S [B_a,B_v,h,w]: every audio against every image, at every location."""
        img, aud = self._for_similarity(img_maps, aud)
        return torch.einsum("vchw,ac->avhw", img, aud)

    def ssl_map(self, img_maps: torch.Tensor, aud: torch.Tensor) -> torch.Tensor:
        """S_ii [B,h,w]: each image against its own audio."""
        img, aud = self._for_similarity(img_maps, aud)
        return torch.einsum("bchw,bc->bhw", img, aud)

    def loss(self, img_maps: torch.Tensor, aud: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Multiple-instance contrastive loss (+ beta x global-alignment InfoNCE)."""
        tau = self.config.tau
        local = mil_contrastive_loss(self.similarity(img_maps, aud), tau)
        stats = {"loss_loc": local.item()}
        total = local
        if self.config.beta > 0:
            img, aud_g = self._for_similarity(img_maps.amax(dim=(2, 3)), aud)
            global_loss = symmetric_cross_entropy(aud_g @ img.T / tau)
            total = local + self.config.beta * global_loss
            stats["loss_global"] = global_loss.item()
        stats["loss"] = total.item()
        return total, stats


def build_localizer(
    config: ModelConfig,
    *,
    pretrained: bool = True,
    vggish_checkpoint: Path | None = None,
    resnet_checkpoint: Path | None = None,
    identity_image_init: bool = False,
) -> Localizer:
    """A new localizer; with `pretrained`, ImageNet ResNet-18 and (for vggish) VGGish weights.

    `pretrained=False` gives random weights everywhere (the image trunk identity-initialised
    with `identity_image_init`): only when the caller asks for it.
    """
    if identity_image_init and pretrained:
        raise UsageError(
            "identity initialisation replaces pretrained weights", hint="use it together with --no-pretrained"
        )
    if not pretrained and (vggish_checkpoint or resnet_checkpoint):
        raise UsageError(
            "pretrained weight files were given but pretrained weights are switched off",
            hint="drop the checkpoint paths or turn pretrained weights on",
        )
    localizer = Localizer(config)
    if identity_image_init:
        identity_init(localizer.image_trunk)
    if pretrained:
        load_pretrained(localizer.image_trunk, "resnet18_imagenet", resnet_checkpoint)
        if config.audio_encoder == "vggish":
            load_pretrained(localizer.audio.trunk, "vggish", vggish_checkpoint)
    return localizer
