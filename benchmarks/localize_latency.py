"""Per-stage latency of `gsavl localize` for one 640x360 frame through the Predictor (random weights, nothing downloaded).

Stages: decode (probe + one frame + the audio), set_clip (the model's audio features
and the SAM image encoder, once per clip), heatmap (localizer + upsampling), and
predict (sampler + SAM prompt encoder and mask decoder). The cheap stages are warmed
up once and timed as the median of `--repeats` runs; set_clip runs `--encoder-repeats`
times (default once). The target: everything except set_clip under 10% of the total on the CPU.

    python benchmarks/localize_latency.py [--sam-model vit_b|vit_l|vit_h|tiny] [--preset gsavl] [--bf16 (CUDA only)]
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import _common
import torch
from segment_anything import sam_model_registry

from gsavl_cli.data import synthetic
from gsavl_cli.io import media
from gsavl_cli.model import build_localizer, config_from_preset
from gsavl_cli.predictor import Predictor
from gsavl_cli.segment import SAM_ARCHS, SamSegmenter
from gsavl_cli.segment.tiny import build_tiny_sam


def decode(path: Path) -> tuple:
    """What `localize_one` does before the Predictor: probe, one frame, the audio."""
    info = media.probe(path)
    return media.read_frames(path, [0.0], info)[0], media.read_audio(path)


def median_seconds(device: str, fn, repeats: int) -> tuple[object, float]:
    fn()  # warm-up
    runs = [_common.timed(device, fn) for _ in range(repeats)]
    return runs[-1][0], statistics.median(s for _, s in runs)


def main() -> None:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--sam-model", default="vit_b", choices=(*SAM_ARCHS, "tiny"))
    p.add_argument("--preset", default="gsavl", choices=("gsavl", "ezvsl"))
    p.add_argument("--sampler", default="prob")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast for the SAM image encoder (CUDA only)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each cheap stage")
    p.add_argument("--encoder-repeats", type=int, default=1)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=360)
    p.add_argument("--seconds", type=float, default=5.0, help="clip length")
    args = p.parse_args()
    _common.setup(args)
    config = config_from_preset(args.preset, audio_seconds=3.0 if args.preset == "gsavl" else None)
    torch.manual_seed(0)
    localizer = build_localizer(config, pretrained=False)
    sam, build_s = _common.timed(
        "cpu", lambda: build_tiny_sam() if args.sam_model == "tiny" else sam_model_registry[args.sam_model]()
    )
    predictor = Predictor(localizer, SamSegmenter(sam, device=args.device, bf16=args.bf16), device=args.device)
    stages: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="gsavl-bench-") as tmp:
        clip = synthetic.render_clip(
            Path(tmp) / "clip.mp4", seconds=args.seconds, width=args.width, height=args.height, fps=25, n_objects=3
        )
        (frame, wave), stages["decode_s"] = median_seconds("cpu", lambda: decode(clip.path), args.repeats)
    runs = [
        _common.timed(args.device, lambda: predictor.set_clip(frame, wave, key="clip"))
        for _ in range(args.encoder_repeats)
    ]
    stages["set_clip_s"] = statistics.median(s for _, s in runs)

    def heatmap():
        predictor.clip.coarse.clear()
        predictor.clip.heat.clear()
        return predictor.heatmaps(("av",))

    _, stages["heatmap_s"] = median_seconds(args.device, heatmap, args.repeats)
    found, stages["predict_s"] = median_seconds(
        args.device, lambda: predictor.predict("av", args.sampler), args.repeats
    )
    total = sum(stages.values())
    rest = total - stages["set_clip_s"]
    figures = {
        **{k: round(v, 4) for k, v in stages.items()},
        "total_s": round(total, 3),
        "all_but_set_clip_s": round(rest, 4),
        "share_all_but_set_clip": round(rest / total, 4),
        "target_met": rest / total < 0.10,
        "sam_build_s": round(build_s, 2),
        "set_clip_runs_s": [round(s, 3) for _, s in runs],
        "points": len(found.points),
    }
    _common.emit(
        "localize_latency",
        args,
        {
            "sam_model": args.sam_model,
            "preset": args.preset,
            "sampler": args.sampler,
            "bf16": predictor.segmenter.bf16,
            "frame": f"{args.width}x{args.height}",
            "repeats": args.repeats,
            "weights": "random (timing only)",
        },
        figures,
    )


if __name__ == "__main__":
    main()
