"""Segment Anything, frozen and zero-shot: point prompts -> a binary mask (the GSAVL paper).

The image embedding (the expensive ViT pass) is computed once per frame by
`SamSegmenter.embed` and reused for every prompt set, sampler and heatmap; the
prompt encoder and mask decoder are called directly, as `SamPredictor.predict_torch`
does, so several prompt sets go through the decoder in one batch.

Mask choice among SAM's outputs:
- `single`: `multimask_output=False`, the one mask SAM returns (the paper's setting);
- `score`: three masks, the one with the highest predicted IoU;
- `heatmap`: three masks, the one that agrees best with the heatmap (`base.soft_iou`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from segment_anything import sam_model_registry
from segment_anything.modeling import Sam
from segment_anything.utils.transforms import ResizeLongestSide

from gsavl_cli import weights
from gsavl_cli.errors import UsageError, WeightsError
from gsavl_cli.samplers import Prompts
from gsavl_cli.segment.base import (
    ImageEmbedding,
    SegmentResult,
    check_image,
    check_mask_choice,
    frame_heatmap,
    soft_iou,
)

SAM_ARCHS = ("vit_h", "vit_l", "vit_b")
ATTENTION_MODES = ("sdpa", "original")  # image-encoder attention: fused SDPA (sdpa.py) or segment-anything's own


def _load_strict(sam: Sam, state: dict, arch: str, path: Path) -> None:
    try:
        sam.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip()[:200]
        raise WeightsError(
            f"{path} is not a SAM {arch} checkpoint ({first})",
            hint=f"pass the original SAM {arch} weights, or choose the architecture that matches the file",
        ) from None


def load_sam(
    arch: str = "vit_h",
    checkpoint: Path | str | None = None,
    *,
    device: str | torch.device = "cpu",
    download: bool = True,
) -> Sam:
    """A frozen SAM in eval mode.

    `vit_h`/`vit_l`/`vit_b` come through the weights resolver (explicit path > cache >
    download); `tiny` (see `build_tiny_sam`) only from an explicit file.
    """
    if arch == "tiny":
        if checkpoint is None or not Path(checkpoint).is_file():
            raise WeightsError(
                f"tiny SAM checkpoint not found: {checkpoint}",
                hint="the tiny SAM is never downloaded; pass the file it was saved to",
            )
        path = Path(checkpoint)
        from gsavl_cli.segment.tiny import build_tiny_sam

        sam = build_tiny_sam()
    elif arch in SAM_ARCHS:
        explicit = Path(checkpoint) if checkpoint else None
        path = weights.resolve_weights(f"sam_{arch}", explicit, download=download)
        sam = sam_model_registry[arch](checkpoint=None)
    elif arch.startswith("sam2"):
        raise UsageError(
            f"{arch} is a SAM 2 model",
            hint=f"use it with --segmenter sam2 (--segmenter sam takes {', '.join(SAM_ARCHS)})",
        )
    else:
        raise UsageError(f"unknown SAM architecture '{arch}'", hint=f"available: {', '.join(SAM_ARCHS)}, tiny")
    _load_strict(sam, weights.load_state_dict(path), arch, path)
    return sam.eval().requires_grad_(False).to(device)


class SamSegmenter:
    """SAM with embeddings computed once per frame and batched prompt decoding.

    On CUDA the image encoder runs under bf16 autocast unless `bf16=False` (ignored on
    CPU); its features are kept in fp32 and the prompt encoder and decoder run in fp32.
    `attention="sdpa"` switches the image encoder's attention blocks (in place, on `sam`
    itself) to `torch.nn.functional.scaled_dot_product_attention`: equal to float
    rounding, faster and lighter (docs/performance.md); `"original"` keeps or restores
    segment-anything's own.
    """

    name = "sam"
    prompted = True
    needs: tuple[str, ...] = ()

    def __init__(
        self,
        sam: Sam,
        *,
        device: str | torch.device = "cpu",
        bf16: bool | None = None,
        attention: str = "sdpa",
    ) -> None:
        if attention not in ATTENTION_MODES:
            raise UsageError(f"unknown attention {attention!r}", hint=f"choose from {', '.join(ATTENTION_MODES)}")
        from gsavl_cli.segment import sdpa

        (sdpa.use_sdpa if attention == "sdpa" else sdpa.use_original)(sam)
        self.attention = attention
        self.device = torch.device(device)
        self.sam = sam.to(self.device).eval()
        self.bf16 = self.device.type == "cuda" and (bf16 is None or bf16)
        self.transform = ResizeLongestSide(sam.image_encoder.img_size)
        self.encoder_calls = 0

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def embed(self, images: list[np.ndarray], batch_size: int = 4) -> list[ImageEmbedding]:
        """Image-encoder features of RGB uint8 frames [H,W,3], `batch_size` frames per encoder pass."""
        if batch_size < 1:
            raise UsageError(f"batch_size must be >= 1, got {batch_size}")
        out: list[ImageEmbedding] = []
        for start in range(0, len(images), batch_size):
            out.extend(self._embed_batch([check_image(im) for im in images[start : start + batch_size]]))
        return out

    def _embed_batch(self, images: list[np.ndarray]) -> list[ImageEmbedding]:
        resized = [self.transform.apply_image(image) for image in images]
        with torch.inference_mode(), self._autocast():
            pixels = [torch.as_tensor(r, device=self.device).permute(2, 0, 1).float() for r in resized]
            batch = torch.stack([self.sam.preprocess(x) for x in pixels])
            features = self.sam.image_encoder(batch).float()
        self.encoder_calls += len(images)
        return [
            ImageEmbedding(features[i : i + 1], tuple(r.shape[:2]), tuple(im.shape[:2]))
            for i, (r, im) in enumerate(zip(resized, images))
        ]

    def segment(
        self, embedding: ImageEmbedding, prompts: Prompts, *, mask_choice: str = "single", heatmap: Any = None
    ) -> SegmentResult:
        """The mask for one prompt set, at the frame's original size."""
        return self.segment_many(embedding, [prompts], mask_choice=mask_choice, heatmap=heatmap)[0]

    def segment_many(
        self,
        embedding: ImageEmbedding,
        prompt_sets: list[Prompts],
        *,
        mask_choice: str = "single",
        heatmap: Any = None,
    ) -> list[SegmentResult]:
        """Masks for several prompt sets of one frame; sets with equal point counts share one decoder call."""
        check_mask_choice(mask_choice, heatmap)
        if embedding.features is None:
            raise UsageError("this embedding has no SAM features", hint="embed the frame with SamSegmenter")
        heat = None if heatmap is None else frame_heatmap(heatmap, embedding.original_size, self.device)
        groups: dict[int, list[int]] = {}
        for i, prompts in enumerate(prompt_sets):
            if len(prompts) == 0:
                raise UsageError("a prompt set has no points")
            groups.setdefault(len(prompts), []).append(i)
        results: list[SegmentResult | None] = [None] * len(prompt_sets)
        for indices in groups.values():
            decoded = self._decode(embedding, [prompt_sets[i] for i in indices], mask_choice, heat)
            for i, result in zip(indices, decoded):
                results[i] = result
        return results  # type: ignore[return-value]

    def _decode(
        self,
        embedding: ImageEmbedding,
        prompt_sets: list[Prompts],
        mask_choice: str,
        heat: torch.Tensor | None,
    ) -> list[SegmentResult]:
        coords = torch.as_tensor(np.stack([p.points for p in prompt_sets]), device=self.device)
        coords = self.transform.apply_coords_torch(coords, embedding.original_size)
        labels = np.stack([p.labels for p in prompt_sets])
        labels = torch.as_tensor(labels, device=self.device, dtype=torch.int)
        with torch.inference_mode():  # fp32: the decoder is cheap and bf16 would blur the point encodings
            sparse, dense = self.sam.prompt_encoder(points=(coords, labels), boxes=None, masks=None)
            low_res, iou = self.sam.mask_decoder(
                image_embeddings=embedding.features.to(self.device),
                image_pe=self.sam.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=mask_choice != "single",
            )
            logits = self.sam.postprocess_masks(low_res, embedding.input_size, embedding.original_size)
            masks = logits > self.sam.mask_threshold
            if mask_choice == "heatmap":
                choice = soft_iou(heat, masks).argmax(dim=1)
            elif mask_choice == "score":
                choice = iou.argmax(dim=1)
            else:
                choice = torch.zeros(len(prompt_sets), dtype=torch.long, device=self.device)
            rows = torch.arange(len(prompt_sets), device=self.device)
            chosen, scores = masks[rows, choice].cpu().numpy(), iou[rows, choice].tolist()
        return [
            SegmentResult(chosen[b], scores[b], candidates=masks.shape[1], choice_index=int(choice[b]))
            for b in range(len(prompt_sets))
        ]
