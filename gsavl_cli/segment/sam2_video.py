"""SAM 2.1's video predictor as a tracker: prompt it on a frame, it carries the mask to the next ones.

`localize --every S --segmenter sam2 --propagate` streams the sampled frames through
`transformers.Sam2VideoModel` one at a time (the library's streaming mode): a frame is either
*prompted* (points from the heatmap; the tracking state starts again there, as a new object
may be sounding) or *propagated* (the model's memory of the earlier frames gives the mask).
Which one is the caller's rule (`commands.localize_video`).

Memory stays bounded on long clips: after each frame the tracker drops the frames' pixels
before the current one and the per-frame memories older than the model's memory window
(`num_maskmem` frames of mask memory, `max_object_pointers_in_encoder` object pointers), so it
holds a fixed number of frames whatever the clip's length.

The tracker is also the Predictor's segmenter during such a run: its `embed` computes no
image features (the video model encodes each frame itself, once), so the Predictor only makes
the heatmaps.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gsavl_cli.errors import UsageError, WeightsError
from gsavl_cli.samplers import Prompts
from gsavl_cli.segment.base import ImageEmbedding, SegmentResult, check_image
from gsavl_cli.segment.sam2 import check_sam2_model, require_transformers, sam2_folder

if TYPE_CHECKING:
    from transformers import Sam2VideoModel, Sam2VideoProcessor

OBJECT_ID = 1  # one sounding object at a time


def load_sam2_video(
    model: str = "sam2.1_hiera_l",
    checkpoint: Path | str | None = None,
    *,
    device: str | torch.device = "cpu",
    download: bool = True,
) -> Sam2VideoModel:
    """A frozen SAM 2.1 video model (`transformers.Sam2VideoModel`), its files through the resolver."""
    check_sam2_model(model)
    require_transformers()
    folder = sam2_folder(model, checkpoint, download=download)
    from transformers import Sam2VideoModel
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        video, info = Sam2VideoModel.from_pretrained(folder, local_files_only=True, output_loading_info=True)
    except (OSError, ValueError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise WeightsError(
            f"{folder} does not hold a SAM 2 video model ({first})", hint="pass the SAM 2.1 folder"
        ) from None
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    if info.get("missing_keys") or info.get("mismatched_keys"):
        raise WeightsError(
            f"{folder} lacks the weights of SAM 2's video predictor (memory encoder and attention)",
            hint="pass the full SAM 2.1 model (the hub repo's model.safetensors), not an image-only one",
        )
    return video.eval().requires_grad_(False).to(device)


def make_video_processor(video: Sam2VideoModel) -> Sam2VideoProcessor:
    """The library's video processor for a model, at the model's input size."""
    from transformers import Sam2ImageProcessor, Sam2VideoProcessor
    from transformers.models.sam2_video.video_processing_sam2_video import Sam2VideoVideoProcessor

    size = int(video.config.vision_config.backbone_config.image_size[0])
    square = {"height": size, "width": size}
    return Sam2VideoProcessor(
        image_processor=Sam2ImageProcessor(size=square), video_processor=Sam2VideoVideoProcessor(size=square)
    )


class Sam2VideoTracker:
    """Streams frames through SAM 2's video predictor (module docstring); `prompt` restarts the track."""

    name = "sam2"
    prompted = True
    needs: tuple[str, ...] = ()

    def __init__(self, video: Sam2VideoModel, *, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.video = video.to(self.device).eval()
        self.processor = make_video_processor(video)
        config = video.config
        self.window = max(int(config.num_maskmem), int(config.max_object_pointers_in_encoder))
        self.encoder_calls = 0
        self.reset()

    def reset(self) -> None:
        """Forgets every frame: the next `step` starts a new clip."""
        self.session = self.processor.init_video_session(inference_device=self.device, dtype=torch.float32)
        self.index = -1
        self._size: tuple[int, int] | None = None

    # -- the segmenter protocol, for the Predictor's heatmaps -------------------------------

    def embed(self, images: list[np.ndarray], batch_size: int = 4) -> list[ImageEmbedding]:
        """Size-only embeddings: the video model encodes each frame itself when it is stepped."""
        return [ImageEmbedding(None, im.shape[:2], im.shape[:2]) for im in map(check_image, images)]

    def segment_many(
        self, embedding: ImageEmbedding, prompt_sets: list[Prompts], *, mask_choice: str = "single", heatmap: Any = None
    ) -> list[SegmentResult]:
        """Not per frame: a tracker's masks depend on the frames before (use `step`)."""
        raise UsageError(
            "the SAM 2 video tracker segments a stream of frames", hint="use --segmenter sam2 without --propagate"
        )

    # -- tracking ------------------------------------------------------------------------------

    def step(self, frame: np.ndarray, prompts: Prompts | None = None) -> SegmentResult:
        """The next frame's mask: from `prompts` (a new track starts here) or propagated from the frames before."""
        check_image(frame)
        if prompts is None and self.index < 0:
            raise UsageError("the first frame of a track needs prompts")
        inputs = self.processor(images=frame, return_tensors="pt")
        self.index += 1
        self._size = tuple(int(v) for v in inputs["original_sizes"][0])  # type: ignore[assignment]
        if prompts is not None:
            self._add_prompts(prompts, inputs["original_sizes"][0])
        with torch.inference_mode():
            pixels = inputs["pixel_values"][0].to(self.device)
            out = self.video(inference_session=self.session, frame=pixels, frame_idx=self.index)  # older frames dropped
        self.encoder_calls += 1
        self._forget_old()
        return self._result(out)

    def prompt(self, prompts: Prompts) -> SegmentResult:
        """The current frame again, from `prompts`: the track restarts on this frame (its features are kept)."""
        if self.index < 0 or self._size is None:
            raise UsageError("no frame to prompt yet", hint="step a frame first")
        self._add_prompts(prompts, torch.tensor(self._size))
        with torch.inference_mode():
            out = self.video(inference_session=self.session, frame_idx=self.index)
        return self._result(out)

    def _add_prompts(self, prompts: Prompts, size: torch.Tensor) -> None:
        if len(prompts) == 0:
            raise UsageError("a prompt set has no points")
        self.session.reset_tracking_data()  # the sounding object may have changed: a new track, not a correction
        self.processor.add_inputs_to_inference_session(
            self.session,
            frame_idx=self.index,
            obj_ids=OBJECT_ID,
            input_points=[[prompts.points.astype(np.float32).tolist()]],
            input_labels=[[prompts.labels.astype(np.int64).tolist()]],
            original_size=size,
        )

    def _result(self, out: Any) -> SegmentResult:
        masks = self.processor.post_process_masks([out.pred_masks], original_sizes=[list(self._size)], binarize=True)[0]
        score = float(torch.sigmoid(out.object_score_logits.float().flatten()[0]))
        return SegmentResult(masks[0, 0].cpu().numpy(), score, candidates=1, choice_index=0)

    def _forget_old(self) -> None:
        """Drops what no later frame reads: older frames' pixels and memories outside the window."""
        frames = self.session.processed_frames or {}
        for old in [i for i in frames if i < self.index]:
            del frames[old]
        for outputs in self.session.output_dict_per_obj.values():
            memory = outputs["non_cond_frame_outputs"]
            for old in [i for i in memory if i < self.index - self.window]:
                del memory[old]
