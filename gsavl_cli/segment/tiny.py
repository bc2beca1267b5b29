"""A toy-sized SAM for tests and benchmarks (never part of a real run's path).

`load_sam("tiny", FILE)` rebuilds it to load a file saved from `build_tiny_sam()`.
"""

from __future__ import annotations

from functools import partial

import torch
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer


def build_tiny_sam(img_size: int = 64, embed_dim: int = 32, depth: int = 2, heads: int = 2, seed: int = 0) -> Sam:
    """A toy-sized SAM of segment-anything's own modules, randomly initialised from `seed`.

    For tests and benchmarks; the global random state is left untouched.
    """
    patch = 8
    grid = img_size // patch
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sam = Sam(
            image_encoder=ImageEncoderViT(
                img_size=img_size,
                patch_size=patch,
                embed_dim=embed_dim,
                depth=depth,
                num_heads=heads,
                mlp_ratio=2.0,
                out_chans=embed_dim,
                norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                use_rel_pos=True,
                window_size=grid // 2,
                global_attn_indexes=(depth - 1,),
            ),
            prompt_encoder=PromptEncoder(
                embed_dim=embed_dim,
                image_embedding_size=(grid, grid),
                input_image_size=(img_size, img_size),
                mask_in_chans=8,
            ),
            mask_decoder=MaskDecoder(
                transformer_dim=embed_dim,
                transformer=TwoWayTransformer(depth=2, embedding_dim=embed_dim, mlp_dim=2 * embed_dim, num_heads=heads),
                num_multimask_outputs=3,
                iou_head_depth=3,
                iou_head_hidden_dim=embed_dim,
            ),
        )
    return sam.eval()
