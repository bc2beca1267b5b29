"""Image backbones: four feature levels (shallow detail -> deep semantics) for the head.

- `resnet50`: torchvision's ResNet-50 (layer1..layer4, 256/512/1024/2048 channels, strides
  4/8/16/32); `remove_maxpool` drops the stem max-pool (the paper's "+": strides 2/4/8/16).
- `pvt_v2_b5`: timm's PVT-v2-b5 (64/128/320/512 channels, strides 4/8/16/32).
- `tiny`: a small conv net with the same four-level interface, for tests and CPU runs.

Pretrained ImageNet weights come only through the resolver (`gsavl_cli.weights`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models.resnet import Bottleneck, ResNet

from gsavl_cli import weights
from gsavl_cli.errors import WeightsError
from gsavl_cli.model.encoders import load_pretrained
from gsavl_cli.model.loading import load_exact


class ResNet50Levels(ResNet):
    """torchvision's ResNet-50 without avgpool/fc, keeping its parameter names (the ImageNet file loads as is)."""

    channels = (256, 512, 1024, 2048)
    weights_name = "resnet50_imagenet"

    def __init__(self, remove_maxpool: bool = False) -> None:
        super().__init__(Bottleneck, [3, 4, 6, 3])
        del self.avgpool, self.fc
        if remove_maxpool:
            self.maxpool = nn.Identity()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """images [N,3,H,W] -> the four levels, layer1..layer4's outputs (shallow to deep)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c1 = self.layer1(x)
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        return [c1, c2, c3, self.layer4(c3)]

    def load_imagenet(self, explicit: Path | None) -> None:
        """ImageNet weights (through the resolver, or the `explicit` file) into the network, every key matched."""
        load_pretrained(self, self.weights_name, explicit)


class PVTv2B5Levels(nn.Module):
    """timm's PVT-v2-b5 (drop path 0.1 as in AVSegFormer), its four stage outputs."""

    channels = (64, 128, 320, 512)
    weights_name = "pvt_v2_b5_imagenet"

    def __init__(self) -> None:
        super().__init__()
        from timm.models.pvt_v2 import pvt_v2_b5

        self.net = pvt_v2_b5(pretrained=False, num_classes=0, drop_path_rate=0.1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """images [N,3,H,W] -> the four stage outputs (shallow to deep)."""
        return self.net.forward_intermediates(x, intermediates_only=True)

    def load_imagenet(self, explicit: Path | None) -> None:
        """The original PVT release (what AVSegFormer loads), renamed to timm's keys, classifier dropped."""
        from timm.models.pvt_v2 import checkpoint_filter_fn

        path = weights.resolve_weights(self.weights_name, explicit)
        state = checkpoint_filter_fn(weights.load_state_dict(path), self.net)
        state = {k: v for k, v in state.items() if not k.startswith("head.")}
        spec = weights.WEIGHTS[self.weights_name]
        load_exact(
            self.net,
            state,
            source=path,
            what=f"{spec.description} network",
            error=WeightsError,
            hint=f"pass the {spec.description} weights file ({spec.filename})",
        )


def _conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.GroupNorm(min(8, cout), cout), nn.ReLU(inplace=True)
    )


class TinyLevels(nn.Module):
    """Four stages of two 3x3 convs (first one strided); strides 4/8/16/32 (2/4/8/16 without the stem stride)."""

    channels = (16, 32, 64, 128)

    def __init__(self, remove_maxpool: bool = False) -> None:
        super().__init__()
        c = self.channels
        self.stem = _conv(3, c[0], 1 if remove_maxpool else 2)
        self.stages = nn.ModuleList(
            nn.Sequential(_conv(cin, cout, 2), _conv(cout, cout, 1)) for cin, cout in zip((c[0], *c[:-1]), c)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """images [N,3,H,W] -> the four stage outputs (shallow to deep)."""
        x = self.stem(x)
        levels = []
        for stage in self.stages:
            x = stage(x)
            levels.append(x)
        return levels


def build_backbone(name: str, remove_maxpool: bool = False) -> nn.Module:
    """The four-level image backbone `name` (resnet50, pvt_v2_b5, else tiny), without pretrained weights."""
    if name == "resnet50":
        return ResNet50Levels(remove_maxpool)
    if name == "pvt_v2_b5":
        return PVTv2B5Levels()
    return TinyLevels(remove_maxpool)
