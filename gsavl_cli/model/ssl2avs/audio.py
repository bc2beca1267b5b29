"""Audio: one embedding per frame from its second of audio (VGGish log-mel examples).

`vggish` is the localizer's VGGish encoder (`encoders.VGGishAudio`: the AudioSet VGG,
128-d, then a Linear to the embedding size), usually frozen as in AVSegFormer; `tiny` is
a small conv net on the same log-mel input for tests and CPU runs (no pretrained weights).
"""

from __future__ import annotations

import torch
from torch import nn

from gsavl_cli.model.encoders import VGGISH_EMBEDDING, VGGishAudio, standardizer


class TinyAudioTrunk(nn.Module):
    """[N,1,96,64] log-mel -> [N,128]: three strided convs, global average pooling, a Linear.

    Unlike VGGish's embedding the output is not ReLU'd: trained from scratch, a rectified
    embedding can die unit by unit until every clip sounds the same.
    """

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for cin, cout in ((1, 16), (16, 32), (32, 64)):
            layers += [nn.Conv2d(cin, cout, 3, 2, 1), nn.GroupNorm(8, cout), nn.ReLU(inplace=True)]
        self.convs = nn.Sequential(*layers)
        self.out = nn.Linear(64, VGGISH_EMBEDDING)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """log-mel [N,1,96,64] -> [N,128], not rectified (see the class)."""
        return self.out(self.convs(x).mean(dim=(2, 3)))


class TinyAudio(VGGishAudio):
    """VGGishAudio's interface and averaging over examples, with the tiny trunk instead of the VGG."""

    def __init__(self, dim: int) -> None:
        nn.Module.__init__(self)  # not VGGishAudio's: it would build the 72 M-parameter VGG first
        self.trunk = TinyAudioTrunk()
        self.standardize = standardizer(VGGISH_EMBEDDING, False)
        self.proj = nn.Linear(VGGISH_EMBEDDING, dim)
        self.normalize = False


def build_audio(net: str, dim: int) -> VGGishAudio:
    """An encoder [B,T,96,64] (+ lengths) -> [B,dim], mean over the valid examples, not normalised."""
    return TinyAudio(dim) if net == "tiny" else VGGishAudio(dim, normalize=False)
