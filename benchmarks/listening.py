"""Does the model listen? SSL2AVS with and without negative-audio training, with and without abstention.

Renders a held-out synthetic AVSBench-S4 world in which every frame shows two objects of
different classes and the soundtrack belongs to one of them (only the sound says which),
trains `ssl2avs-tiny` from scratch twice (the paper's positive-only training, and
`--negative-audio` training), calibrates each model's abstention threshold on the val
split (`gsavl_cli.abstention`), and scores every annotated test frame, with its own
second of audio, under five conditions (AVSBench-Robust, Li et al. 2025):

- normal, shuffled (another test clip's audio, a seeded derangement): mask mIoU;
- silence, noise (white, -20 dBFS RMS), offscreen (a clip of another category): the
  pixel false-positive rate (share of the frame predicted foreground, averaged over
  frames) and the share of frames that get any mask at all;

once as the model answers and once with abstention on.

    python benchmarks/listening.py                                 # ~45 min on 2 CPU cores
    python benchmarks/listening.py --checkpoints paper=a.pt,listen=b.pt --data s4.h5   # evaluate only
    python benchmarks/listening.py --train 4 --val 2 --test 2 --epochs 1   # seconds, for tests
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import _common
import numpy as np

from gsavl_cli import metrics
from gsavl_cli.abstention import calibrate, negative_waveform
from gsavl_cli.io.store import open_store
from gsavl_cli.predictor import Predictor
from gsavl_cli.validation import ground_truth

CONDITIONS = ("normal", "shuffled", "silence", "noise", "offscreen")
NEGATIVE = ("silence", "noise", "offscreen")


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


def _frames(data: Path, split: str) -> list[tuple[str, str, np.ndarray, float, np.ndarray, np.ndarray]]:
    """(clip, category, frame, time, waveform, mask) of every annotated frame of `split`."""
    out = []
    with open_store(data) as store:
        for clip in store.split_ids(split):
            item = store.read(clip, ("frames", "frame_times", "waveform", "masks", "mask_frames"))
            category = str(store.meta(clip).get("category", ""))
            for index in (int(i) for i in item["mask_frames"]):
                frame = item["frames"][index]
                truth = ground_truth(item, frame.shape[:2], index)
                out.append((clip, category, frame, float(item["frame_times"][index]), item["waveform"], truth))
    return out


def _audio_for(condition: str, frames, rng: np.random.Generator) -> list[np.ndarray]:
    clips = sorted({f[0] for f in frames})
    waves = {f[0]: f[4] for f in frames}
    category = {f[0]: f[1] for f in frames}
    order = [clips[i] for i in rng.permutation(len(clips))]
    partner = {order[i]: order[(i + 1) % len(order)] for i in range(len(order))}
    out = []
    for clip, _, _, _, wave, _ in frames:
        if condition == "normal":
            out.append(wave)
        elif condition == "shuffled":
            out.append(waves[partner[clip]])
        elif condition == "offscreen":
            others = [c for c in clips if category[c] != category[clip]] or [partner[clip]]
            out.append(waves[others[int(rng.integers(len(others)))]])
        else:
            out.append(negative_waveform(condition, wave, rng))
    return out


def _score(predictor: Predictor, frames, seed: int) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for condition in CONDITIONS:
        waves = _audio_for(condition, frames, np.random.default_rng(seed))
        masks = []
        for (clip, _, frame, at, _, _), wave in zip(frames, waves):
            predictor.set_clip(frame, wave, time=at, key=f"{clip}@{at}")
            masks.append(predictor.predict(predictor.default_map, "prob", seed).mask)
        truth = [f[5] for f in frames]
        if condition in NEGATIVE:
            table[condition] = {
                "fpr": float(np.mean([m.mean() for m in masks])),
                "frames_with_a_mask": float(np.mean([bool(m.any()) for m in masks])),
            }
        else:
            table[condition] = {"miou": float(np.mean(metrics.mask_iou_batch(np.stack(masks), np.stack(truth))))}
    return table


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
        frames = _frames(data, "test")
        figures: dict[str, Any] = {}
        for name, checkpoint in runs.items():
            predictor = Predictor.from_checkpoint(checkpoint, device=args.device)
            calibration = calibrate(predictor, data, "val", seed=args.seed)
            figures[name] = {"calibration": calibration.to_dict(), "as_is": _score(predictor, frames, args.seed)}
            predictor.abstain_below = calibration.threshold
            figures[name]["abstaining"] = _score(predictor, frames, args.seed)
    settings = {k: v for k, v in vars(args).items() if k not in ("device", "threads")}
    settings["frames"] = len(frames)
    _common.emit("listening", args, {k: str(v) if isinstance(v, Path) else v for k, v in settings.items()}, figures)


if __name__ == "__main__":
    main()
