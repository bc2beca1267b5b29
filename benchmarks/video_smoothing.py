"""Does temporal smoothing of the heatmaps help? Pointing game and mIoU on moving synthetic objects.

Renders synthetic clips with three objects moving at --speed x width per second; the
first sounds for the first half of the clip, the second for the rest
(`gsavl_cli.data.synthetic.video`). Each clip is localized every --every seconds with
each smoothing time constant (`none` = off) through `localize_video` (naive sampler,
region segmenter) and every frame is scored against the sounding object's true mask:
pointing game (the prompt on the object) and IoU, over all frames and over the 1.5 s
after the switch (how fast the mask follows the new sound). The localizer is the
tests' colour localizer (`tests/test_video.py`: colour-seeing image side set by hand,
audio head trained for a second with the MIL contrastive loss), because no trained
checkpoint can be assumed offline.

    python benchmarks/video_smoothing.py [--seeds 4 5 6] [--taus none 0.125 0.25 0.5 1 2] [--seconds 10] [--speed 0.3]
    python benchmarks/video_smoothing.py --seeds 4 --taus none 0.5 --seconds 2   # a few seconds
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import _common
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_video import colour_localizer

from gsavl_cli import metrics
from gsavl_cli.commands.localize_video import VideoSettings, localize_video
from gsavl_cli.data.synthetic import CLASSES, render_video
from gsavl_cli.io.masks import read_masks
from gsavl_cli.model import save_checkpoint
from gsavl_cli.predictor import Predictor, SamplerChoice


def _tau(text: str) -> float | None:
    return None if text.lower() in ("none", "off", "0") else float(text)


def score(entries: list[dict[str, Any]], masks: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame pointing hits and mask IoUs against the sounding object."""
    hits = np.array([metrics.pointing_hit(e["points"][0], truth[i]) for i, e in enumerate(entries)], dtype=float)
    ious = np.array([metrics.mask_iou(masks[i], truth[i]) for i in range(len(entries))])
    return hits, ious


def main() -> None:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[4, 5, 6])
    p.add_argument("--taus", type=_tau, nargs="+", default=[None, 0.125, 0.25, 0.5, 1.0, 2.0])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--every", type=float, default=0.25)
    p.add_argument("--speed", type=float, default=0.3, help="object speed in frame widths per second")
    args = p.parse_args()
    _common.setup(args)
    switch = args.seconds / 2
    results: dict[str, dict[str, list[np.ndarray]]] = {}
    with tempfile.TemporaryDirectory(prefix="gsavl-smooth-") as tmp:
        folder = Path(tmp)
        model, config = colour_localizer(CLASSES[:4])
        save_checkpoint(folder / "colour.pt", model, config)
        predictor = Predictor.from_checkpoint(
            folder / "colour.pt", device=args.device, segmenter="region", align_corners=False
        )
        for seed in args.seeds:
            clip = render_video(
                folder / f"clip{seed}.mp4",
                seconds=args.seconds,
                fps=8,
                categories=CLASSES[:3],
                speed=args.speed,
                seed=seed,
            )
            for tau in args.taus:
                settings = VideoSettings(
                    every=args.every,
                    map_name="av",
                    sampler=SamplerChoice("naive"),
                    smooth=tau,
                    timeline=folder / "t.json",
                    masks=folder / "m.npz",
                    chunk_size=16,
                )
                localize_video(clip.path, predictor, settings)
                entries = json.loads(settings.timeline.read_text())["timeline"]
                times = np.array([e["time"] for e in entries])
                with read_masks(settings.masks) as archive:
                    hits, ious = score(entries, archive.all(), clip.truth(times))
                after = (times >= switch) & (times < switch + 1.5)
                row = results.setdefault(
                    "none" if tau is None else f"{tau:g}", {"hits": [], "ious": [], "after_hits": [], "after_ious": []}
                )
                row["hits"].append(hits)
                row["ious"].append(ious)
                row["after_hits"].append(hits[after])
                row["after_ious"].append(ious[after])
    figures = {
        tau: {
            "pointing_game": round(float(np.concatenate(r["hits"]).mean()), 4),
            "miou": round(float(np.concatenate(r["ious"]).mean()), 4),
            "pointing_game_1.5s_after_switch": round(float(np.concatenate(r["after_hits"]).mean()), 4),
            "miou_1.5s_after_switch": round(float(np.concatenate(r["after_ious"]).mean()), 4),
            "frames": int(sum(len(h) for h in r["hits"])),
        }
        for tau, r in results.items()
    }
    _common.emit(
        "video_smoothing",
        args,
        {
            "seeds": args.seeds,
            "seconds": args.seconds,
            "every": args.every,
            "speed_widths_per_s": args.speed,
            "sampler": "naive",
            "segmenter": "region",
            "localizer": "tests' colour localizer",
        },
        figures,
    )


if __name__ == "__main__":
    main()
