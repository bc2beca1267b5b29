"""`gsavl eval` end to end: models, clips (sharded under torchrun), outputs on disk."""

from __future__ import annotations

import csv
import io
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from gsavl_cli import __version__
from gsavl_cli.io.layouts import filter_subset
from gsavl_cli.errors import UsageError
from gsavl_cli.commands.evaluate import EmbeddingCache, EvalSettings, SamplerChoice, evaluate, summarise_rows, validation_ids
from gsavl_cli.io.media import write_atomic
from gsavl_cli.pipeline import load_models, make_segmenter
from gsavl_cli.viz.report import ReportWriter
from gsavl_cli.commands.train import init_distributed

CSV_COLUMNS = ("clip", "frame", "map", "sampler", "segmenter", "iou", "fscore", "ciou", "pointing", "score", "rounds", "mask_area", "points")


def _gather(rows: list[dict[str, Any]], world: int) -> list[dict[str, Any]]:
    if world == 1:
        return rows
    parts: list[Any] = [None] * world
    dist.all_gather_object(parts, rows)
    return [row for part in parts for row in part]


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in CSV_COLUMNS})
    write_atomic(path, buffer.getvalue().encode("utf-8"))


def run_evaluation(
    *,
    data: Path,
    checkpoint: Path,
    out: Path,
    split: str,
    maps: tuple[str, ...],
    samplers: list[SamplerChoice],
    segmenter: str,
    sam_model: str,
    sam_checkpoint: Path | None,
    mask_choice: str,
    cascade_rounds: int,
    cascade_threshold: float,
    negatives: int,
    alpha: float,
    batch_size: int,
    limit: int | None,
    embedding_cache: Path | None,
    report: bool,
    prior_checkpoint: Path | None,
    device: str,
    seed: int,
    progress: Callable[..., Any],
    pretrained_prior: bool = True,
    subset: str | None = None,
    frames: str = "first",
) -> dict[str, Any]:
    """Evaluates, writes metrics.json / per_sample.csv (/ report.html), returns metrics.json's content."""
    rank, world, device = init_distributed(device)
    start = time.perf_counter()
    ids = filter_subset(validation_ids(data, split), subset)[:limit]
    if not ids:
        raise UsageError(f"no annotated clips of {data} are in subset {subset}", hint="check --subset and --split")
    models = load_models(checkpoint, device, maps, pretrained_prior=pretrained_prior, prior_checkpoint=prior_checkpoint)
    seg = make_segmenter(segmenter, device, sam_model=sam_model, sam_checkpoint=sam_checkpoint)
    settings = EvalSettings(maps=maps, samplers=samplers, mask_choice=mask_choice, cascade_rounds=cascade_rounds,
                            cascade_threshold=cascade_threshold, negatives=negatives, alpha=alpha, seed=seed, batch_size=batch_size, frames=frames)
    cache = EmbeddingCache(embedding_cache, f"{sam_model}:{sam_checkpoint.name if sam_checkpoint else 'default'}") if embedding_cache and segmenter == "sam" else None
    out.mkdir(parents=True, exist_ok=True)
    reporter = ReportWriter(out, maps[-1], samplers[-1].name if samplers else None) if report and rank == 0 else None
    mine = ids[rank::world]
    try:
        with progress() as bar:
            task = bar.add_task("eval", total=len(mine), rate="")
            t0 = time.perf_counter()

            def advance(n: int) -> None:
                bar.advance(task, n)
                done = bar.tasks[0].completed
                bar.update(task, rate=f"{done / max(time.perf_counter() - t0, 1e-9):.2f} frames/s")

            output = evaluate(models, data, mine, settings, seg, cache=cache, on_batch=advance, keep=reporter)
    finally:
        if cache is not None:
            cache.close()
    rows = _gather(output.rows, world)
    total = time.perf_counter() - start
    results = summarise_rows(rows)
    n_frames = len({(r["clip"], r["frame"]) for r in rows})
    timings = {**output.timings, "total_s": total, "frames_per_s": n_frames / total if total > 0 else None}
    summary = {
        "results": results,
        "timings": timings,
        "settings": {
            "data": str(data), "split": split, "n_clips": len(ids), "checkpoint": str(checkpoint), "maps": list(maps),
            "samplers": [{"name": c.name, "params": c.params} for c in samplers], "segmenter": segmenter,
            "sam_model": sam_model if segmenter == "sam" else None, "mask_choice": mask_choice,
            "cascade_rounds": cascade_rounds, "negatives": negatives, "alpha": alpha, "seed": seed, "device": device,
            "world_size": world, "subset": subset, "frames": frames, "gsavl": __version__, "torch": torch.__version__, "python": platform.python_version(),
        },
    }
    if rank == 0:
        write_atomic(out / "metrics.json", json.dumps(summary, indent=2, default=str).encode("utf-8"))
        _write_csv(out / "per_sample.csv", rows)
        if reporter is not None:
            best = next((r for r in results if r["map"] == reporter.map_name and r["sampler"] == reporter.sampler), results[0])
            reporter.write(f"gsavl eval · {data.name} · {reporter.map_name} / {reporter.sampler or 'heatmap'}", {k: best[k] for k in ("n", "miou", "ciou", "pointing_game")})
    return summary
