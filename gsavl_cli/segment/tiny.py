"""Toy-sized SAM and SAM 2 models for tests and benchmarks (never part of a real run's path).

`load_sam("tiny", FILE)` rebuilds it to load a file saved from `build_tiny_sam()`.
"""

from __future__ import annotations

from functools import partial
from typing import Any

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


def build_tiny_sam2(seed: int = 0, image_size: int = 1024, hidden: int = 32, *, video: bool = False) -> Any:
    """A toy-sized SAM 2 (`transformers.Sam2Model`, the SAM 2 architecture at widths of 4-64), random from `seed`.

    The input stays SAM 2's 1024 x 1024 by default, so frames go through the same resizing and
    feature sizes as the real models; `hidden` is the decoder's width (256 in the real ones).
    `video=True` gives the video predictor (`Sam2VideoModel`: the same image path plus a memory
    encoder and memory attention as small; the library fixes the memory width at 64, so `hidden`
    must then be a multiple of 64 above it, e.g. 128). The global random state is left untouched.
    """
    from transformers import Sam2Config, Sam2Model
    from transformers.models.sam2.configuration_sam2 import (
        Sam2HieraDetConfig,
        Sam2MaskDecoderConfig,
        Sam2PromptEncoderConfig,
        Sam2VisionConfig,
    )

    backbone = Sam2HieraDetConfig(
        hidden_size=8,
        num_attention_heads=1,
        image_size=[image_size, image_size],
        blocks_per_stage=[1, 1, 2, 1],
        embed_dim_per_stage=[8, 16, 32, 64],
        num_attention_heads_per_stage=[1, 1, 2, 2],
        window_size_per_stage=[8, 4, 14, 7],
        global_attention_blocks=[3],  # not a stage's first block: that one pools its queries
        window_positional_embedding_background_size=[7, 7],
    )
    grid = [[image_size // s, image_size // s] for s in (4, 8, 16)]
    vision = Sam2VisionConfig(
        backbone_config=backbone,
        backbone_channel_list=[64, 32, 16, 8],
        backbone_feature_sizes=grid,
        fpn_hidden_size=hidden,
    )
    config = Sam2Config(
        vision_config=vision,
        prompt_encoder_config=Sam2PromptEncoderConfig(hidden_size=hidden, image_size=image_size, patch_size=16),
        mask_decoder_config=Sam2MaskDecoderConfig(
            hidden_size=hidden, mlp_dim=2 * hidden, num_attention_heads=2, iou_head_hidden_dim=hidden
        ),
    )
    if video:
        if hidden <= 64 or hidden % 64:
            raise ValueError(f"a SAM 2 video model needs hidden = 128, 192, ..., got {hidden}")
        from transformers import Sam2VideoConfig, Sam2VideoModel

        config = Sam2VideoConfig(
            vision_config=vision.to_dict(),
            prompt_encoder_config=config.prompt_encoder_config.to_dict(),
            mask_decoder_config=config.mask_decoder_config.to_dict(),
            image_size=image_size,
            memory_attention_hidden_size=hidden,
            memory_attention_num_layers=1,
            memory_attention_feed_forward_hidden_size=2 * hidden,
            memory_attention_rope_feat_sizes=[image_size // 16, image_size // 16],
            memory_encoder_hidden_size=hidden,
            mask_downsampler_embed_dim=hidden,
            memory_fuser_embed_dim=hidden,
            memory_fuser_intermediate_dim=2 * hidden,
            num_maskmem=3,  # a short memory (7 and 16 in the real ones), so a few frames fill it
            max_object_pointers_in_encoder=4,
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Sam2VideoModel(config) if video else Sam2Model(config)
        with torch.no_grad():  # the library initialises some parameters to zeros; random ones test more
            for param in model.parameters():
                param.add_(torch.randn_like(param) * 0.02)
            # "an object is there": the video predictor blanks the masks of frames whose object score is negative
            model.mask_decoder.pred_obj_score_head.proj_out.bias.fill_(5.0)
    return model.eval()
