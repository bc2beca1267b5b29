"""Segment Anything, frozen and zero-shot: point prompts -> a binary mask (METHOD.md §5).

The image embedding (the expensive ViT pass) is computed once per frame by
`SamSegmenter.embed` and reused for every prompt set, sampler and heatmap; the
prompt encoder and mask decoder are called directly, as `SamPredictor.predict_torch`
does, so several prompt sets go through the decoder in one batch.

Mask choice among SAM's outputs:
- `single`: `multimask_output=False`, the one mask SAM returns (the paper's setting);
- `score`: three masks, the one with the highest predicted IoU;
- `heatmap`: three masks, the one that agrees best with the heatmap.

Agreement between a heatmap h in [0,1] and a binary mask m is the soft IoU
sum(min(h, m)) / sum(max(h, m)) = (heat inside m) / (area of m + heat outside m). It
is 1 only when the heatmap equals the mask, it is bounded in [0,1] (so a threshold
means the same on every frame) and it penalises both a mask that misses the heat and
one that spills over cold pixels, which a divergence between the two maps normalised
as distributions does not do for spill-over. The same measure drives the cascade's
stop rule.

`ThresholdSegmenter` has the same interface and thresholds the heatmap at its median
(the VGG-SS protocol), the no-SAM baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from segment_anything import sam_model_registry
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer
from segment_anything.utils.transforms import ResizeLongestSide

from gsavl_cli import samplers, weights
from gsavl_cli.errors import UsageError, WeightsError
from gsavl_cli.metrics import median_threshold
from gsavl_cli.samplers import Prompts

SAM_ARCHS = ("vit_h", "vit_l", "vit_b")
MASK_CHOICES = ("single", "score", "heatmap")


@dataclass
class ImageEmbedding:
    """One frame's SAM features [1,C,h,w] (None for the threshold baseline) and its sizes as (H, W)."""

    features: torch.Tensor | None
    input_size: tuple[int, int]
    original_size: tuple[int, int]


@dataclass
class SegmentResult:
    """A mask at the frame's size, SAM's predicted IoU for it, and how it was chosen."""

    mask: np.ndarray
    score: float
    candidates: int
    choice_index: int
    rounds: int = 1
    agreement: float = float("nan")


class Segmenter(Protocol):
    """What the pipeline needs from a segmenter (`SamSegmenter` or `ThresholdSegmenter`)."""

    name: str
    encoder_calls: int

    def embed(self, images: list[np.ndarray], batch_size: int = 4) -> list[ImageEmbedding]: ...

    def segment(self, embedding: ImageEmbedding, prompts: Prompts, **kwargs: Any) -> SegmentResult: ...

    def segment_many(
        self, embedding: ImageEmbedding, prompt_sets: list[Prompts], **kwargs: Any
    ) -> list[SegmentResult]: ...

    def cascade(
        self, embedding: ImageEmbedding, heatmap: Any, sampler: str, generator: torch.Generator, **kwargs: Any
    ) -> SegmentResult: ...


def build_tiny_sam(
    img_size: int = 64, embed_dim: int = 32, depth: int = 2, heads: int = 2, seed: int = 0
) -> Sam:
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
                transformer=TwoWayTransformer(
                    depth=2, embedding_dim=embed_dim, mlp_dim=2 * embed_dim, num_heads=heads
                ),
                num_multimask_outputs=3,
                iou_head_depth=3,
                iou_head_hidden_dim=embed_dim,
            ),
        )
    return sam.eval()


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
        sam = build_tiny_sam()
    elif arch in SAM_ARCHS:
        explicit = Path(checkpoint) if checkpoint else None
        path = weights.resolve_weights(f"sam_{arch}", explicit, download=download)
        sam = sam_model_registry[arch](checkpoint=None)
    else:
        raise UsageError(
            f"unknown SAM architecture '{arch}'", hint=f"available: {', '.join(SAM_ARCHS)}, tiny"
        )
    _load_strict(sam, weights.load_state_dict(path), arch, path)
    return sam.eval().requires_grad_(False).to(device)


