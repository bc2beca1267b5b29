"""AVSegFormer's transformer: a deformable encoder over the multi-scale visual tokens and a
decoder whose (audio + learnable) queries attend to them. Post-norm, GELU FFN, as the original.
"""

from __future__ import annotations

import torch
from torch import nn

from gsavl_cli.model.ssl2avs.deform_attn import MSDeformAttn, Shapes


class FeedForward(nn.Module):
    """Linear -> GELU -> dropout -> Linear -> dropout, residual, LayerNorm."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim), nn.Dropout(dropout)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [..., D] -> the same shape: residual FFN, then LayerNorm."""
        return self.norm(x + self.net(x))


class EncoderLayer(nn.Module):
    """Deformable self-attention among the visual tokens of every level, then the FFN."""

    def __init__(self, dim: int, ffn_dim: int, dropout: float, levels: int, heads: int, points: int) -> None:
        super().__init__()
        self.attn = MSDeformAttn(dim, levels, heads, points)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, ffn_dim, dropout)

    def forward(self, src: torch.Tensor, pos: torch.Tensor, reference: torch.Tensor, shapes: Shapes) -> torch.Tensor:
        """Tokens [N,L,D] of every level -> the same, after deformable attention around `reference` and the FFN."""
        src = self.norm(src + self.dropout(self.attn(src + pos, reference, src, shapes)))
        return self.ffn(src)


def reference_points(shapes: Shapes, batch: int, device: torch.device) -> torch.Tensor:
    """[B,N,2]: the centre (x, y) in [0,1] of every cell of every level, in token order."""
    centres = []
    for h, w in shapes:
        ys = (torch.arange(h, dtype=torch.float32, device=device) + 0.5) / h
        xs = (torch.arange(w, dtype=torch.float32, device=device) + 0.5) / w
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        centres.append(torch.stack([grid_x.flatten(), grid_y.flatten()], -1))
    return torch.cat(centres)[None].expand(batch, -1, -1)


class DecoderLayer(nn.Module):
    """Query self-attention, cross-attention to the encoded visual tokens, FFN."""

    def __init__(self, dim: int, ffn_dim: int, dropout: float, heads: int) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, ffn_dim, dropout)

    def forward(self, query: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """queries [N,Q,D] -> updated, after attending to each other and to the encoded tokens `memory`."""
        query = self.norm1(query + self.dropout1(self.self_attn(query, query, query, need_weights=False)[0]))
        attended = self.cross_attn(query, memory + pos, memory, need_weights=False)[0]
        query = self.norm2(query + self.dropout2(attended))
        return self.ffn(query)


class Encoder(nn.Module):
    """The deformable encoder: a stack of `EncoderLayer`s over the multi-scale visual tokens."""

    def __init__(
        self, layers: int, dim: int, ffn_dim: int, dropout: float, levels: int, heads: int, points: int
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(dim, ffn_dim, dropout, levels, heads, points) for _ in range(layers))

    def forward(self, src: torch.Tensor, pos: torch.Tensor, shapes: Shapes) -> torch.Tensor:
        """Tokens [N,L,D] (+ pos) of the levels `shapes` -> encoded; each cell's centre is its reference point."""
        reference = reference_points(shapes, src.shape[0], src.device).to(src.dtype)
        for layer in self.layers:
            src = layer(src, pos, reference, shapes)
        return src


class Decoder(nn.Module):
    """The decoder: a stack of `DecoderLayer`s whose audio queries attend to the encoded visual tokens."""

    def __init__(self, layers: int, dim: int, ffn_dim: int, dropout: float, heads: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(dim, ffn_dim, dropout, heads) for _ in range(layers))

    def forward(self, query: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor) -> list[torch.Tensor]:
        """Every layer's queries (the last one predicts the mask, the others the intermediate masks)."""
        outputs = []
        for layer in self.layers:
            query = layer(query, memory, pos)
            outputs.append(query)
        return outputs
