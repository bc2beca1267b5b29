"""Evaluation: heatmaps, prompts and masks for every clip x map x sampler, then metrics.

The SAM image embedding of a frame is computed once and reused for every map and
sampler (and, with an embedding cache, across runs). Random samplers get a generator
seeded from (seed, clip, map, sampler), so a clip's points do not depend on batching
or sharding.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
import torch.nn.functional as F

from gsavl_cli import metrics

from gsavl_cli import samplers
from gsavl_cli.data.clips import audio_array_name, require_arrays
from gsavl_cli.errors import UsageError
from gsavl_cli.model import ModelConfig
from gsavl_cli.pipeline import Models, audio_at, batch_heatmaps
from gsavl_cli.segment import ImageEmbedding
from gsavl_cli.io.store import Store, open_store

VGGSS_GRID = 224  # the VGG-SS protocol scores heatmaps on a 224x224 grid


def _annotated(store: Store, clip_id: str) -> bool:
    arrays = store.arrays(clip_id)
    return "masks" in arrays or "boxes" in arrays


def validation_ids(path: Path, split: str | None = None) -> list[str]:
    """Annotated clips of `split` (default: test, else val, else all)."""
    with open_store(path) as store:
        if split is None:
            splits = {store.meta(i).get("split") for i in store.ids}
            split = next((s for s in ("test", "val") if s in splits), "all")
        ids = [i for i in store.split_ids(split) if _annotated(store, i)]
    if not ids:
        raise UsageError(f"{path} has no annotated clips in split {split!r}", hint="evaluation needs masks (AVSBench) or boxes (VGG-SS)")
    return ids


def ground_truth(item: dict[str, np.ndarray], size: tuple[int, int], frame: int = 0) -> np.ndarray:
    """The mask of frame `frame` (default: the first), or the union of the boxes on a grid of `size`."""
    if "masks" in item:
        frames = list(item.get("mask_frames", range(len(item["masks"]))))
        mask = item["masks"][frames.index(frame) if frame in frames else 0]
        if mask.shape != size:
            mask = F.interpolate(torch.from_numpy(mask)[None, None].float(), size=size, mode="nearest")[0, 0].numpy() > 0.5
        return mask.astype(bool)
    return metrics.boxes_to_mask(item["boxes"], size=size)


def _protocol_size(item: dict[str, np.ndarray]) -> tuple[int, int]:
    """Masks are scored at their own resolution; boxes on the VGG-SS 224 grid."""
    if "masks" in item:
        return tuple(item["masks"].shape[1:3])
    return (VGGSS_GRID, VGGSS_GRID)


def _read(store: Store, clip_id: str, audio_name: str) -> dict[str, np.ndarray]:
    return store.read(clip_id, ("first_frame", audio_name, "masks", "mask_frames", "boxes"))


FRAME_MODES = ("first", "all")


@dataclass
class Sample:
    """One evaluated frame: the clip's first (GSAVL protocol) or any annotated one (AVS benchmark)."""

    key: str
    clip: str
    frame_index: int
    frame: np.ndarray
    audio: torch.Tensor
    item: dict[str, np.ndarray]


def _samples(store: Store, clip_id: str, audio_name: str, config: ModelConfig, mode: str) -> list[Sample]:
    """`first`: frame 0 with the clip's audio; `all`: every annotated frame with its own second of audio."""
    if mode == "first":
        item = _read(store, clip_id, audio_name)
        return [Sample(clip_id, clip_id, 0, item["first_frame"], torch.from_numpy(item[audio_name]), item)]
    item = store.read(clip_id, ("frames", "frame_times", "waveform", audio_name, "masks", "mask_frames", "boxes"))
    indices = [int(i) for i in item.get("mask_frames", [0])]
    out = []
    for i in indices:
        if audio_name == "vggish":  # AVSBench: second i of audio belongs to frame i
            examples = item["vggish"]
            audio = torch.from_numpy(examples[min(i, len(examples) - 1)][None])
        else:
            audio = audio_at(item["waveform"], float(item["frame_times"][i]), config)
        out.append(Sample(f"{clip_id}#{i}", clip_id, i, item["frames"][i], audio, item))
    return out


def heatmap_row(heatmap: torch.Tensor, gt: np.ndarray) -> dict[str, float]:
    """The heatmap protocol: median threshold (cIoU, IoU, F) and the argmax pointing game."""
    heat = heatmap.float().cpu().numpy()
    pred = heat >= metrics.median_threshold(heat)
    return {
        "ciou": metrics.ciou(heat, gt),
        "iou": metrics.mask_iou(pred, gt),
        "fscore": metrics.f_measure(pred, gt),
        "pointing": float(metrics.pointing_game(heat, gt)),
    }


