"""Does the model listen? SSL2AVS with and without negative-audio training, with and without abstention.

Renders a held-out synthetic AVSBench-S4 world in which every frame shows two objects of
different classes and the soundtrack belongs to one of them (only the sound says which),
trains `ssl2avs-tiny` from scratch twice (the paper's positive-only training, and
`--negative-audio` training), calibrates each model's abstention threshold on the val
split (`gsavl_cli.abstention`), and scores every annotated test frame, with its own
second of audio, under five conditions (AVSBench-Robust, Li et al. 2025):

- normal, shuffled (another test clip's audio, a seeded derangement): mask mIoU;
- silent, noise (full-scale white noise), offscreen (a clip of another category): the
  pixel false-positive rate (share of the frame predicted foreground, averaged over
  frames) and the abstention failure rate (share of frames that get any mask at all);

once as the model answers and once with abstention on: `gsavl eval --audio all` and
`gsavl eval --audio all --abstain`, run through `run_evaluation`.

    python benchmarks/listening.py                                 # ~45 min on 2 CPU cores
    python benchmarks/listening.py --checkpoints paper=a.pt,listen=b.pt --data s4.h5   # evaluate only
    python benchmarks/listening.py --train 4 --val 2 --test 2 --epochs 1   # seconds, for tests
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import _common

from gsavl_cli.abstention import calibrate, store_calibration
from gsavl_cli.predictor import Predictor


def _world(folder: Path, args) -> Path:
    from gsavl_cli.commands.preprocess import make_settings, run_preprocess
    from gsavl_cli.data.synthetic import WorldConfig, render_world
    from gsavl_cli.datasets import discover

    low, high = (float(x) for x in args.scale.split(","))
    config = WorldConfig(
        n_train=args.train,
        n_val=args.val,
        n_test=args.test,
        n_classes=4,
        objects=(2, 2),
        object_scale=(low, high),
        seed=args.world_seed,
    )
    render_world(folder / "world", config)
    layout, clips = discover(folder / "world", "avsbench-s4")
    out = folder / "world.h5"
    run_preprocess(clips, out, make_settings(layout))
    return out


def _train(data: Path, out: Path, negatives: float, args) -> Path:
    from gsavl_cli.commands.train import TrainConfig, train
    from gsavl_cli.model import config_from_preset

    config = TrainConfig(
        data=data,
        out=out,
        model=config_from_preset("ssl2avs-tiny"),
        epochs=args.epochs,
        batch_size=4,
        lr=1e-3,
        workers=0,
        pretrained=False,
        frames="annotated",
        negative_audio=negatives,
        seed=1,
        device=args.device,
    )
    return train(config)


def _table(data: Path, checkpoint: Path, out: Path, args, abstain: bool) -> dict[str, Any]:
    """`gsavl eval --audio all` (every annotated test frame, each with its own second of audio): one row per condition."""
    from gsavl_cli.choices import AudioMode, FrameMode
    from gsavl_cli.commands.evaluate import EvalSettings, run_evaluation
    from gsavl_cli.console import progress
    from gsavl_cli.predictor import SamplerChoice

    settings = EvalSettings(
        data=data,
        checkpoint=checkpoint,
        out=out,
        frames=FrameMode.all,
        maps=(args.map,) if args.map else None,
        samplers=[SamplerChoice("prob")],
        segmenter=args.segmenter,
        audio=AudioMode.all,
        abstain=abstain,
        device=args.device,
        seed=args.seed,
    )
    found = run_evaluation(settings, progress=progress)
    keep = ("n", "miou", "fpr", "abstention_failure")
    return {condition: {k: row.get(k) for k in keep} for condition, row in found["robustness"].items()}


def main() -> None:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--train", type=int, default=96)
    p.add_argument("--val", type=int, default=16)
    p.add_argument("--test", type=int, default=16)
    p.add_argument("--scale", default="0.2,0.3", help="object radius range (fraction of the short side)")
    p.add_argument("--world-seed", type=int, default=29)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--negative-audio", type=float, default=0.5)
    p.add_argument("--data", type=Path, default=None, help="an existing store (with --checkpoints): no rendering")
    p.add_argument("--checkpoints", default=None, help="name=path,...: evaluate these instead of training")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--segmenter", default=None, help="default: the model's own (SSL2AVS: its mask head; a localizer: SAM)"
    )
    p.add_argument("--map", default=None, help="heatmap to prompt from (default: the predictor's)")
    args = p.parse_args()
    _common.setup(args)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = args.data or _world(folder, args)
        if args.checkpoints:
            runs = {k: Path(v) for k, v in (item.split("=", 1) for item in args.checkpoints.split(","))}
        else:
            runs = {
                "paper": _train(data, folder / "paper", 0.0, args),
                "listen": _train(data, folder / "listen", args.negative_audio, args),
            }
        figures: dict[str, Any] = {}
        for name, given in runs.items():
            checkpoint = folder / f"{name}.calibrated.pt"
            shutil.copyfile(given, checkpoint)
            predictor = Predictor.from_checkpoint(checkpoint, device=args.device, segmenter=args.segmenter)
            calibration = calibrate(predictor, data, "val", seed=args.seed)
            store_calibration(checkpoint, calibration)
            figures[name] = {
                "calibration": calibration.to_dict(),
                "as_is": _table(data, checkpoint, folder / f"{name}-as-is", args, abstain=False),
                "abstaining": _table(data, checkpoint, folder / f"{name}-abstaining", args, abstain=True),
            }
    settings = {k: v for k, v in vars(args).items() if k not in ("device", "threads")}
    _common.emit("listening", args, {k: str(v) if isinstance(v, Path) else v for k, v in settings.items()}, figures)


if __name__ == "__main__":
    main()
