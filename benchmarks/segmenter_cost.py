"""Per-frame segmenter cost: SAM (ViT) against SAM 2.1 (Hiera) through gsavl's segmenters, at the same frame.

Each model is built at its published architecture with random weights (timing only: SAM by
`sam_model_registry[arch](checkpoint=None)`, SAM 2.1 from the architecture of its config, the
`--segmenter sam2` path of `transformers.Sam2Model`), wrapped in the segmenter that `localize`
and `eval` use, and timed on one random RGB frame of `--size` (default 1280x720): `embed` (the
image encoder, the whole cost of a frame) and one single-mask decode of one prompt. The models
alternate within every repeat, so a change in the load of a shared machine hits all alike;
figures are medians, and `ratio_to_first` divides each model's per-frame time by the first's.
`tiny` and `sam2_tiny` are toy models (for the test that keeps this script running).

    python benchmarks/segmenter_cost.py [--models vit_b,sam2.1_hiera_t,sam2.1_hiera_l,vit_h] [--repeats 1] [--size 1280x720]
"""

from __future__ import annotations

import os
import statistics
from typing import Any

import _common
import numpy as np
import torch

from gsavl_cli.samplers import Prompts
from gsavl_cli.segment import SAM2_MODELS, SAM_ARCHS, Sam2Segmenter, SamSegmenter

# The SAM 2.1 Hiera trunks as Meta's configs give them (sam2/configs/sam2.1/*.yaml): width and heads of the first
# stage (doubled at every stage), blocks per stage, global-attention blocks, the background size of the windowed
# position embedding and the window per stage. Everything after the trunk is the library's default (256 wide).
HIERA: dict[str, dict[str, Any]] = {
    "sam2.1_hiera_t": {"width": 96, "heads": 1, "blocks": [1, 2, 7, 2], "global": [5, 7, 9], "bkg": [7, 7]},
    "sam2.1_hiera_s": {"width": 96, "heads": 1, "blocks": [1, 2, 11, 2], "global": [7, 10, 13], "bkg": [7, 7]},
    "sam2.1_hiera_b+": {"width": 112, "heads": 2, "blocks": [2, 3, 16, 3], "global": [12, 16, 20], "bkg": [14, 14]},
    "sam2.1_hiera_l": {
        "width": 144,
        "heads": 2,
        "blocks": [2, 6, 36, 4],
        "global": [23, 33, 43],
        "bkg": [7, 7],
        "window": [8, 4, 16, 8],
    },
}
TOYS = ("tiny", "sam2_tiny")


def sam2_architecture(model: str) -> Any:
    """A `transformers.Sam2Config` of the published SAM 2.1 model (what its hub config.json describes)."""
    from transformers import Sam2Config
    from transformers.models.sam2.configuration_sam2 import Sam2HieraDetConfig, Sam2VisionConfig

    spec = HIERA[model]
    dims = [spec["width"] * 2**i for i in range(4)]
    backbone = Sam2HieraDetConfig(
        hidden_size=spec["width"],
        num_attention_heads=spec["heads"],
        blocks_per_stage=spec["blocks"],
        embed_dim_per_stage=dims,
        num_attention_heads_per_stage=[spec["heads"] * 2**i for i in range(4)],
        window_size_per_stage=spec.get("window", [8, 4, 14, 7]),
        global_attention_blocks=spec["global"],
        window_positional_embedding_background_size=spec["bkg"],
    )
    return Sam2Config(vision_config=Sam2VisionConfig(backbone_config=backbone, backbone_channel_list=dims[::-1]))