def soft_iou(heatmap: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Agreement of a heatmap [H,W] with binary masks [...,H,W]: sum(min) / sum(max).

    The heatmap is clamped to [0,1]; the score is 0 when both are empty.
    """
    heat = heatmap.clamp(0, 1)
    m = masks.to(heat.dtype)
    inter = (heat * m).sum(dim=(-2, -1))
    union = torch.maximum(heat, m).sum(dim=(-2, -1))
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(union))


def _check_image(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        raise UsageError(f"SAM needs RGB frames as [H,W,3] uint8 arrays, got {shape}")
    return image


def _frame_heatmap(heatmap: Any, size: tuple[int, int], device: torch.device) -> torch.Tensor:
    heat = samplers.as_heatmap(heatmap).to(device)
    if tuple(heat.shape) != tuple(size):
        raise UsageError(
            f"heatmap {tuple(heat.shape)} and frame {tuple(size)} differ in size",
            hint="upsample the heatmap to the frame's size first",
        )
    return heat


def _check_choice(mask_choice: str, heatmap: Any) -> None:
    if mask_choice not in MASK_CHOICES:
        raise UsageError(f"unknown mask choice '{mask_choice}'", hint=f"available: {', '.join(MASK_CHOICES)}")
    if mask_choice == "heatmap" and heatmap is None:
        raise UsageError("mask choice 'heatmap' needs the heatmap")


class SamSegmenter:
    """SAM with embeddings computed once per frame and batched prompt decoding.

    On CUDA the image encoder runs under bf16 autocast unless `bf16=False` (ignored on
    CPU); its features are kept in fp32 and the prompt encoder and decoder run in fp32.
    """

    name = "sam"

    def __init__(self, sam: Sam, *, device: str | torch.device = "cpu", bf16: bool | None = None) -> None:
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
            out.extend(self._embed_batch([_check_image(im) for im in images[start : start + batch_size]]))
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
        _check_choice(mask_choice, heatmap)
        if embedding.features is None:
            raise UsageError("this embedding has no SAM features", hint="embed the frame with SamSegmenter")
        heat = None if heatmap is None else _frame_heatmap(heatmap, embedding.original_size, self.device)
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

    def cascade(
        self,
        embedding: ImageEmbedding,
        heatmap: Any,
        sampler: str,
        generator: torch.Generator,
        *,
        rounds: int = 3,
        threshold: float = 0.3,
        mask_choice: str = "single",
        **sampler_params: Any,
    ) -> SegmentResult:
        """Cascade refinement: re-prompt away from masks that disagree with the heatmap.

        Each round samples prompts, segments, and scores the mask's soft IoU with the
        original heatmap. Below `threshold` (and with rounds left) the rejected mask's
        region is zeroed in the sampling map, which is renormalised to max 1, and the
        next round samples from what is left (the cascade also stops when nothing is
        left). Returns the best-agreeing round's mask (the earliest on ties) with
        `rounds` = rounds run and its `agreement`; `rounds=1` is plain prompting.
        """
        if rounds < 1:
            raise UsageError(f"cascade rounds must be >= 1, got {rounds}")
        heat = _frame_heatmap(heatmap, embedding.original_size, self.device)
        current, best, used = heat, None, 0
        for used in range(1, rounds + 1):
            prompts = samplers.sample(sampler, current, generator=generator, **sampler_params)
            result = self.segment(embedding, prompts, mask_choice=mask_choice, heatmap=heat)
            mask = torch.from_numpy(result.mask).to(self.device)
            result.agreement = float(soft_iou(heat, mask))
            if best is None or result.agreement > best.agreement:
                best = result
            if result.agreement >= threshold:
                break
            current = current * ~mask
            peak = current.max()
            if not bool(peak > 0):
                break
            current = current / peak
        return replace(best, rounds=used)


class ThresholdSegmenter:
    """The no-SAM baseline: the heatmap thresholded at its median (VGG-SS protocol); prompts are ignored."""

    name = "threshold"

    def __init__(self, *, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.encoder_calls = 0

    def embed(self, images: list[np.ndarray], batch_size: int = 4) -> list[ImageEmbedding]:
        """Size-only embeddings: there is no image encoder."""
        return [ImageEmbedding(None, im.shape[:2], im.shape[:2]) for im in map(_check_image, images)]

    def segment(
        self,
        embedding: ImageEmbedding,
        prompts: Prompts | None = None,
        *,
        mask_choice: str = "single",
        heatmap: Any = None,
    ) -> SegmentResult:
        """heatmap >= the value at index int(N/2) of its sorted pixels."""
        if heatmap is None:
            raise UsageError("the threshold segmenter needs the heatmap")
        heat = _frame_heatmap(heatmap, embedding.original_size, self.device)
        mask = heat >= median_threshold(heat)
        return SegmentResult(
            mask=mask.cpu().numpy(),
            score=float("nan"),
            candidates=1,
            choice_index=0,
            agreement=float(soft_iou(heat, mask)),
        )

    def segment_many(
        self,
        embedding: ImageEmbedding,
        prompt_sets: list[Prompts],
        *,
        mask_choice: str = "single",
        heatmap: Any = None,
    ) -> list[SegmentResult]:
        """One (identical) thresholded mask per prompt set."""
        return [self.segment(embedding, p, mask_choice=mask_choice, heatmap=heatmap) for p in prompt_sets]

    def cascade(
        self, embedding: ImageEmbedding, heatmap: Any, sampler: str, generator: torch.Generator, **kwargs: Any
    ) -> SegmentResult:
        """The thresholded mask (one round: there is nothing to re-prompt)."""
        return self.segment(embedding, heatmap=heatmap)
