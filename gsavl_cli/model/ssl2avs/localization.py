"""The target-localization module: contrastive audio-visual alignment -> a sound-source heatmap.

The same idea as the localizer (the GSAVL paper): visual maps and the audio vector are
projected to a common space and L2-normalised; their cosine at every location is the
similarity map S, and training aligns the modalities with the localizer's max-pooled
MIL contrastive loss (`mil_contrastive_loss`). The heatmap that weights the feature
pyramid is an activation of S:

- ``sigmoid``: sigmoid(S / tau);
- ``act`` (adaptive contrast, the seed's "ACT", our definition): each map is standardised
  over its locations, then a sigmoid with a learned slope and offset,
  sigmoid(a * (S - mean S) / (std S + eps) + b). Cosine similarities drift as a whole
  during contrastive training (every location of a frame moves together), so a fixed
  sigmoid saturates to all-on or all-off; ACT keeps the contrast *within* the frame and
  learns where to put the threshold;
- ``none``: the rectified cosine, clamp(S, 0, 1) (table 5's third row).

`logits` are what the auxiliary localization loss supervises (sigmoid(logits) = heatmap
for ``act`` and ``sigmoid``; S / tau for ``none``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_EPS = 1e-6


class AdaptiveContrast(nn.Module):
    """ACT: per-map standardisation, then a sigmoid with a learned slope and offset; returns the logits."""

    def __init__(self) -> None:
        super().__init__()
        self.slope = nn.Parameter(torch.ones(()))
        self.offset = nn.Parameter(torch.zeros(()))

    def forward(self, similarity: torch.Tensor) -> torch.Tensor:
        """similarity [N,h,w] -> ACT logits (their sigmoid is the heatmap)."""
        mean = similarity.mean(dim=(-2, -1), keepdim=True)
        std = similarity.std(dim=(-2, -1), keepdim=True) if similarity[0].numel() > 1 else torch.ones_like(mean)
        return self.slope * (similarity - mean) / (std + _EPS) + self.offset


def cross_similarity(visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
    """S [B_a,B_v,h,w]: every (normalised) audio vector against every visual map, at every location."""
    return torch.einsum("vchw,ac->avhw", visual, audio)


class TargetLocalization(nn.Module):
    """Projects the deepest visual level and the audio embedding, and returns their similarity and heatmap."""

    def __init__(self, visual_channels: int, audio_dim: int, dim: int, activation: str, tau: float) -> None:
        super().__init__()
        self.visual_proj = nn.Conv2d(visual_channels, dim, kernel_size=1)
        self.audio_proj = nn.Linear(audio_dim, dim)
        self.activation = activation
        self.tau = tau
        if activation == "act":
            self.act = AdaptiveContrast()

    def forward(self, deep: torch.Tensor, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        """deep [N,C,h,w], audio [N,E] -> visual [N,d,h,w], audio [N,d] (normalised), similarity, logits, heatmap [N,h,w]."""
        visual = F.normalize(self.visual_proj(deep), dim=1)
        sound = F.normalize(self.audio_proj(audio), dim=1)
        similarity = torch.einsum("nchw,nc->nhw", visual, sound)
        if self.activation == "act":
            logits = self.act(similarity)
            heatmap = logits.sigmoid()
        else:
            logits = similarity / self.tau
            heatmap = logits.sigmoid() if self.activation == "sigmoid" else similarity.clamp(0, 1)
        return {"visual": visual, "audio": sound, "similarity": similarity, "logits": logits, "heatmap": heatmap}
