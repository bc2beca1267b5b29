"""Encoders: the ResNet-18 trunk (image, object prior, EZ-VSL audio) and VGGish audio."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvggish.torchvggish import VGG, make_layers
from torchvision.models.resnet import BasicBlock, ResNet

from gsavl_cli import weights
from gsavl_cli.errors import UsageError, WeightsError
from gsavl_cli.model.loading import load_exact

VGGISH_EXAMPLE_SHAPE = (96, 64)
VGGISH_EMBEDDING = 128
RESNET_CHANNELS = 512


def _maybe_normalize(x: torch.Tensor, normalize: bool) -> torch.Tensor:
    return F.normalize(x, dim=1) if normalize else x


class ResNetTrunk(ResNet):
    """torchvision's ResNet-18 up to layer4 (no avgpool/fc), with its parameter names.

    Keeping torchvision's names lets the ImageNet state dict load as it is (minus fc).
    """

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__(BasicBlock, [2, 2, 2, 2])
        del self.avgpool, self.fc
        if in_channels != 3:
            self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """images [B,C,H,W] -> layer4 maps [B,512,H/32,W/32]."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def standardizer(channels: int, enabled: bool) -> nn.Module:
    """BatchNorm1d over an audio trunk's embedding (`standardize_audio`), else a no-op.

    A randomly initialised VGGish maps every sound to nearly the same direction (mean
    cosine 0.997 between classes on the synthetic world); removing the shared mean and
    scale per channel restores the class structure (0.72 within, -0.06 between classes).
    nn.Identity adds no state-dict keys, so checkpoints without it load as before.
    """
    return nn.BatchNorm1d(channels) if enabled else nn.Identity()


class VGGishAudio(nn.Module):
    """GSAVL audio: VGGish per example -> (standardise) -> Linear -> (L2-normalise) -> mean over valid examples."""

    def __init__(self, dim: int, normalize: bool = True, standardize: bool = False) -> None:
        super().__init__()
        self.trunk = VGG(make_layers(), False)  # built here; weights come from the resolver
        self.standardize = standardizer(VGGISH_EMBEDDING, standardize)
        self.proj = nn.Linear(VGGISH_EMBEDDING, dim)
        self.normalize = normalize

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """audio [B,T,96,64] log-mel examples; lengths [B] valid examples (padding ignored)."""
        return self.head(self.trunk_features(audio, lengths), lengths)

    def trunk_features(self, audio: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """[B,T,128] VGGish embeddings of the valid examples (zeros where padded)."""
        if audio.dim() != 4 or tuple(audio.shape[-2:]) != VGGISH_EXAMPLE_SHAPE:
            raise UsageError(
                f"expected VGGish examples [B,T,96,64], got {tuple(audio.shape)}",
                hint="use features.vggish_examples for the vggish audio encoder",
            )
        valid = _valid_examples(audio.shape[0], audio.shape[1], lengths, audio.device)
        embedded = self.trunk(audio[valid].unsqueeze(1))
        out = embedded.new_zeros(*valid.shape, embedded.shape[1])
        out[valid] = embedded
        return out

    def head(self, features: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """[B,T,128] trunk embeddings -> [B,dim]: standardise, project, normalise, mean over valid examples."""
        valid = _valid_examples(features.shape[0], features.shape[1], lengths, features.device)
        embedded = _maybe_normalize(self.proj(self.standardize(features[valid])), self.normalize)
        per_example = embedded.new_zeros(*valid.shape, embedded.shape[1])
        per_example[valid] = embedded
        return per_example.sum(1) / valid.sum(1, keepdim=True).clamp_min(1)


def _valid_examples(batch: int, steps: int, lengths: torch.Tensor | None, device: torch.device) -> torch.Tensor:
    """bool [B,T]: which of the padded examples are real."""
    if lengths is None:
        return torch.ones(batch, steps, dtype=torch.bool, device=device)
    return torch.arange(steps, device=device) < lengths.to(device)[:, None]


class SpectrogramResNetAudio(nn.Module):
    """EZ-VSL audio: 1-channel ResNet-18 -> global max pool -> (standardise) -> Linear -> (L2-normalise)."""

    def __init__(self, dim: int, normalize: bool = True, standardize: bool = False) -> None:
        super().__init__()
        self.trunk = ResNetTrunk(in_channels=1)
        self.standardize = standardizer(RESNET_CHANNELS, standardize)
        self.proj = nn.Linear(RESNET_CHANNELS, dim)
        self.normalize = normalize

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """audio [B,257,F] or [B,1,257,F] log spectrograms; `lengths` is not used."""
        return self.head(self.trunk_features(audio, lengths))

    def trunk_features(self, audio: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """[B,1,512]: the trunk's global max pool (one "example" per clip, like VGGish's layout)."""
        if audio.dim() == 3:
            audio = audio.unsqueeze(1)
        if audio.dim() != 4 or audio.shape[1] != 1:
            raise UsageError(
                f"expected spectrograms [B,257,F] or [B,1,257,F], got {tuple(audio.shape)}",
                hint="use features.ezvsl_spectrogram for the resnet18 audio encoder",
            )
        return self.trunk(audio).amax(dim=(2, 3)).unsqueeze(1)

    def head(self, features: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """[B,1,512] -> [B,dim]: standardise, project, normalise."""
        return _maybe_normalize(self.proj(self.standardize(features[:, 0])), self.normalize)


def init_fresh(*modules: nn.Module) -> None:
    """EZ-VSL's initialisation, for the parts that start from scratch (never pretrained ones)."""
    for module in modules:
        for layer in module.modules():
            if isinstance(layer, nn.Conv2d):
                nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(layer, nn.Linear):
                nn.init.trunc_normal_(layer.weight, mean=0.0, std=0.01)
            elif isinstance(layer, nn.BatchNorm2d):
                nn.init.normal_(layer.weight, mean=1.0, std=0.02)
                nn.init.zeros_(layer.bias)


def identity_init(trunk: nn.Module) -> None:
    """Identity (Dirac) convolutions and neutral BatchNorm: each map cell sees its own patch.

    A randomly initialised ResNet mixes the whole frame into every cell, so contrastive
    training from scratch learns global shortcuts instead of locations. Offline, with no
    ImageNet weights, this locality-preserving start stands in for them (demo, tests).
    The stem's next input-many channels get the negated input, so the ReLU after it keeps
    both signs: without them every colour darker than the ImageNet mean in all three
    channels (grey or dark backgrounds, navy, ...) reaches the map as the zero vector.
    """
    for module in trunk.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.dirac_(module.weight)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
            module.reset_running_stats()
    stem = trunk.conv1
    channels = stem.in_channels
    if stem.out_channels >= 2 * channels:
        with torch.no_grad():
            stem.weight[channels : 2 * channels] = -stem.weight[:channels]


def load_pretrained(module: nn.Module, name: str, explicit: Path | None) -> None:
    """Pretrained weights `name` (through the resolver) into `module`, every key matched."""
    path = weights.resolve_weights(name, explicit)
    state = {k: v for k, v in weights.load_state_dict(path).items() if not k.startswith("fc.")}
    spec = weights.WEIGHTS[name]
    load_exact(
        module,
        state,
        source=path,
        what=f"{spec.description} network",
        error=WeightsError,
        hint=f"pass the {spec.description} weights file ({spec.filename})",
    )
