"""Segment Anything 2.1, frozen and zero-shot, through the SAM 2 models of `transformers` (`gsavl[sam2]`).

The same protocol as `sam.SamSegmenter`: `embed` runs the Hiera image encoder once per frame,
`segment_many` decodes every prompt set of the frame against it, sets with equal point counts in
one decoder call. Pre- and post-processing are the library's own (`Sam2Processor`: the frame
resized to 1024 x 1024, the points scaled to it, the low-resolution logits upsampled to the
frame and thresholded at 0), so the masks equal those of `Sam2Model` called the documented way
(tests/test_sam2.py checks it pixel for pixel).

SAM 2's decoder reads three feature levels (the 64 x 64 image embedding and two high-resolution
maps, 4x and 2x finer). `ImageEmbedding.features` holds them as one tensor [1, C, 64, 64]: the
finer maps folded into channels by `pixel_unshuffle` (exact, undone by `pixel_shuffle`), so the
Predictor, the batching and the embedding cache treat SAM 2 as they treat SAM.

Mask choice as for SAM: `single` is the decoder's one-mask output (`multimask_output=False`;
SAM 2 falls back to the most stable of its three masks when that one is unstable, as the
library does), `score` the highest predicted IoU, `heatmap` the best agreement with the heatmap.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from gsavl_cli import weights
from gsavl_cli.errors import UsageError
from gsavl_cli.samplers import Prompts
from gsavl_cli.segment.base import (
    ImageEmbedding,
    SegmentResult,
    check_image,
    check_mask_choice,
    frame_heatmap,
    soft_iou,
)

if TYPE_CHECKING:
    from transformers import Sam2Model, Sam2Processor

SAM2_MODELS = tuple(weights.SAM2_HUB_REPOS)
"""The SAM 2.1 models by gsavl's names (`--sam-model`): hiera tiny, small, base+, large."""
INSTALL_HINT = "pip install 'gsavl[sam2]' (SAM 2 runs on the transformers package)"


def require_transformers() -> None:
    """Refuses, in one line, to go on without the optional `transformers` (the `sam2` extra)."""
    weights.require_transformers("the sam2 segmenter", INSTALL_HINT)


def check_sam2_model(model: str) -> None:
    """Refuses a name that is not a SAM 2.1 model (a SAM one, say), naming the choices."""
    if model not in SAM2_MODELS:
        raise UsageError(
            f"the sam2 segmenter takes a SAM 2.1 model, not {model!r}",
            hint=f"pass --sam-model {'|'.join(SAM2_MODELS)} (vit_* models belong to --segmenter sam)",
        )


def sam2_folder(model: str, checkpoint: Path | str | None = None, *, download: bool = True) -> Path:
    """The folder holding `config.json` and `model.safetensors` of `model`: explicit > cache > download.

    `checkpoint` may be such a folder (what `save_pretrained` writes and the hub repo holds) or the
    `model.safetensors` inside one; without it both files come through the weights resolver.
    """
    return weights.hub_folder(
        model, weights.SAM2_FILES, checkpoint, what="SAM 2", saved_by="Sam2Model.save_pretrained", download=download
    )


def load_sam2(
    model: str = "sam2.1_hiera_l",
    checkpoint: Path | str | None = None,
    *,
    device: str | torch.device = "cpu",
    download: bool = True,
) -> Sam2Model:
    """A frozen SAM 2.1 (`transformers.Sam2Model`) in eval mode, its files through the resolver."""
    check_sam2_model(model)
    require_transformers()
    folder = sam2_folder(model, checkpoint, download=download)
    from transformers import Sam2Model

    sam2 = weights.from_pretrained_folder(Sam2Model, folder, "SAM 2 model")
    return sam2.eval().requires_grad_(False).to(device)


def make_processor(sam2: Sam2Model) -> Sam2Processor:
    """The library's processor for a model: its image side at the model's input size."""
    from transformers import Sam2ImageProcessor, Sam2Processor

    size = int(sam2.config.vision_config.backbone_config.image_size[0])
    return Sam2Processor(image_processor=Sam2ImageProcessor(size={"height": size, "width": size}))


