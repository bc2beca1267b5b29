"""Multi-scale deformable attention (Deformable DETR, as AVSegFormer uses it), pure PyTorch.

Each query attends, per head and feature level, to `points` locations around its
reference point; the values there are sampled bilinearly with `F.grid_sample` and
summed with softmax weights. No custom CUDA kernel (mmcv) is needed: the sampling is
the same arithmetic as the reference kernel's (pixel centres at (i + 0.5) / size,
zeros outside the map).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

Shapes = list[tuple[int, int]]


def ms_deform_attn(value: torch.Tensor, shapes: Shapes, locations: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The sampling core.

    value [B,N,H,D]: the levels' maps flattened and concatenated (level l is shapes[l] = (h_l, w_l));
    locations [B,Q,H,L,P,2]: (x, y) in [0,1] of each level's extent; weights [B,Q,H,L,P].
    Returns [B,Q,H*D].
    """
    batch, _, heads, depth = value.shape
    _, queries, _, levels, points, _ = locations.shape
    per_level = value.split([h * w for h, w in shapes], dim=1)
    grids = 2 * locations - 1  # grid_sample's [-1,1] coordinates
    sampled = []
    for level, (h, w) in enumerate(shapes):
        maps = per_level[level].permute(0, 2, 3, 1).reshape(batch * heads, depth, h, w)
        grid = grids[:, :, :, level].transpose(1, 2).reshape(batch * heads, queries, points, 2)
        sampled.append(F.grid_sample(maps, grid, mode="bilinear", padding_mode="zeros", align_corners=False))
    stacked = torch.stack(sampled, dim=-2).flatten(-2)  # [B*H, D, Q, L*P]
    attention = weights.transpose(1, 2).reshape(batch * heads, 1, queries, levels * points)
    out = (stacked * attention).sum(-1)  # [B*H, D, Q]
    return out.view(batch, heads * depth, queries).transpose(1, 2)


class MSDeformAttn(nn.Module):
    """Deformable attention over `levels` maps: offsets and weights are predicted from the query."""

    def __init__(self, dim: int, levels: int, heads: int, points: int) -> None:
        super().__init__()
        self.dim, self.levels, self.heads, self.points = dim, levels, heads, points
        self.offsets = nn.Linear(dim, heads * levels * points * 2)
        self.weights = nn.Linear(dim, heads * levels * points)
        self.value_proj = nn.Linear(dim, dim)
        self.output_proj = nn.Linear(dim, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Deformable DETR's start: head h samples along direction 2*pi*h/H, point p at distance p+1."""
        nn.init.zeros_(self.offsets.weight)
        angles = torch.arange(self.heads, dtype=torch.float32) * (2.0 * math.pi / self.heads)
        directions = torch.stack([angles.cos(), angles.sin()], -1)
        directions = directions / directions.abs().max(-1, keepdim=True).values
        steps = torch.arange(1, self.points + 1, dtype=torch.float32)
        bias = directions[:, None, None, :] * steps[None, None, :, None]
        with torch.no_grad():
            self.offsets.bias.copy_(bias.expand(self.heads, self.levels, self.points, 2).flatten())
        nn.init.zeros_(self.weights.weight)
        nn.init.zeros_(self.weights.bias)
        for layer in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(
        self, query: torch.Tensor, reference: torch.Tensor, value: torch.Tensor, shapes: Shapes
    ) -> torch.Tensor:
        """query [B,Q,C]; reference [B,Q,2] (x, y) in [0,1]; value [B,N,C] over `shapes` -> [B,Q,C]."""
        batch, queries, _ = query.shape
        depth = self.dim // self.heads
        values = self.value_proj(value).view(batch, value.shape[1], self.heads, depth)
        offsets = self.offsets(query).view(batch, queries, self.heads, self.levels, self.points, 2)
        weights = self.weights(query).view(batch, queries, self.heads, self.levels * self.points).softmax(-1)
        weights = weights.view(batch, queries, self.heads, self.levels, self.points)
        sizes = torch.tensor(
            [[w, h] for h, w in shapes], dtype=query.dtype, device=query.device
        )  # offsets are in cells
        locations = reference[:, :, None, None, None, :] + offsets / sizes[None, None, None, :, None, :]
        return self.output_proj(ms_deform_attn(values, shapes, locations, weights))
