"""SSL2AVS: localize, then segment (seed 004, on AVSegFormer).

backbone levels ──► target localization (contrastive, with the audio) ──► heatmap
      │                                                                     │
      └──────────► feature enhancement (pyramid weighted by the heatmap) ◄──┘
                              │
                              ▼
               AVSegFormer head (deformable encoder, bidirectional fusion,
               audio + learnable queries, decoder) ──► mask logits

Frames are independent: a clip of T frames is T items of the batch, each with its own
second of audio (one VGGish example).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from gsavl_cli.errors import UsageError
from gsavl_cli.model.encoders import load_pretrained
from gsavl_cli.model.ssl2avs.audio import build_audio
from gsavl_cli.model.ssl2avs.backbones import build_backbone
from gsavl_cli.model.ssl2avs.config import SSL2AVSConfig
from gsavl_cli.model.ssl2avs.enhancement import FeatureEnhancement
from gsavl_cli.model.ssl2avs.head import MaskHead
from gsavl_cli.model.ssl2avs.localization import TargetLocalization
from gsavl_cli.model.ssl2avs.losses import contrastive_loss, dice_loss, localization_loss

Output = dict[str, Any]


class SSL2AVS(nn.Module):
    """SSL2AVS: localize the sound with the audio, weight the image features by the heatmap, segment."""

    def __init__(self, config: SSL2AVSConfig) -> None:
        super().__init__()
        self.config = config
        # not named `backbone`: checkpoint loading strips that prefix (original GSAVL files)
        self.image_encoder = build_backbone(config.backbone, config.remove_maxpool)
        channels = tuple(self.image_encoder.channels)
        self.audio = build_audio(config.audio_net, config.embed_dim)
        self.localization = TargetLocalization(
            channels[-1], config.embed_dim, config.embed_dim, config.activation, config.tau
        )
        self.enhancement = FeatureEnhancement(channels) if config.feature_enhancement else None
        self.head = MaskHead(config, channels)
        if config.freeze_audio:
            self.audio.trunk.requires_grad_(False)
            self.audio.trunk.eval()

    def train(self, mode: bool = True) -> SSL2AVS:
        """Like nn.Module.train, but a frozen audio trunk stays in eval mode."""
        super().train(mode)
        if self.config.freeze_audio:
            self.audio.trunk.eval()
        return self

    def forward(self, images: torch.Tensor, audio: torch.Tensor, lengths: torch.Tensor | None = None) -> Output:
        """images [N,3,H,W] (ImageNet-normalised); audio [N,96,64] or [N,T,96,64] log-mel examples
        (embeddings averaged over the T valid ones).

        Returns mask_logits [N,1,H,W], intermediate (list of [N,1,H,W]) and localization
        (visual, audio, similarity, logits, heatmap; see `TargetLocalization`).
        """
        if audio.dim() == 3:
            audio = audio[:, None]
        if audio.shape[0] != images.shape[0]:
            raise UsageError(f"{images.shape[0]} frames but audio for {audio.shape[0]}")
        sound = self.audio(audio, lengths)
        feats = self.image_encoder(images)
        localization = self.localization(feats[-1], sound)
        if self.enhancement is not None:
            feats = self.enhancement(feats, localization["heatmap"])
        logits, intermediate = self.head(feats, sound, tuple(images.shape[-2:]))
        return {"mask_logits": logits, "intermediate": intermediate, "localization": localization}

    @torch.no_grad()
    def predict(
        self, images: torch.Tensor, audio: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Inference: mask_logits [B,H,W] at the input's size (sigmoid > 0.5 is the mask) and the
        sound-source heatmap [B,h',w'] in [0,1] on the deepest level's grid."""
        was_training = self.training
        self.eval()
        try:
            out = self(images, audio, lengths)
        finally:
            self.train(was_training)
        return {"mask_logits": out["mask_logits"][:, 0], "heatmap": out["localization"]["heatmap"]}

    def training_loss(
        self, output: Output, masks: torch.Tensor, labelled: torch.Tensor, heard: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """masks [B,F,H,W] at the input's size, labelled [B,F] (which frames have a mask), heard [B]
        (False: the clip heard negative audio, its masks are empty); the forward ran on the B*F
        frames in that order. See `losses` for the terms.

        Negative-audio clips count in the mask terms (their target is the empty mask) but not in
        the localization and contrastive terms: their sound belongs to nothing in the frame, and
        ACT's heatmap (standardised per frame) cannot say "nowhere" anyway."""
        cfg = self.config
        batch, slots = labelled.shape
        heard = torch.ones(batch, dtype=torch.bool, device=labelled.device) if heard is None else heard.bool()
        chosen = labelled.flatten()
        own = (labelled & heard[:, None]).flatten()[chosen]  # of the chosen frames, those with their own audio
        target = masks.flatten(0, 1)[chosen]
        final = dice_loss(output["mask_logits"][chosen], target)
        stats = {"loss_mask": final.detach()}
        total = final
        if cfg.lambda_intermediate > 0:
            intermediate = torch.stack([dice_loss(m[chosen], target) for m in output["intermediate"]]).sum()
            total = total + cfg.lambda_intermediate * intermediate
            stats["loss_intermediate"] = intermediate.detach()
        loc = output["localization"]
        if cfg.lambda_localization > 0 and bool(own.any()):
            aux = localization_loss(loc["logits"][chosen][own], target[own])
            total = total + cfg.lambda_localization * aux
            stats["loss_localization"] = aux.detach()
        if cfg.lambda_contrastive > 0 and int(heard.sum()) > 1:
            visual = loc["visual"].unflatten(0, (batch, slots))[heard]
            sound = loc["audio"].unflatten(0, (batch, slots))[heard]
            cts = contrastive_loss(visual, sound, cfg.tau)
            total = total + cfg.lambda_contrastive * cts
            stats["loss_contrastive"] = cts.detach()
        stats["loss"] = total.detach()
        return total, stats


def build_ssl2avs(
    config: SSL2AVSConfig,
    *,
    pretrained: bool = True,
    vggish_checkpoint: Path | None = None,
    backbone_checkpoint: Path | None = None,
) -> SSL2AVS:
    """A new model; with `pretrained`, ImageNet backbone weights and (for vggish) AudioSet VGGish weights.

    The tiny networks have no pretrained weights; `pretrained=False` gives random weights everywhere.
    """
    if not pretrained and (vggish_checkpoint or backbone_checkpoint):
        raise UsageError(
            "pretrained weight files were given but pretrained weights are switched off",
            hint="drop the checkpoint paths or turn pretrained weights on",
        )
    model = SSL2AVS(config)
    if pretrained:
        if config.backbone != "tiny":
            model.image_encoder.load_imagenet(backbone_checkpoint)
        if config.audio_net == "vggish":
            load_pretrained(model.audio.trunk, "vggish", vggish_checkpoint)
    return model