@torch.no_grad()
def heatmap_metrics(localizer, path: Path, ids: list[str], device: str, batch_size: int = 32) -> dict[str, Any]:
    """Validation during training: the audio-visual map alone (no prior, no SAM)."""
    was_training = localizer.training
    localizer.eval()
    config = localizer.config
    models = Models(localizer, config, None, device)
    rows = []
    with open_store(path) as store:
        audio_name = audio_array_name(config.audio_encoder)
        for start in range(0, len(ids), batch_size):
            items = [_read(store, i, audio_name) for i in ids[start : start + batch_size]]
            frames = [it["first_frame"] for it in items]
            sizes = [_protocol_size(it) for it in items]
            audio = [torch.from_numpy(it[audio_name]) for it in items]
            maps = batch_heatmaps(models, frames, audio, ("av",), sizes=sizes)["av"]
            rows.extend(heatmap_row(m, ground_truth(it, s)) for m, it, s in zip(maps, items, sizes))
    localizer.train(was_training)
    return metrics.summarize(rows)


@dataclass
class SamplerChoice:
    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalSettings:
    maps: tuple[str, ...] = ("av", "obj", "avobj")
    samplers: list[SamplerChoice] = field(default_factory=lambda: [SamplerChoice("naive"), SamplerChoice("grid"), SamplerChoice("prob")])
    mask_choice: str = "single"
    cascade_rounds: int = 1
    cascade_threshold: float = 0.3
    negatives: int = 0
    alpha: float = 0.4
    seed: int = 123
    batch_size: int = 8
    frames: str = "first"  # "first" (GSAVL protocol) or "all" annotated frames (AVS benchmark)


@dataclass
class EvalOutput:
    rows: list[dict[str, Any]]
    timings: dict[str, float]
    results: list[dict[str, Any]] = field(default_factory=list)


