"""The object prior: a second, frozen ImageNet ResNet-18 that marks salient objects (the GSAVL paper)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from gsavl_cli.errors import UsageError
from gsavl_cli.model.encoders import ResNetTrunk, load_pretrained


class ObjectPrior(nn.Module):
    """Mean |activation| of layer4 (L1 norm over channels); never trained on audio."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = ResNetTrunk()
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> ObjectPrior:
        """Always stays in eval mode: the prior is never trained."""
        return super().train(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [B,3,H,W] -> [B,H/32,W/32]."""
        return self.trunk(images).abs().mean(dim=1)


def build_object_prior(*, pretrained: bool = True, checkpoint: Path | None = None) -> ObjectPrior:
    """The frozen ImageNet ResNet-18 object prior (random only when `pretrained=False`)."""
    if not pretrained and checkpoint:
        raise UsageError(
            "a ResNet-18 weights file was given but pretrained weights are switched off",
            hint="drop the checkpoint path or turn pretrained weights on",
        )
    prior = ObjectPrior()
    if pretrained:
        load_pretrained(prior.trunk, "resnet18_imagenet", checkpoint)
    return prior
