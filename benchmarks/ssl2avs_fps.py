"""SSL2AVS inference speed (frames/s) and parameter counts beside the paper's (random weights, nothing downloaded).

Each frame goes through the whole model (image backbone, VGGish on its second of audio,
localization, feature enhancement, transformer head) as `model.predict` runs it. FLOPs
are torch's count of the matrix products and convolutions (2 per multiply-add; the
deformable sampling is not counted), a machine-independent size of the work. The
paper (seed 004) reports 136.45 M / 179.72 M parameters (table 7) and 96.39 / 80.06 FPS
at 224x224, 26.11 / 21.20 FPS at 512x512 (table 1) for ResNet-50 / PVT-v2-b5, on a GPU
it does not name.

    python benchmarks/ssl2avs_fps.py --device cuda [--bf16] [--backbone resnet50,pvt_v2_b5] [--size 224,512]
    python benchmarks/ssl2avs_fps.py --backbone tiny --size 64      # seconds, for tests
"""

from __future__ import annotations

import statistics

import _common
import torch
from torch.utils.flop_counter import FlopCounterMode

from gsavl_cli.model import config_from_preset
from gsavl_cli.model.ssl2avs import build_ssl2avs

PRESETS = {"resnet50": "ssl2avs-r50", "pvt_v2_b5": "ssl2avs-pvt", "tiny": "ssl2avs-tiny"}
PAPER = {  # seed 004: table 7 (parameters), table 1 (FPS; "*" rows are 512x512)
    "resnet50": {"params_m": 136.45, "fps": {224: 96.39, 512: 26.11}},
    "pvt_v2_b5": {"params_m": 179.72, "fps": {224: 80.06, 512: 21.20}},
}


def measure(backbone: str, size: int, args) -> dict:
    config = config_from_preset(PRESETS[backbone], image_size=size)
    model = build_ssl2avs(config, pretrained=False).to(args.device).eval()
    params = sum(p.numel() for p in model.parameters())
    images = torch.randn(args.batch_size, 3, size, size, device=args.device)
    audio = torch.randn(args.batch_size, 96, 64, device=args.device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=args.bf16)

    def run() -> None:
        with autocast:
            model.predict(images, audio)

    with FlopCounterMode(display=False) as counter:  # also the warm-up
        run()
    for _ in range(args.warmup - 1):
        run()
    seconds = [_common.timed(args.device, run)[1] for _ in range(args.repeats)]
    median = statistics.median(seconds)
    paper = PAPER.get(backbone, {})
    return {
        "backbone": backbone,
        "size": size,
        "batch_size": args.batch_size,
        "fps": round(args.batch_size / median, 2),
        "ms_per_frame": round(1000 * median / args.batch_size, 2),
        "gflops_per_frame": round(counter.get_total_flops() / args.batch_size / 1e9, 2),
        "params_m": round(params / 1e6, 2),
        "paper_params_m": paper.get("params_m"),
        "paper_fps": paper.get("fps", {}).get(size),
    }


def main() -> None:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--backbone", default="resnet50,pvt_v2_b5", help=f"comma-separated: {', '.join(PRESETS)}")
    p.add_argument("--size", default="224,512", help="comma-separated square frame sizes (multiples of 32)")
    p.add_argument("--batch-size", type=int, default=1, help="frames per forward pass")
    p.add_argument("--warmup", type=int, default=1, help="untimed passes (at least 1: it also counts the FLOPs)")
    p.add_argument("--repeats", type=int, default=3, help="timed passes (the median is reported)")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA only)")
    args = p.parse_args()
    _common.setup(args)
    backbones = [b.strip() for b in args.backbone.split(",") if b.strip()]
    unknown = sorted(set(backbones) - set(PRESETS))
    if unknown:
        p.error(f"unknown backbone(s) {', '.join(unknown)}; choose from {', '.join(PRESETS)}")
    sizes = [int(s) for s in args.size.split(",") if s.strip()]
    rows = [measure(b, s, args) for b in backbones for s in sizes]
    settings = {
        "batch_size": args.batch_size,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "bf16": args.bf16,
        "weights": "random",
    }
    _common.emit("ssl2avs_fps", args, settings, {"rows": rows})


if __name__ == "__main__":
    main()