def clip_generator(seed: int, *parts: str) -> torch.Generator:
    """A generator that depends only on the seed and the names, not on the order of work."""
    digest = hashlib.sha256("/".join((str(seed), *parts)).encode()).digest()
    return samplers.make_generator(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


class EmbeddingCache:
    """SAM image embeddings in HDF5 (float16), keyed by clip id, for a given SAM model."""

    def __init__(self, path: Path, key: str) -> None:
        self.path, self.key = Path(path), key
        self.file = h5py.File(self.path, "a")
        stored = self.file.attrs.get("sam")
        if stored is not None and stored != key:
            self.file.close()
            raise UsageError(f"{path} caches embeddings of another SAM model ({stored})", hint="use another --embedding-cache file")
        self.file.attrs["sam"] = key

    def get(self, clip_id: str) -> ImageEmbedding | None:
        name = clip_id.replace("/", "|")
        if name not in self.file or "original_size" not in self.file[name].attrs:
            return None  # absent, or cut short by a crash before its sizes were written
        ds = self.file[name]
        return ImageEmbedding(torch.from_numpy(ds[()].astype(np.float32)), tuple(ds.attrs["input_size"]), tuple(ds.attrs["original_size"]))

    def put(self, clip_id: str, emb: ImageEmbedding) -> None:
        name = clip_id.replace("/", "|")
        if name in self.file:
            del self.file[name]
        ds = self.file.create_dataset(name, data=emb.features.cpu().numpy().astype(np.float16))
        ds.attrs["input_size"], ds.attrs["original_size"] = emb.input_size, emb.original_size
        self.file.flush()

    def close(self) -> None:
        if self.file.id.valid:
            self.file.close()


def _embeddings(segmenter, frames: list[np.ndarray], ids: list[str], cache: EmbeddingCache | None, timings: dict[str, float]) -> list[ImageEmbedding]:
    cached = [cache.get(i) if cache is not None else None for i in ids]
    todo = [k for k, e in enumerate(cached) if e is None]
    start = time.perf_counter()
    fresh = segmenter.embed([frames[k] for k in todo]) if todo else []
    timings["image_encoder_s"] += time.perf_counter() - start
    for k, emb in zip(todo, fresh):
        cached[k] = emb
        if cache is not None and emb.features is not None:
            cache.put(ids[k], emb)
    return cached  # type: ignore[return-value]


def _prompt_hit_rate(prompts: samplers.Prompts, gt: np.ndarray) -> float:
    positive = prompts.points[prompts.labels == 1]
    return float(np.mean([metrics.pointing_hit(p, gt) for p in positive])) if len(positive) else float("nan")


def _mask_row(mask: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    return {"iou": metrics.mask_iou(mask, gt), "fscore": metrics.f_measure(mask, gt), "ciou": metrics.ciou_of_mask(mask, gt)}


def evaluate(
    models: Models,
    path: Path,
    ids: list[str],
    settings: EvalSettings,
    segmenter,
    *,
    cache: EmbeddingCache | None = None,
    on_batch: Callable[[int], None] | None = None,
    keep: Callable[[str, dict[str, Any]], None] | None = None,
) -> EvalOutput:
    """Per-sample rows for every clip x map (heatmap only) and clip x map x sampler (masks).

    `keep(clip_id, visuals)` receives the frame, heatmaps, prompts and masks of each
    clip, for the HTML report, without keeping them all in memory here.
    """
    timings = {"heatmap_s": 0.0, "image_encoder_s": 0.0, "decoder_s": 0.0, "sampling_s": 0.0}
    rows: list[dict[str, Any]] = []
    if settings.frames not in FRAME_MODES:
        raise UsageError(f"unknown frame selection {settings.frames!r}", hint=f"choose from {', '.join(FRAME_MODES)}")
    with open_store(path) as store:
        audio_name = audio_array_name(models.config.audio_encoder)
        require_arrays(store, ids, (audio_name, "frames"))
        for start in range(0, len(ids), settings.batch_size):
            batch_ids = ids[start : start + settings.batch_size]
            batch = [s for i in batch_ids for s in _samples(store, i, audio_name, models.config, settings.frames)]
            frames = [s.frame for s in batch]
            tick = time.perf_counter()
            maps = batch_heatmaps(models, frames, [s.audio for s in batch], settings.maps, alpha=settings.alpha)
            timings["heatmap_s"] += time.perf_counter() - tick
            embeddings = _embeddings(segmenter, frames, [s.key for s in batch], cache, timings)
            for k, sample in enumerate(batch):
                rows.extend(_sample_rows(sample, {m: maps[m][k] for m in settings.maps}, embeddings[k], settings, segmenter, timings, keep))
            if on_batch is not None:
                on_batch(len(batch_ids))
    timings["image_encoder_calls"] = segmenter.encoder_calls
    return EvalOutput(rows, timings)


def _sample_rows(sample: Sample, heat, embedding, settings: EvalSettings, segmenter, timings, keep) -> list[dict[str, Any]]:
    clip_id, item, frame = sample.key, sample.item, sample.frame
    size = frame.shape[:2]
    gt_frame = ground_truth(item, size, sample.frame_index)
    protocol = _protocol_size(item)
    gt_protocol = ground_truth(item, protocol, sample.frame_index)
    rows, visuals = [], {"frame": frame, "gt": gt_frame, "heatmaps": {}, "results": {}}
    for map_name, heatmap in heat.items():
        scored = heatmap if protocol == size else F.interpolate(heatmap[None, None].float(), size=protocol, mode="bilinear", align_corners=False)[0, 0]
        rows.append({"clip": clip_id, "map": map_name, "sampler": None, "segmenter": None, **heatmap_row(scored, gt_protocol)})
        visuals["heatmaps"][map_name] = heatmap.float().cpu().numpy()
        for choice in settings.samplers:
            generator = clip_generator(settings.seed, clip_id, map_name, choice.name)
            tick = time.perf_counter()
            if settings.cascade_rounds > 1:
                result = segmenter.cascade(embedding, heatmap, choice.name, generator, rounds=settings.cascade_rounds,
                                           threshold=settings.cascade_threshold, mask_choice=settings.mask_choice, **choice.params)
                prompts = None
            else:
                prompts = samplers.sample(choice.name, heatmap, generator=generator, negatives=settings.negatives, **choice.params)
                mid = time.perf_counter()
                timings["sampling_s"] += mid - tick
                tick = mid
                result = segmenter.segment(embedding, prompts, mask_choice=settings.mask_choice, heatmap=heatmap)
            timings["decoder_s"] += time.perf_counter() - tick
            row = {"clip": clip_id, "map": map_name, "sampler": choice.name, "segmenter": segmenter.name,
                   **_mask_row(result.mask, gt_frame), "score": result.score, "rounds": result.rounds,
                   "mask_area": int(result.mask.sum())}
            if prompts is not None:
                row["pointing"] = _prompt_hit_rate(prompts, gt_frame)
                row["points"] = prompts.points.round(1).tolist()
            rows.append(row)
            visuals["results"][(map_name, choice.name)] = (result.mask, prompts, row["iou"])
    if keep is not None:
        keep(clip_id, visuals)
    for row in rows:
        row["clip"], row["frame"] = sample.clip, sample.frame_index
    return rows


def summarise_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One metrics entry per (map, sampler, segmenter), in first-seen order."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["map"], row["sampler"], row["segmenter"]), []).append(row)
    results = []
    for (map_name, sampler, segmenter), members in groups.items():
        summary = metrics.summarize(members)
        results.append({"map": map_name, "sampler": sampler, "segmenter": segmenter, **summary})
    return results
