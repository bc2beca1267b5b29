"""Frames/s of the whole evaluation loop (`gsavl eval`): heatmaps, SAM, samplers, metrics.

Renders N annotated synthetic test frames (AVSBench-S4 layout, 224x224 like S4),
preprocesses them, then runs `gsavl_cli.commands.evaluate.evaluate` (the Predictor path) with the av map and the
naive, grid and prob samplers, a random-init localizer and a random-weight SAM
(`--sam-model tiny` is a toy SAM for a quick check). Extrapolates to the 740 frames
of the S4 test split. `--audio all` runs the five audio conditions of the robustness table
over the same frames (each frame's image embedding computed once for all of them).

    python benchmarks/eval_throughput.py [--frames 8] [--sam-model vit_b|vit_l|vit_h|tiny] [--audio all]
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import _common
import torch
from segment_anything import sam_model_registry

from gsavl_cli.choices import AudioMode
from gsavl_cli.commands.evaluate import EvalSettings, condition_partners, evaluate
from gsavl_cli.commands.preprocess import make_settings, run_preprocess
from gsavl_cli.data import synthetic
from gsavl_cli.datasets import discover
from gsavl_cli.io.store import open_store
from gsavl_cli.model import build_localizer, config_from_preset
from gsavl_cli.predictor import Predictor, SamplerChoice
from gsavl_cli.segment import SAM_ARCHS, SamSegmenter
from gsavl_cli.segment.tiny import build_tiny_sam
from gsavl_cli.validation import validation_ids

S4_TEST_FRAMES = 740


def build_store(root: Path, frames: int, size: int) -> Path:
    """N annotated test clips of the synthetic world, preprocessed into root/data.h5."""
    synthetic.render_world(
        root / "world", synthetic.WorldConfig(n_train=0, n_val=0, n_test=frames, width=size, height=size, fps=4)
    )
    layout, sources = discover(root / "world", "avsbench-s4", "test")
    output = root / "data.h5"
    result = run_preprocess(sources, output, make_settings(layout))
    if result.failed:
        raise SystemExit(f"preprocess failed: {result.failed[0].reason}")
    return output


def make_sam(name: str):
    return build_tiny_sam() if name == "tiny" else sam_model_registry[name]()


def main() -> None:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=8, help=f"frames to evaluate (the S4 test split has {S4_TEST_FRAMES})")
    p.add_argument("--sam-model", default="vit_b", choices=(*SAM_ARCHS, "tiny"))
    p.add_argument("--samplers", default="naive,grid,prob")
    p.add_argument("--preset", default="gsavl", choices=("gsavl", "ezvsl"))
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--size", type=int, default=224, help="frame side in pixels (AVSBench S4 frames are 224x224)")
    p.add_argument("--audio", default="normal", choices=[m.value for m in AudioMode])
    p.add_argument("--bf16", action="store_true", help="bf16 autocast for the SAM image encoder (CUDA only)")
    args = p.parse_args()
    _common.setup(args)
    config = config_from_preset(args.preset)
    torch.manual_seed(0)
    segmenter = SamSegmenter(make_sam(args.sam_model), device=args.device, bf16=args.bf16)
    predictor = Predictor(build_localizer(config, pretrained=False), segmenter, device=args.device)
    with tempfile.TemporaryDirectory(prefix="gsavl-bench-") as tmp:
        data, build_s = _common.timed("cpu", lambda: build_store(Path(tmp), args.frames, args.size))
        settings = EvalSettings(
            data=data,
            checkpoint=Path("(in memory)"),
            maps=("av",),
            batch_size=args.batch_size,
            samplers=[SamplerChoice(s.strip()) for s in args.samplers.split(",")],
            audio=AudioMode(args.audio),
        )
        ids = validation_ids(data, "test")
        with open_store(data) as store:
            partners = condition_partners(store, ids, settings)
        output, seconds = _common.timed(args.device, lambda: evaluate(predictor, settings, ids, partners=partners))
    timings = {k: round(v, 3) if isinstance(v, float) else v for k, v in output.timings.items()}
    per_frame = seconds / len(ids)
    figures = {
        "frames": len(ids),
        "total_s": round(seconds, 3),
        "frames_per_s": round(len(ids) / seconds, 4),
        "seconds_per_frame": round(per_frame, 3),
        "timings": timings,
        "image_encoder_calls": output.timings["image_encoder_calls"],
        "mask_rows": sum(r["sampler"] is not None for r in output.rows),
        f"extrapolated_{S4_TEST_FRAMES}_frames_s": round(per_frame * S4_TEST_FRAMES, 1),
        f"extrapolated_{S4_TEST_FRAMES}_frames_min": round(per_frame * S4_TEST_FRAMES / 60, 2),
        "build_store_s": round(build_s, 2),
    }
    _common.emit(
        "eval_throughput",
        args,
        {
            "sam_model": args.sam_model,
            "maps": list(settings.maps),
            "samplers": [c.name for c in settings.samplers],
            "preset": args.preset,
            "batch_size": args.batch_size,
            "audio": [c.value for c in settings.audio.conditions()],
            "frame": f"{args.size}x{args.size}",
            "bf16": segmenter.bf16,
            "weights": "random (timing only)",
        },
        figures,
    )


if __name__ == "__main__":
    main()
