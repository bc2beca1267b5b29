"""Clips/s of `gsavl preprocess` (decode + audio features + HDF5 write) with 1 and 2 workers.

Renders N synthetic 640x360 H.264 clips into a temporary folder, then runs
`run_preprocess` over them (folder layout) once per worker count, overwriting the store.

    python benchmarks/preprocess_throughput.py [--clips 8] [--workers 1,2]
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import _common

from gsavl_cli.commands.preprocess import make_settings, run_preprocess
from gsavl_cli.data import synthetic
from gsavl_cli.datasets import discover
from gsavl_cli.io.media import ffmpeg_encoders


def render(folder: Path, clips: int, seconds: float, width: int, height: int) -> float:
    """Writes the clips; returns the seconds it took (not part of the figure)."""
    _, seconds_taken = _common.timed(
        "cpu",
        lambda: [
            synthetic.render_clip(
                folder / f"clip_{i:03d}.mp4",
                seconds=seconds,
                width=width,
                height=height,
                fps=25,
                category=synthetic.CLASSES[i % len(synthetic.CLASSES)],
                n_objects=3,
                seed=i,
            )
            for i in range(clips)
        ],
    )
    return seconds_taken


def main() -> None:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=360)
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    args = p.parse_args()
    _common.setup(args)
    worker_counts = [int(w) for w in args.workers.split(",")]
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="gsavl-bench-") as tmp:
        videos = Path(tmp) / "videos"
        figures["render_s"] = round(render(videos, args.clips, args.seconds, args.width, args.height), 3)
        layout, sources = discover(videos, "folder")
        settings = make_settings(layout)
        for workers in worker_counts:
            result, seconds = _common.timed(
                "cpu", lambda: run_preprocess(sources, Path(tmp) / "data.h5", settings, workers=workers, overwrite=True)
            )
            if result.failed:
                raise SystemExit(f"preprocess failed: {result.failed[0].reason}")
            figures[f"workers_{workers}"] = {
                "seconds": round(seconds, 3),
                "clips_per_s": round(result.written / seconds, 3),
                "written": result.written,
            }
        figures["store_mib"] = round((Path(tmp) / "data.h5").stat().st_size / 2**20, 2)
    _common.emit(
        "preprocess_throughput",
        args,
        {
            "clips": args.clips,
            "seconds": args.seconds,
            "size": f"{args.width}x{args.height}",
            "video_codec": "libx264" if "libx264" in ffmpeg_encoders() else "mpeg4",
            "frame_times": settings["frame_times"],
            "workers": worker_counts,
            "note": "workers > 1 includes starting spawn processes (torch import)",
        },
        figures,
    )


if __name__ == "__main__":
    main()