class Sam2Segmenter:
    """SAM 2.1 with embeddings computed once per frame and batched prompt decoding (module docstring)."""

    name = "sam2"
    prompted = True
    needs: tuple[str, ...] = ()

    def __init__(self, sam2: Sam2Model, *, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.sam2 = sam2.to(self.device).eval()
        self.processor = make_processor(sam2)
        self.input_size = int(self.processor.target_size)
        sizes = [tuple(s) for s in sam2.config.vision_config.backbone_feature_sizes]
        self._levels = [(sizes[i][0] // sizes[-1][0], c) for i, c in enumerate(self._channels())]
        self.encoder_calls = 0

    def _channels(self) -> list[int]:
        decoder = self.sam2.mask_decoder
        return [
            decoder.conv_s0.out_channels,
            decoder.conv_s1.out_channels,
            self.sam2.config.vision_config.fpn_hidden_size,
        ]

    def pack(self, levels: list[torch.Tensor]) -> torch.Tensor:
        """The three feature levels [B,C_i,h_i,w_i] as one tensor at the coarsest size (exact; see `unpack`)."""
        return torch.cat([F.pixel_unshuffle(x, r) if r > 1 else x for x, (r, _) in zip(levels, self._levels)], dim=1)

    def unpack(self, features: torch.Tensor) -> list[torch.Tensor]:
        """The feature levels that `pack` folded, in the decoder's order (finest first)."""
        out, start = [], 0
        for r, channels in self._levels:
            width = channels * r * r
            chunk = features[:, start : start + width]
            out.append(F.pixel_shuffle(chunk, r) if r > 1 else chunk)
            start += width
        return out

    def embed(self, images: list[np.ndarray], batch_size: int = 4) -> list[ImageEmbedding]:
        """Image-encoder features of RGB uint8 frames [H,W,3], `batch_size` frames per encoder pass."""
        if batch_size < 1:
            raise UsageError(f"batch_size must be >= 1, got {batch_size}")
        out: list[ImageEmbedding] = []
        for start in range(0, len(images), batch_size):
            batch = [check_image(im) for im in images[start : start + batch_size]]
            pixels = self.processor(images=batch, return_tensors="pt")["pixel_values"].to(self.device)
            with torch.inference_mode():
                features = self.pack(self.sam2.get_image_embeddings(pixels)).float()
            self.encoder_calls += len(batch)
            size = (self.input_size, self.input_size)
            out.extend(ImageEmbedding(features[i : i + 1], size, im.shape[:2]) for i, im in enumerate(batch))
        return out

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
            raise UsageError("this embedding has no SAM 2 features", hint="embed the frame with Sam2Segmenter")
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

    def logits(
        self, embedding: ImageEmbedding, prompt_sets: list[Prompts], *, multimask: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The decoder's masks at the frame's size [P,K,H,W] (bool) and predicted IoUs [P,K], P prompt sets of equal length."""
        size = [list(embedding.original_size)]
        points = [[p.points.astype(np.float32).tolist() for p in prompt_sets]]
        labels = [[p.labels.astype(np.int64).tolist() for p in prompt_sets]]
        prompts = self.processor(original_sizes=size, input_points=points, input_labels=labels, return_tensors="pt")
        with torch.inference_mode():
            out = self.sam2(
                image_embeddings=self.unpack(embedding.features.to(self.device)),
                input_points=prompts["input_points"].to(self.device),
                input_labels=prompts["input_labels"].to(self.device),
                multimask_output=multimask,
            )
            masks = self.processor.post_process_masks(out.pred_masks, prompts["original_sizes"])[0]
        return masks, out.iou_scores[0]

    def _decode(
        self,
        embedding: ImageEmbedding,
        prompt_sets: list[Prompts],
        mask_choice: str,
        heat: torch.Tensor | None,
    ) -> list[SegmentResult]:
        masks, iou = self.logits(embedding, prompt_sets, multimask=mask_choice != "single")
        masks, iou = masks.to(self.device), iou.to(self.device)
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
