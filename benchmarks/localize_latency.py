"""Per-stage latency of `gsavl localize` for one 640x360 frame (random weights, nothing downloaded).

Stages: decode (probe + one frame + the audio, then the model's audio features),
heatmap (the localizer), sampler, SAM image encoder, and SAM prompt encoder + mask
decoder. The cheap stages are warmed up once and timed as the median of `--repeats`
runs; the image encoder runs `--encoder-repeats` times (default once). The target:
everything except the image encoder under 10% of the total on the CPU.

    python benchmarks/localize_latency.py [--sam-model vit_b|vit_l|vit_h] [--preset gsavl] [--bf16 (CUDA only)]
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import torch
from segment_anything import sam_model_registry

import _common
from gsavl_cli.io import media
from gsavl_cli import samplers
from gsavl_cli.data import synthetic
from gsavl_cli.commands.localize import EZVSL_SECONDS
from gsavl_cli.model import build_localizer, config_from_preset
from gsavl_cli.pipeline import Models, audio_features, batch_heatmaps
from gsavl_cli.segment import SAM_ARCHS, SamSegmenter


def decode(path: Path, config) -> tuple:
    """What `localize_one` does before the model: probe, one frame, the audio features."""
    info = media.probe(path)
    frame = media.read_frames(path, [0.0], info)[0]
    if config.audio_encoder == "vggish":
        waveform = media.read_audio(path)
    else:
        waveform = media.read_audio(path, start=0.0, duration=EZVSL_SECONDS)
    return frame, audio_features(waveform, config)


def median_seconds(device: str, fn, repeats: int) -> tuple[object, float]:
    fn()  # warm-up
    runs = [_common.timed(device, fn) for _ in range(repeats)]
    return runs[-1][0], statistics.median(s for _, s in runs)


def main() -> None:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--sam-model", default="vit_b", choices=SAM_ARCHS)
    p.add_argument("--preset", default="gsavl", choices=("gsavl", "ezvsl"))
    p.add_argument("--sampler", default="prob")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast for the SAM image encoder (CUDA only)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each cheap stage")
    p.add_argument("--encoder-repeats", type=int, default=1)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=360)
    args = p.parse_args()
    _common.setup(args)
    config = config_from_preset(args.preset)
    torch.manual_seed(0)
    localizer = build_localizer(config, pretrained=False).to(args.device).eval()
    models = Models(localizer, config, None, args.device)
    sam, build_s = _common.timed("cpu", lambda: sam_model_registry[args.sam_model]())
    segmenter = SamSegmenter(sam, device=args.device, bf16=args.bf16)
    stages: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="gsavl-bench-") as tmp:
        clip = synthetic.render_clip(Path(tmp) / "clip.mp4", seconds=5.0, width=args.width, height=args.height, fps=25, n_objects=3)
        (frame, audio), stages["decode_s"] = median_seconds("cpu", lambda: decode(clip.path, config), args.repeats)
    with torch.inference_mode():
        heat, stages["heatmap_s"] = median_seconds(args.device, lambda: batch_heatmaps(models, [frame], [audio], ("av",))["av"][0], args.repeats)
    prompts, stages["sampler_s"] = median_seconds(args.device, lambda: samplers.sample(args.sampler, heat, seed=0), args.repeats)
    encoder_runs = [_common.timed(args.device, lambda: segmenter.embed([frame])[0]) for _ in range(args.encoder_repeats)]
    embedding, stages["image_encoder_s"] = encoder_runs[-1][0], statistics.median(s for _, s in encoder_runs)
    _, stages["prompt_and_decoder_s"] = median_seconds(args.device, lambda: segmenter.segment(embedding, prompts, heatmap=heat), args.repeats)
    total = sum(stages.values())
    rest = total - stages["image_encoder_s"]
    figures = {
        **{k: round(v, 4) for k, v in stages.items()},
        "total_s": round(total, 3),
        "all_but_image_encoder_s": round(rest, 4),
        "share_all_but_image_encoder": round(rest / total, 4),
        "target_met": rest / total < 0.10,
        "sam_build_s": round(build_s, 2),
        "encoder_runs_s": [round(s, 3) for _, s in encoder_runs],
        "points": len(prompts),
    }
    _common.emit("localize_latency", args, {"sam_model": args.sam_model, "preset": args.preset, "sampler": args.sampler,
                                             "bf16": segmenter.bf16, "frame": f"{args.width}x{args.height}", "repeats": args.repeats,
                                             "weights": "random (timing only)"}, figures)


if __name__ == "__main__":
    main()
