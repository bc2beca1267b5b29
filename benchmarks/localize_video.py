"""Frames/s and peak memory of `gsavl localize` over whole videos: memory must not grow with length.

For each clip length (default 30 s and 60 s) a synthetic clip with moving objects is
rendered at --size and 25 frames/s (`gsavl_cli.data.synthetic.video`), then a FRESH
subprocess runs `localize_video` on it, writing the overlay video (with the audio muxed
back), the mask archive and the JSON timeline. Each subprocess reports frames/s, its
resident memory once the models are built, its resident memory after the first, middle
and last chunk (flat = bounded) and its peak resident memory (VmHWM / getrusage maxrss:
per process, hence one process per length); on CUDA also torch's peak allocated
memory. Weights are random (timing only, nothing downloaded): a random
localizer, and the region segmenter on the CPU or a random-weight SAM (`--segmenter
sam`, the default with `--device cuda`).

    python benchmarks/localize_video.py [--seconds 30 60] [--size 640x360] [--every 0.25 | --all-frames]
        [--segmenter region|sam] [--sam-model vit_h] [--chunk-size 16] [--device cpu|cuda]
    python benchmarks/localize_video.py --seconds 2 --size 160x90   # a few seconds
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common
import torch

from gsavl_cli.commands.localize_video import VideoSettings, localize_video
from gsavl_cli.data.synthetic import render_video
from gsavl_cli.model import build_localizer, config_from_preset
from gsavl_cli.predictor import Predictor, SamplerChoice
from gsavl_cli.segment import SAM_ARCHS, RegionSegmenter, SamSegmenter

FPS = 25
_STATUS = Path("/proc/self/status")


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    return width, height


def _status_mib(field: str) -> float | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM, else getrusage's maxrss in KiB)."""
    return _status_mib("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class RssTrace:
    """A progress "bar" that samples this process's resident memory after every chunk."""

    def __init__(self) -> None:
        self.mib: list[float] = []

    def __call__(self) -> RssTrace:
        return self

    def __enter__(self) -> RssTrace:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def update(self, task: int, **fields: Any) -> None:
        if "advance" in fields:
            self.mib.append(_status_mib("VmRSS") or 0.0)


def make_predictor(args: argparse.Namespace) -> Predictor:
    torch.manual_seed(0)
    localizer = build_localizer(config_from_preset(args.preset), pretrained=False)
    if args.segmenter == "sam":
        from segment_anything import sam_model_registry

        segmenter = SamSegmenter(sam_model_registry[args.sam_model](), device=args.device)
    else:
        segmenter = RegionSegmenter(device=args.device)
    return Predictor(localizer, segmenter, device=args.device, pretrained_prior=False)


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """One measured run in this (fresh) process."""
    predictor = make_predictor(args)
    setup_rss = _status_mib("VmRSS")
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory(prefix="gsavl-video-") as tmp:
        out = Path(tmp)
        settings = VideoSettings(
            every=None if args.all_frames else args.every,
            map_name=args.map,
            sampler=SamplerChoice(args.sampler),
            video=out / "overlay.mp4",
            masks=out / "masks.npz",
            timeline=out / "timeline.json",
            chunk_size=args.chunk_size,
            batch_size=args.batch_size,
        )
        trace = RssTrace()
        start = time.perf_counter()
        summary = localize_video(args.worker, predictor, settings, progress=trace)
        wall = time.perf_counter() - start
        sizes = {name: Path(path).stat().st_size for name, path in summary["outputs"].items()}
    figures = {
        "frames": summary["frames"],
        "wall_s": round(wall, 2),
        "frames_per_second": round(summary["frames"] / wall, 3),
        "setup_rss_mib": round(setup_rss, 1) if setup_rss else None,
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "rss_after_chunk_mib": {
            "first": round(trace.mib[0], 1),
            "middle": round(trace.mib[len(trace.mib) // 2], 1),
            "last": round(trace.mib[-1], 1),
            "max": round(max(trace.mib), 1),
            "chunks": len(trace.mib),
        },
        "output_bytes": sizes,
    }
    if args.device.startswith("cuda"):
        figures["cuda_peak_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return figures


def _worker_args(args: argparse.Namespace, clip: Path) -> list[str]:
    argv = [
        sys.executable,
        __file__,
        "--worker",
        str(clip),
        "--device",
        args.device,
        "--every",
        str(args.every),
        "--segmenter",
        args.segmenter,
        "--sam-model",
        args.sam_model,
        "--chunk-size",
        str(args.chunk_size),
        "--batch-size",
        str(args.batch_size),
        "--map",
        args.map,
        "--sampler",
        args.sampler,
        "--preset",
        args.preset,
    ]
    if args.all_frames:
        argv.append("--all-frames")
    if args.threads:
        argv += ["--threads", str(args.threads)]
    return argv


def main() -> None:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, nargs="+", default=[30.0, 60.0], help="clip lengths to compare")
    p.add_argument("--size", type=_size, default=(640, 360), help="frame size WIDTHxHEIGHT (even)")
    p.add_argument("--every", type=float, default=0.25, help="seconds between processed frames")
    p.add_argument("--all-frames", action="store_true", help=f"every frame ({FPS}/s)")
    p.add_argument("--segmenter", choices=("region", "sam"), default=None, help="default: sam on CUDA, else region")
    p.add_argument("--sam-model", default="vit_h", choices=SAM_ARCHS)
    p.add_argument("--chunk-size", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=4, help="SAM image-encoder batch")
    p.add_argument("--map", default="av")
    p.add_argument("--sampler", default="prob")
    p.add_argument("--preset", default="gsavl", choices=("gsavl", "ezvsl"))
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    _common.setup(args)
    args.segmenter = args.segmenter or ("sam" if args.device.startswith("cuda") else "region")
    if args.worker:
        print(json.dumps(worker(args)))
        return
    runs = []
    with tempfile.TemporaryDirectory(prefix="gsavl-bench-") as tmp:
        for seconds in args.seconds:
            width, height = args.size
            clip, render_s = _common.timed(
                "cpu",
                lambda: render_video(
                    Path(tmp) / f"clip_{seconds:g}s.mp4", seconds=seconds, width=width, height=height, fps=FPS
                ),
            )
            proc = subprocess.run(_worker_args(args, clip.path), capture_output=True, text=True)
            if proc.returncode != 0:
                sys.exit(f"worker failed for {seconds:g} s:\n{proc.stderr}")
            runs.append(
                {"seconds": seconds, "render_s": round(render_s, 1), **json.loads(proc.stdout.splitlines()[-1])}
            )
    peaks = [run["peak_rss_mib"] for run in runs]
    figures: dict[str, Any] = {"runs": runs}
    if len(runs) > 1:
        figures["peak_rss_growth_mib"] = round(peaks[-1] - peaks[0], 1)
        figures["peak_rss_growth_per_minute_mib"] = round(
            (peaks[-1] - peaks[0]) / max(runs[-1]["seconds"] - runs[0]["seconds"], 1e-9) * 60, 2
        )
    settings = {
        "size": "x".join(map(str, args.size)),
        "clip_fps": FPS,
        "every": None if args.all_frames else args.every,
        "segmenter": args.segmenter,
        "sam_model": args.sam_model if args.segmenter == "sam" else None,
        "map": args.map,
        "sampler": args.sampler,
        "preset": args.preset,
        "chunk_size": args.chunk_size,
        "outputs": "overlay video + mask archive + timeline",
        "weights": "random (timing only)",
    }
    _common.emit("localize_video", args, settings, figures)


if __name__ == "__main__":
    main()
