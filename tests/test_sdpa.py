"""SDPA attention for SAM's image encoder equals segment-anything's own (gsavl_cli.segment.sdpa).

The reference is segment-anything's unmodified `Attention.forward` with
`add_decomposed_rel_pos`; relative-position tables are randomised (SAM initialises them
to zero, which would hide a wrong bias), and a check that they change the output keeps
the comparison from passing trivially.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from segment_anything.modeling.image_encoder import Attention, Block

from gsavl_cli.errors import UsageError
from gsavl_cli.samplers import Prompts
from gsavl_cli.segment.sam import ATTENTION_MODES, SamSegmenter
from gsavl_cli.segment.sdpa import SdpaAttention, rel_pos_bias, use_original, use_sdpa, uses_sdpa
from gsavl_cli.segment.tiny import build_tiny_sam

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def randomise_rel_pos(module: torch.nn.Module, seed: int = 0, std: float = 0.5) -> None:
    """Non-zero relative-position tables, the same for a given seed."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if "rel_pos" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * std)


def tiny_sam(seed: int = 0):
    sam = build_tiny_sam(seed=seed)
    randomise_rel_pos(sam, seed)
    return sam


def encode(sam, pixels: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return sam.image_encoder(pixels)


def vit_b_block(window: int, rel_pos: bool = True, grid: int = 28) -> Block:
    """One block shaped like vit_b's: 768 channels, 12 heads, window 14 or global."""
    torch.manual_seed(0)
    size = (window, window) if window else (grid, grid)
    block = Block(768, 12, use_rel_pos=rel_pos, window_size=window, input_size=size).eval()
    randomise_rel_pos(block)
    return block


def test_tiny_sam_embedding_equals_original() -> None:
    pixels = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    original, fast = tiny_sam(), tiny_sam()
    assert use_sdpa(fast) == 2 and uses_sdpa(fast) and not uses_sdpa(original)
    expected, got = encode(original, pixels), encode(fast, pixels)
    assert got.shape == expected.shape == (2, 32, 8, 8)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    # the bias matters: without it the outputs differ by far more than the tolerance
    with torch.no_grad():
        for name, param in fast.image_encoder.named_parameters():
            if "rel_pos" in name:
                param.zero_()
    assert (encode(fast, pixels) - expected).abs().max() > 1e-2


@pytest.mark.parametrize(
    ("window", "rel_pos"), [(14, True), (0, True), (0, False)], ids=["windowed", "global", "global-no-rel-pos"]
)
def test_vit_b_block_equals_original(window: int, rel_pos: bool) -> None:
    block = vit_b_block(window, rel_pos)
    x = torch.randn(1, 28, 28, 768, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        expected = block(x)
        block.attn.__class__ = SdpaAttention
        got = block(x)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_switch_is_reversible_and_keeps_state_dict() -> None:
    sam = tiny_sam()
    before = {k: v.clone() for k, v in sam.state_dict().items()}
    assert use_sdpa(sam) == 2 and use_sdpa(sam) == 2  # idempotent
    assert all(type(b.attn) is SdpaAttention for b in sam.image_encoder.blocks)
    assert sam.state_dict().keys() == before.keys()
    sam.load_state_dict(before, strict=True)
    assert use_original(sam) == 2
    assert all(type(b.attn) is Attention for b in sam.image_encoder.blocks) and not uses_sdpa(sam)


def test_rel_pos_bias_matches_the_formula() -> None:
    """bias[(i, j), (k, l)] = q_ij . rel_pos_h[i - k + H - 1] + q_ij . rel_pos_w[j - l + W - 1], written out."""
    gen = torch.Generator().manual_seed(4)
    height, width, dim = 3, 4, 5
    q = torch.randn(2, 3, height * width, dim, generator=gen)
    table_h, table_w = torch.randn(2 * height - 1, dim, generator=gen), torch.randn(2 * width - 1, dim, generator=gen)
    bias = rel_pos_bias(q, table_h, table_w, (height, width))
    assert bias.shape == (2, 3, height * width, height * width)
    expected = torch.empty_like(bias)
    for i in range(height):
        for j in range(width):
            for k in range(height):
                for m in range(width):
                    qv = q[:, :, i * width + j]
                    expected[:, :, i * width + j, k * width + m] = (
                        qv @ table_h[i - k + height - 1] + qv @ table_w[j - m + width - 1]
                    )
    torch.testing.assert_close(bias, expected, atol=1e-5, rtol=1e-5)


def test_cpu_bf16_autocast_casts_the_bias() -> None:
    """Under autocast q is bf16 while the tables are fp32: SDPA's fused CUDA kernels need the bias in q's dtype."""
    torch.manual_seed(0)
    attn = Attention(64, 4, use_rel_pos=True, input_size=(8, 8)).eval()
    randomise_rel_pos(attn)
    x = torch.randn(2, 8, 8, 64, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        reference = attn(x)
        attn.__class__ = SdpaAttention
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = attn(x)
            bias = rel_pos_bias(
                attn.qkv(x).reshape(2, 64, 3, 4, 16)[:, :, 0].transpose(1, 2), attn.rel_pos_h, attn.rel_pos_w, (8, 8)
            )
    assert got.dtype == bias.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), reference, atol=0.1, rtol=0.05)


def frame_and_prompts() -> tuple[np.ndarray, list[Prompts]]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    prompts = [
        Prompts(np.array([[20.0, 12.0]]), np.array([1])),
        Prompts(np.array([[40.0, 30.0], [10.0, 40.0]]), np.array([1, 0])),
    ]
    return image, prompts


def test_segmenter_masks_equal_between_modes() -> None:
    image, prompts = frame_and_prompts()
    results = {}
    for mode in ATTENTION_MODES:
        segmenter = SamSegmenter(tiny_sam(), attention=mode)
        assert segmenter.attention == mode and uses_sdpa(segmenter.sam) == (mode == "sdpa")
        embedding = segmenter.embed([image])[0]
        results[mode] = (embedding.features, segmenter.segment_many(embedding, prompts, mask_choice="score"))
    (feat_a, res_a), (feat_b, res_b) = results["sdpa"], results["original"]
    torch.testing.assert_close(feat_a, feat_b, atol=1e-5, rtol=1e-5)
    for a, b in zip(res_a, res_b):
        assert a.mask.shape == (48, 64)
        np.testing.assert_array_equal(a.mask, b.mask)
        assert a.score == pytest.approx(b.score, abs=1e-5)


def test_segmenter_default_is_sdpa_and_original_restores() -> None:
    sam = tiny_sam()
    assert uses_sdpa(SamSegmenter(sam).sam)
    assert not uses_sdpa(SamSegmenter(sam, attention="original").sam)


def test_segmenter_rejects_unknown_attention() -> None:
    with pytest.raises(UsageError) as err:
        SamSegmenter(tiny_sam(), attention="flash")
    assert "sdpa" in str(err.value.hint) and "original" in str(err.value.hint)


@needs_cuda
@pytest.mark.parametrize("window", [14, 0], ids=["windowed", "global"])
def test_cuda_bf16_block_close_to_original(window: int) -> None:
    block = vit_b_block(window, grid=28).cuda()
    x = torch.randn(2, 28, 28, 768, generator=torch.Generator().manual_seed(2)).cuda()
    with torch.inference_mode():
        reference = block(x)  # fp32, original
        with torch.autocast("cuda", dtype=torch.bfloat16):
            original_bf16 = block(x).float()
            block.attn.__class__ = SdpaAttention
            sdpa_bf16 = block(x).float()
    scale = reference.abs().max()
    sdpa_err = (sdpa_bf16 - reference).abs().max() / scale
    original_err = (original_bf16 - reference).abs().max() / scale
    assert sdpa_err < 0.05 and sdpa_err < 3 * original_err + 1e-3
    torch.testing.assert_close(sdpa_bf16, original_bf16, atol=0.05 * scale.item(), rtol=0.05)


@needs_cuda
def test_cuda_bf16_segmenter_matches_original() -> None:
    image, prompts = frame_and_prompts()
    features = {}
    for mode in ATTENTION_MODES:
        segmenter = SamSegmenter(tiny_sam(), device="cuda", attention=mode)
        assert segmenter.bf16
        features[mode] = segmenter.embed([image])[0].features.float()
        segmenter.segment_many(segmenter.embed([image])[0], prompts)  # runs end to end
    scale = features["original"].abs().max().item()
    torch.testing.assert_close(features["sdpa"], features["original"], atol=0.05 * scale, rtol=0.05)
