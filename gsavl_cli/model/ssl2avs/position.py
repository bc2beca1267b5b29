"""Sine positional encoding (DETR's, normalised to 2*pi over the map), for unpadded maps."""

from __future__ import annotations

import math

import torch


def sine_position(
    height: int, width: int, dim: int, device: torch.device | str | None = None, temperature: float = 10000.0
) -> torch.Tensor:
    """[dim, height, width]: the first half encodes y, the second x; sin on even, cos on odd channels."""
    feats = dim // 2
    scale = 2 * math.pi
    y = torch.arange(1, height + 1, dtype=torch.float32, device=device) / (height + 1e-6) * scale
    x = torch.arange(1, width + 1, dtype=torch.float32, device=device) / (width + 1e-6) * scale
    periods = temperature ** (2 * torch.div(torch.arange(feats, device=device), 2, rounding_mode="floor") / feats)

    def encode(positions: torch.Tensor) -> torch.Tensor:
        angles = positions[:, None] / periods
        return torch.stack([angles[:, 0::2].sin(), angles[:, 1::2].cos()], dim=2).flatten(1)  # [n, feats]

    pos_y = encode(y)[:, None, :].expand(height, width, feats)
    pos_x = encode(x)[None, :, :].expand(height, width, feats)
    return torch.cat([pos_y, pos_x], dim=2).permute(2, 0, 1)
