"""Bidirectional audio<->visual attention fusion (the seed's table 9).

- v2a ("audio fusion"): the audio embedding attends to the visual tokens and is updated
  (residual + LayerNorm), so the queries built from it know what is in the frame;
- a2v ("visual fusion"): AVSegFormer's cross-modal mixer: the audio attends to the visual
  tokens and the result, through a sigmoid, gates the visual channels (tokens and the
  high-resolution mask feature).

``bidirectional`` does v2a, then a2v with the updated audio; ``none`` passes both through.
"""

from __future__ import annotations

import torch
from torch import nn


class AudioVisualFusion(nn.Module):
    """Attention between the encoded visual tokens and the audio embedding, per `mode` (see the module docstring)."""

    def __init__(self, dim: int, heads: int, mode: str, dropout: float) -> None:
        super().__init__()
        self.mode = mode
        if mode in ("bidirectional", "v2a"):
            self.v2a = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
            self.v2a_norm = nn.LayerNorm(dim)
        if mode in ("bidirectional", "a2v"):
            self.a2v = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
            self.a2v_proj = nn.Linear(dim, dim)

    def forward(
        self, memory: torch.Tensor, pos: torch.Tensor, audio: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """memory [N,L,D] (+ pos), audio [N,D] -> (gated memory, updated audio, channel gate [N,D] or None)."""
        keys = memory + pos
        if self.mode in ("bidirectional", "v2a"):
            attended = self.v2a(audio[:, None], keys, memory, need_weights=False)[0][:, 0]
            audio = self.v2a_norm(audio + attended)
        gate = None
        if self.mode in ("bidirectional", "a2v"):
            attended = self.a2v(audio[:, None], keys, memory, need_weights=False)[0][:, 0]
            gate = self.a2v_proj(attended).sigmoid()
            memory = memory * gate[:, None]
        return memory, audio, gate
