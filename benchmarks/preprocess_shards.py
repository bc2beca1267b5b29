"""Sharded preprocess on this machine: clips/s of 1, 2 and 4 local shards (submitit) against one process, and merge cost.

Renders N synthetic clips, preprocesses them once in a single process (1 worker), then
with `run_sharded` on submitit's local executor for each shard count (each shard one
process, 1 decode worker), merges the parts, and checks the merged store holds every clip.

    python benchmarks/preprocess_shards.py [--clips 24] [--shards 1,2,4]
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import _common
from preprocess_throughput import render

from gsavl_cli.commands.preprocess import make_settings, run_preprocess
from gsavl_cli.commands.shards import ClusterPlan, merge_stores, run_sharded
from gsavl_cli.datasets import discover


def main() -> None:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, default=24)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=360)
    p.add_argument("--shards", default="1,2,4", help="comma-separated shard counts")
    args = p.parse_args()
    _common.setup(args)
    counts = [int(s) for s in args.shards.split(",")]
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="gsavl-bench-") as tmp:
        root = Path(tmp)
        figures["render_s"] = round(render(root / "videos", args.clips, args.seconds, args.width, args.height), 3)
        layout, sources = discover(root / "videos", "folder")
        settings = make_settings(layout)
        result, single = _common.timed("cpu", lambda: run_preprocess(sources, root / "single.h5", settings, workers=1))
        figures["single_process"] = {"seconds": round(single, 3), "clips_per_s": round(result.written / single, 3)}
        for count in counts:
            plan = ClusterPlan("local", count, root / f"parts-{count}", minutes=60)
            parts, seconds = _common.timed("cpu", lambda: run_sharded(sources, settings, plan, poll_s=0.2))
            merged, merge_s = _common.timed("cpu", lambda: merge_stores(root / f"merged-{count}.h5", parts))
            if merged.clips != len(sources):
                raise SystemExit(f"merged {merged.clips} of {len(sources)} clips")
            figures[f"shards_{count}"] = {
                "seconds": round(seconds, 3),
                "clips_per_s": round(len(sources) / seconds, 3),
                "speedup_vs_single": round(single / seconds, 3),
                "merge_s": round(merge_s, 3),
                "merge_ms_per_clip": round(1000 * merge_s / len(sources), 3),
            }
        figures["per_clip_s_single"] = round(single / len(sources), 4)
    _common.emit(
        "preprocess_shards",
        args,
        {
            "clips": args.clips,
            "seconds": args.seconds,
            "size": f"{args.width}x{args.height}",
            "shards": counts,
            "executor": "submitit local (one process per shard, 1 decode worker)",
            "note": "shard times include starting each process (torch import) and polling",
        },
        figures,
    )


if __name__ == "__main__":
    main()
