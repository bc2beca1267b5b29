"""Training samples/s of the gsavl and ezvsl presets on a small synthetic HDF5 (random init).

Renders a small synthetic world, preprocesses it, then trains each preset for two
epochs of `--steps` steps: the first is the warm-up, the second gives the figures
(samples/s and the share of the time spent waiting for data). On CUDA, `train` uses
bf16 autocast and channels-last by itself.

    python benchmarks/train_throughput.py [--batch-size 8] [--steps 3] [--presets gsavl,ezvsl]
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path

import _common

from gsavl_cli.commands.preprocess import make_settings, run_preprocess
from gsavl_cli.commands.train import EpochLog, TrainConfig, train
from gsavl_cli.data import synthetic
from gsavl_cli.datasets import discover
from gsavl_cli.model import config_from_preset


def build_store(root: Path, clips: int, width: int, height: int) -> Path:
    """A train-only synthetic world preprocessed into root/data.h5."""
    synthetic.render_world(
        root / "world", synthetic.WorldConfig(n_train=clips, n_val=0, n_test=0, width=width, height=height, fps=4)
    )
    layout, sources = discover(root / "world", "avsbench-s4", "train")
    output = root / "data.h5"
    result = run_preprocess(sources, output, make_settings(layout))
    if result.failed:
        raise SystemExit(f"preprocess failed: {result.failed[0].reason}")
    return output


def bench_preset(preset: str, data: Path, out: Path, args) -> dict[str, object]:
    logs: list[EpochLog] = []
    cfg = TrainConfig(
        data=data,
        out=out,
        model=config_from_preset(preset),
        epochs=2,
        batch_size=args.batch_size,
        workers=args.workers,
        device=args.device,
        pretrained=False,
        max_steps=args.steps,
    )
    train(cfg, on_epoch=logs.append)
    warm, measured = logs[0], logs[-1]
    return {
        "samples_per_s": round(measured.samples_per_s, 3),
        "seconds_per_step": round(measured.seconds / args.steps, 3),
        "data_wait_share": round(measured.data_wait_share, 4),
        "warmup_samples_per_s": round(warm.samples_per_s, 3),
        "measured_epoch": {k: v for k, v in asdict(measured).items() if k != "val"},
    }


def main() -> None:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=3, help="measured steps (after a warm-up epoch of as many)")
    p.add_argument("--presets", default="gsavl,ezvsl")
    p.add_argument("--workers", type=int, default=1, help="DataLoader workers")
    p.add_argument("--width", type=int, default=160)
    p.add_argument("--height", type=int, default=120)
    args = p.parse_args()
    _common.setup(args)
    presets = [s.strip() for s in args.presets.split(",") if s.strip()]
    clips = args.batch_size * args.steps  # drop_last: exactly `steps` full batches per epoch
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="gsavl-bench-") as tmp:
        data, seconds = _common.timed("cpu", lambda: build_store(Path(tmp), clips, args.width, args.height))
        figures["build_store_s"] = round(seconds, 2)
        for preset in presets:
            figures[preset] = bench_preset(preset, data, Path(tmp) / f"run_{preset}", args)
    _common.emit(
        "train_throughput",
        args,
        {
            "batch_size": args.batch_size,
            "steps": args.steps,
            "warmup_steps": args.steps,
            "presets": presets,
            "pretrained": False,
            "clips": clips,
            "workers": args.workers,
            "amp": "bf16 autocast" if args.device.startswith("cuda") else "off (fp32)",
        },
        figures,
    )


if __name__ == "__main__":
    main()