def build(model: str) -> SamSegmenter | Sam2Segmenter:
    """The random-weight segmenter of `model` (seeded)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        if model == "tiny":
            from gsavl_cli.segment.tiny import build_tiny_sam

            return SamSegmenter(build_tiny_sam())
        if model in SAM_ARCHS:
            from segment_anything import sam_model_registry

            return SamSegmenter(sam_model_registry[model](checkpoint=None).eval().requires_grad_(False))
        from transformers import Sam2Model

        from gsavl_cli.segment.tiny import build_tiny_sam2

        sam2 = build_tiny_sam2() if model == "sam2_tiny" else Sam2Model(sam2_architecture(model))
        return Sam2Segmenter(sam2.eval().requires_grad_(False))


def main(argv: list[str] | None = None) -> None:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--models", default="vit_b,sam2.1_hiera_t,sam2.1_hiera_l", help="comma-separated, timed in order")
    p.add_argument("--repeats", type=int, default=1, help="timed frames per model")
    p.add_argument("--warmup", type=int, default=0, help="untimed frames per model first")
    p.add_argument("--size", default="1280x720", help="frame WIDTHxHEIGHT")
    args = p.parse_args(argv)
    _common.setup(args)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    known = (*SAM_ARCHS, *SAM2_MODELS, *TOYS)
    if not models or any(m not in known for m in models):
        p.error(f"--models: choose from {', '.join(known)}")
    width, height = (int(v) for v in args.size.lower().split("x"))
    load_start = [round(x, 2) for x in os.getloadavg()]
    frame = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    prompts = Prompts(np.array([[width / 2, height / 2]], np.float32), np.array([1]))
    segmenters: dict[str, Any] = {}
    params: dict[str, int] = {}
    build_s: dict[str, float] = {}
    for model in models:
        segmenters[model], build_s[model] = _common.timed("cpu", lambda: build(model))
        if args.device != "cpu":
            segmenters[model] = _moved(segmenters[model], args.device)
        net = getattr(segmenters[model], "sam", None) or segmenters[model].sam2
        params[model] = sum(t.numel() for t in net.parameters())

    def frame_cost(model: str) -> tuple[float, float]:
        segmenter = segmenters[model]
        embedding, embed_s = _common.timed(args.device, lambda: segmenter.embed([frame])[0])
        _, decode_s = _common.timed(args.device, lambda: segmenter.segment_many(embedding, [prompts]))
        return embed_s, decode_s

    for _ in range(args.warmup):
        for model in models:
            frame_cost(model)
    runs: dict[str, list[tuple[float, float]]] = {m: [] for m in models}
    for _ in range(args.repeats):
        for model in models:
            runs[model].append(frame_cost(model))
    figures: dict[str, Any] = {}
    for model in models:
        embed = statistics.median(e for e, _ in runs[model])
        decode = statistics.median(d for _, d in runs[model])
        figures[model] = {
            "params_m": round(params[model] / 1e6, 1),
            "embed_s": round(embed, 4),
            "decode_s": round(decode, 4),
            "per_frame_s": round(embed + decode, 4),
            "runs_s": [round(e + d, 4) for e, d in runs[model]],
            "build_s": round(build_s[model], 2),
        }
    first = figures[models[0]]["per_frame_s"]
    for model in models:
        figures[model]["ratio_to_first"] = round(figures[model]["per_frame_s"] / first, 3) if first > 0 else None
    figures["load_average_start"] = load_start
    figures["load_average_end"] = [round(x, 2) for x in os.getloadavg()]  # 1, 5, 15 min; 2 cores here = busy at 2
    settings = {
        "models": models,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "frame": f"{width}x{height} RGB",
        "prompt": "one positive point, single-mask decode",
        "weights": "random, published architectures (timing only)",
        "sam_attention": "sdpa (gsavl's default)",
    }
    _common.emit("segmenter_cost", args, settings, figures)


def _moved(segmenter: Any, device: str) -> Any:
    """The same segmenter rebuilt on `device`."""
    if isinstance(segmenter, SamSegmenter):
        return SamSegmenter(segmenter.sam, device=device)
    return Sam2Segmenter(segmenter.sam2, device=device)


if __name__ == "__main__":
    main()
