"""A whole clip with SAM 2.1: every frame encoded and prompted on its own, against `--propagate`'s video tracker.

Both modes run the same random-weight model (the published architecture of `--model`, from
`segmenter_cost.sam2_architecture`; the video model adds its memory encoder and attention) over
the same `--frames` random frames of `--size`: `per-frame` is `Sam2Segmenter.embed` + one decode
per frame (what `localize --every --segmenter sam2` does), `propagate` is `Sam2VideoTracker.step`
(prompted on the first frame, propagated after). Reports frames/s and peak memory (the process's
peak RSS, reset before each mode, as `sam_encoder.py` does; CUDA: max_memory_allocated). The two
modes run one after the other in one process, so compare them within a run.

    python benchmarks/sam2_video.py [--model sam2.1_hiera_t] [--frames 6] [--size 640x360]
"""

from __future__ import annotations

import os
from typing import Any

import _common
import numpy as np
import torch
from sam_encoder import peak_mib, reset_peak
from segmenter_cost import HIERA, sam2_architecture

from gsavl_cli.samplers import Prompts
from gsavl_cli.segment import Sam2Segmenter
from gsavl_cli.segment.sam2_video import Sam2VideoTracker


def build(model: str) -> tuple[Any, Any]:
    """(image model, video model) with the same random image weights."""
    from transformers import Sam2Model, Sam2VideoConfig, Sam2VideoModel

    from gsavl_cli.segment.tiny import build_tiny_sam2

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        if model == "sam2_tiny":
            video = build_tiny_sam2(image_size=256, hidden=128, video=True)
            image = build_tiny_sam2(image_size=256, hidden=128)
        else:
            config = sam2_architecture(model)
            image = Sam2Model(config)
            video = Sam2VideoModel(Sam2VideoConfig(vision_config=config.vision_config.to_dict()))
    shared = {k: v for k, v in image.state_dict().items() if k in video.state_dict()}
    video.load_state_dict(shared, strict=False)
    return image.eval().requires_grad_(False), video.eval().requires_grad_(False)


def main(argv: list[str] | None = None) -> None:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--model", default="sam2.1_hiera_t", choices=(*HIERA, "sam2_tiny"))
    p.add_argument("--frames", type=int, default=6)
    p.add_argument("--size", default="640x360", help="frame WIDTHxHEIGHT")
    args = p.parse_args(argv)
    _common.setup(args)
    width, height = (int(v) for v in args.size.lower().split("x"))
    load_start = [round(x, 2) for x in os.getloadavg()]
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(args.frames)]
    prompts = Prompts(np.array([[width / 2, height / 2]], np.float32), np.array([1]))
    image, video = build(args.model)
    figures: dict[str, Any] = {}

    def per_frame() -> None:
        segmenter = Sam2Segmenter(image, device=args.device)
        for frame in frames:
            segmenter.segment_many(segmenter.embed([frame])[0], [prompts])

    def propagate() -> None:
        tracker = Sam2VideoTracker(video, device=args.device)
        for k, frame in enumerate(frames):
            tracker.step(frame, prompts if k == 0 else None)

    for name, run in (("per_frame", per_frame), ("propagate", propagate)):
        floor = reset_peak(args.device)
        _, seconds = _common.timed(args.device, run)
        figures[name] = {
            "seconds": round(seconds, 3),
            "frames_per_s": round(args.frames / seconds, 4),
            "peak_memory_mib": round(peak_mib(args.device), 1),
            "memory_before_mib": round(floor, 1),
        }
    figures["propagate_time_ratio"] = round(figures["propagate"]["seconds"] / figures["per_frame"]["seconds"], 3)
    figures["load_average_start"] = load_start
    figures["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    settings = {
        "model": args.model,
        "frames": args.frames,
        "frame": f"{width}x{height} RGB",
        "weights": "random, published architecture (timing only)",
        "peak_memory": "cuda max_memory_allocated" if args.device.startswith("cuda") else "cpu peak RSS (VmHWM)",
    }
    _common.emit("sam2_video", args, settings, figures)


if __name__ == "__main__":
    main()
