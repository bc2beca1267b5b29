"""SSL2AVS on the synthetic world, on a CPU: does it segment, and does it listen?

Renders an AVSBench-S4-layout world (`render_world`), preprocesses it, trains the
smallest configuration (`ssl2avs-tiny`, random init: nothing is downloaded), then scores
the best checkpoint's masks on the test split twice: with each clip's own audio, and
with shuffled audio (clip i gets clip i+1's audio; the world's classes cycle with the
clip index, so that is always another class's sound). Prints one JSON object.

    python scripts/ssl2avs_synthetic.py --out /tmp/ssl2avs_synth [--train 48 --epochs 40]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from gsavl_cli.commands.preprocess import make_settings, run_preprocess
from gsavl_cli.commands.train import TrainConfig, train
from gsavl_cli.commands.train_segmentation import rotated_audio, segmentation_metrics, segmentation_val_ids
from gsavl_cli.data.synthetic import WorldConfig, render_world
from gsavl_cli.datasets import discover
from gsavl_cli.model import config_from_preset, load_checkpoint


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--train", type=int, default=48, help="training clips")
    p.add_argument("--val", type=int, default=8)
    p.add_argument("--test", type=int, default=16)
    p.add_argument("--classes", type=int, default=4)
    p.add_argument(
        "--object-scale",
        type=float,
        nargs=2,
        default=None,
        metavar=("MIN", "MAX"),
        help="object radii as a fraction of the shorter side (default: the world's)",
    )
    p.add_argument("--remove-maxpool", action="store_true", help="the '+' variant: feature maps twice as large")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW; the paper's 2e-5 is for pretrained backbones")
    p.add_argument("--frames", default="annotated", choices=("annotated", "all"))
    p.add_argument("--augment", action="store_true", help="random flip + crop of each training clip")
    p.add_argument("--run", default="run", help="run folder name under --out (several runs can share one world)")
    p.add_argument("--preset", default="ssl2avs-tiny")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    world, data = args.out / "world", args.out / "synthetic_s4.h5"
    if not data.exists():
        scale = {"object_scale": tuple(args.object_scale)} if args.object_scale else {}
        render_world(
            world,
            WorldConfig(
                n_train=args.train, n_val=args.val, n_test=args.test, n_classes=args.classes, seed=args.seed, **scale
            ),
        )
        layout, clips = discover(world, "avsbench-s4")
        run_preprocess(clips, data, make_settings(layout), workers=2)
    prepared = time.perf_counter()
    config = config_from_preset(args.preset, remove_maxpool=args.remove_maxpool)
    logs = []
    checkpoint = train(
        TrainConfig(
            data=data,
            out=args.out / args.run,
            model=config,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            workers=0,
            pretrained=False,
            seed=args.seed,
            frames=args.frames,
            augment=args.augment,
        ),
        on_epoch=lambda log: (
            logs.append(log),
            print(f"epoch {log.epoch}: loss {log.loss:.4f} val {log.val}", flush=True),
        ),
    )
    trained = time.perf_counter()
    model = load_checkpoint(checkpoint).model
    test_ids = segmentation_val_ids(data, "test", required=True)
    own = segmentation_metrics(model, data, test_ids, "cpu", image_size=config.image_size)
    shuffled = segmentation_metrics(
        model, data, test_ids, "cpu", image_size=config.image_size, audio_from=rotated_audio(test_ids)
    )
    print(
        json.dumps(
            {
                "checkpoint": str(checkpoint),
                "best_epoch": load_checkpoint(checkpoint).extra.get("epoch"),
                "config": config.to_dict(),
                "world": {
                    "object_scale": args.object_scale,
                    "classes": args.classes,
                    "val": args.val,
                    "test": args.test,
                },
                "train": {
                    "clips": args.train,
                    "epochs": args.epochs,
                    "batch_size": args.batch_size,
                    "lr": args.lr,
                    "frames": args.frames,
                    "augment": args.augment,
                },
                "test_own_audio": own,
                "test_shuffled_audio": shuffled,
                "miou_drop_share": None if not own["miou"] else round(1 - shuffled["miou"] / own["miou"], 4),
                "seconds": {
                    "render_and_preprocess": round(prepared - start, 1),
                    "train": round(trained - prepared, 1),
                    "evaluate": round(time.perf_counter() - trained, 1),
                },
                "torch_threads": torch.get_num_threads(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
