"""AVSegFormer's segmentation head: multi-scale tokens -> deformable encoder -> fusion ->
audio queries -> decoder -> a mask from the highest-resolution features.

The backbone's four levels are projected to `embed_dim` (1x1 conv + GroupNorm); the
deepest `encoder_levels` of them, with sine positional encodings and a learned level
embedding, go through the deformable encoder. The queries are the audio embedding
repeated `num_queries` times plus a learnable query embedding. The mask feature is the
shallowest level (lateral 1x1 conv) plus the encoder's finest level, upsampled; the
last decoder layer's queries are correlated with it (one map per query), mixed back to
`embed_dim` channels by an MLP over the query maps, added to the mask feature and
decoded to one logit per pixel at the input's size. Every decoder layer also gives an
intermediate mask (its query maps mixed to one channel) for the auxiliary loss.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gsavl_cli.model.ssl2avs.config import SSL2AVSConfig
from gsavl_cli.model.ssl2avs.deform_attn import MSDeformAttn
from gsavl_cli.model.ssl2avs.fusion import AudioVisualFusion
from gsavl_cli.model.ssl2avs.position import sine_position
from gsavl_cli.model.ssl2avs.transformer import Decoder, Encoder


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(32, channels), channels)


def _upsample(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class MaskHead(nn.Module):
    """AVSegFormer's segmentation head of the module docstring: backbone levels and audio -> mask logits."""

    def __init__(self, config: SSL2AVSConfig, channels: tuple[int, ...]) -> None:
        super().__init__()
        dim, queries, levels = config.embed_dim, config.num_queries, config.encoder_levels
        self.levels = levels
        self.in_proj = nn.ModuleList(nn.Sequential(nn.Conv2d(c, dim, kernel_size=1), _norm(dim)) for c in channels)
        self.level_embed = nn.Parameter(torch.empty(levels, dim))
        self.encoder = Encoder(
            config.encoder_layers, dim, config.ffn_dim, config.dropout, levels, config.num_heads, config.deform_points
        )
        self.fusion = AudioVisualFusion(dim, config.num_heads, config.fusion, config.dropout)
        self.queries = nn.Embedding(queries, dim) if config.learnable_queries else None
        self.num_queries = queries
        self.decoder = Decoder(config.decoder_layers, dim, config.ffn_dim, config.dropout, config.num_heads)
        self.lateral = nn.Sequential(nn.Conv2d(dim, dim, kernel_size=1), _norm(dim))
        self.out_conv = nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1), _norm(dim), nn.ReLU(inplace=True))
        hidden = config.ffn_dim
        self.query_mlp = nn.Sequential(
            nn.Conv2d(queries, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, dim, 1),
        )
        self.intermediate = nn.Conv2d(queries, 1, kernel_size=1)
        self.fc_in = nn.Conv2d(dim, dim // 2, 3, padding=1)
        small = max(dim // 8, 8)
        self.fc_out = nn.Sequential(
            nn.Conv2d(dim // 2, small, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(small, 1, 1, bias=False)
        )
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """AVSegFormer's: Xavier for every matrix, Deformable DETR's start for the deformable attention."""
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for module in self.modules():
            if isinstance(module, MSDeformAttn):
                module.reset_parameters()
        nn.init.normal_(self.level_embed)

    def _tokens(self, maps: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
        shapes = [(int(m.shape[-2]), int(m.shape[-1])) for m in maps]
        src = torch.cat([m.flatten(2).transpose(1, 2) for m in maps], dim=1)
        pos = torch.cat(
            [
                (sine_position(h, w, m.shape[1], m.device).to(m.dtype).flatten(1).T + self.level_embed[i])
                for i, (m, (h, w)) in enumerate(zip(maps, shapes))
            ]
        )
        return src, pos[None].expand(src.shape[0], -1, -1), shapes

    def forward(
        self, feats: list[torch.Tensor], audio: torch.Tensor, size: tuple[int, int]
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """feats: the backbone's levels; audio [N,D] -> (mask logits [N,1,H,W], intermediate logits per decoder layer)."""
        projected = [proj(f) for proj, f in zip(self.in_proj, feats)]
        src, pos, shapes = self._tokens(projected[-self.levels :])
        memory = self.encoder(src, pos, shapes)
        memory, audio, gate = self.fusion(memory, pos, audio)
        batch = audio.shape[0]
        query = audio[:, None].expand(batch, self.num_queries, -1)
        if self.queries is not None:
            query = query + self.queries.weight[None]
        outputs = self.decoder(query, memory, pos)

        h, w = shapes[0]
        finest = memory[:, : h * w].transpose(1, 2).reshape(batch, -1, h, w)
        lateral = self.lateral(projected[0])
        if gate is not None:
            lateral = lateral * gate[:, :, None, None]
        mask_feature = self.out_conv(lateral + _upsample(finest, lateral.shape[-2:]))

        maps = [torch.einsum("nqc,nchw->nqhw", q, mask_feature) for q in outputs]
        intermediate = [_upsample(self.intermediate(m), size) for m in maps]
        pred = mask_feature + self.query_mlp(maps[-1])
        logits = self.fc_out(_upsample(self.fc_in(pred), size))
        return logits, intermediate
