"""SAM's image-encoder attention through `torch.nn.functional.scaled_dot_product_attention`.

segment-anything's `image_encoder.Attention` writes attention out by hand: the full
score matrix, plus the decomposed relative-position bias, then a softmax, then `@ v`,
materialising several [B*heads, N, N] tensors per block. `SdpaAttention` computes
the same thing with one fused SDPA call, the bias passed as the additive float
`attn_mask`: on CUDA that selects the memory-efficient kernel (flash takes no mask),
on the CPU the fused kernel keeps one [B, heads, N, N] tensor (the bias) instead of
several. Outputs equal the original's to float rounding.

The switch swaps each module's class (`SdpaAttention` is a subclass that only
overrides `forward`), so parameter names, state dicts and `.to()` are unchanged and
`use_original` undoes it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from segment_anything.modeling import Sam
from segment_anything.modeling.image_encoder import Attention, get_rel_pos


class SdpaAttention(Attention):
    """`image_encoder.Attention` with the same parameters, computed by SDPA."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B,H,W,C] -> [B,H,W,C], as `Attention.forward` computes it, with one SDPA call."""
        batch, height, width, _ = x.shape
        tokens = height * width
        # [3, B, heads, N, head_dim]
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        bias = rel_pos_bias(q, self.rel_pos_h, self.rel_pos_w, (height, width)) if self.use_rel_pos else None
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
        out = out.permute(0, 2, 1, 3).reshape(batch, height, width, -1)
        return self.proj(out)


def rel_pos_bias(
    q: torch.Tensor, rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor, size: tuple[int, int]
) -> torch.Tensor:
    """The decomposed relative-position bias [B, heads, N, N] of `add_decomposed_rel_pos`.

    bias[(qh, qw), (kh, kw)] = q . Rh[qh, kh] + q . Rw[qw, kw], with the unscaled query,
    as segment-anything adds it to the scaled scores. Cast to the query's dtype (bf16 under
    CUDA autocast) because SDPA's fused CUDA kernels want the mask in the query's dtype.
    """
    height, width = size
    batch, heads, _, dim = q.shape
    r_q = q.reshape(batch, heads, height, width, dim)
    rel_h = torch.einsum("bnhwc,hkc->bnhwk", r_q, get_rel_pos(height, height, rel_pos_h))
    rel_w = torch.einsum("bnhwc,wkc->bnhwk", r_q, get_rel_pos(width, width, rel_pos_w))
    bias = rel_h[..., :, None] + rel_w[..., None, :]  # [B, heads, qh, qw, kh, kw]
    return bias.reshape(batch, heads, height * width, height * width).to(q.dtype)


def _switch(sam: Sam, to: type[Attention]) -> int:
    count = 0
    for module in sam.image_encoder.modules():
        if type(module) in (Attention, SdpaAttention):  # not foreign subclasses: their forward may differ
            module.__class__ = to
            count += 1
    return count


def use_sdpa(sam: Sam) -> int:
    """Runs every attention block of `sam.image_encoder` through SDPA, in place.

    Returns the number of attention modules that now use SDPA (those already switched
    included), so 0 means the encoder has none of segment-anything's attention blocks.
    """
    return _switch(sam, SdpaAttention)


def use_original(sam: Sam) -> int:
    """Undoes `use_sdpa`: segment-anything's own attention forward again. Returns the module count."""
    return _switch(sam, Attention)


def uses_sdpa(sam: Sam) -> bool:
    """Whether any attention module of the image encoder runs through SDPA."""
    return any(type(m) is SdpaAttention for m in sam.image_encoder.modules())
