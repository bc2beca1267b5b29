"""`gsavl eval`: every annotated clip x map (heatmap protocol) x sampler (masks), then metrics.

Everything from a frame to its mask goes through the `Predictor` (the same path as
`localize`): the SAM embedding of a frame is computed once and reused for every map
and sampler (and across runs with an embedding cache); random samplers are seeded by
(seed, clip key, map, sampler). Under torchrun the clips are sharded and the rows
gathered, so the result equals a single-process run.

`--audio` says what the model hears: the clip's own audio, a control (shuffled), or a negative
condition of AVSBench-Robust (Li et al., arXiv 2502.00358: silent, noise, offscreen), scored with
the false-positive rate and the abstention failure rate; `--audio all` runs every condition over the
same frames, the image embedding of each frame computed once for all of them.
"""

from __future__ import annotations

import csv
import io
import json
import platform
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from pathlib import Path
from queue import Queue
from typing import Any, TypeVar

import h5py
import numpy as np
import torch
import torch.distributed as dist

from gsavl_cli import __version__, metrics
from gsavl_cli.choices import AudioMode, FrameMode
from gsavl_cli.data.audio_input import silent_like
from gsavl_cli.data.negative_audio import DEFAULT_NOISE_DBFS, offscreen_partners, white_noise_like
from gsavl_cli.datasets import filter_subset, store_dataset
from gsavl_cli.distributed import init_distributed
from gsavl_cli.errors import UsageError
from gsavl_cli.io.embedding_cache import EmbeddingCache
from gsavl_cli.io.files import atomic_path, write_atomic
from gsavl_cli.io.store import Store, hdf5_name, open_store
from gsavl_cli.model import ALIGN_CORNERS, PAPER_MAPS
from gsavl_cli.model.zeroshot import TEXT_MAPS, Heard, ZeroShotSettings
from gsavl_cli.predictor import ClipInput, Predictor, PreparedClip, SamplerChoice
from gsavl_cli.validation import ground_truth, heatmap_row, protocol_size, validation_ids
from gsavl_cli.viz.report import ReportWriter

T = TypeVar("T")
CSV_COLUMNS = (
    "clip",
    "frame",
    "audio",
    "map",
    "sampler",
    "segmenter",
    "iou",
    "mask_f",
    "ciou",
    "pointing",
    "score",
    "rounds",
    "mask_area",
    "fpr",
    "any_mask",
    "gt_fraction",
    "points",
    "labels",
    "heard",
)


def default_samplers() -> list[SamplerChoice]:
    """The prompt samplers `gsavl eval` compares by default: naive, grid and prob."""
    return [SamplerChoice("naive"), SamplerChoice("grid"), SamplerChoice("prob")]


@dataclass
class EvalSettings:
    """Everything `gsavl eval` can be told; the CLI fills it, every layer reads it."""

    data: Path
    checkpoint: Path | None  # None: training-free maps only (obj, text, textobj)
    out: Path = Path("eval")
    split: str | None = "test"
    frames: FrameMode = FrameMode.first
    maps: tuple[str, ...] | None = PAPER_MAPS  # None: the predictor's default (av alone for a model with its own mask)
    samplers: list[SamplerChoice] = field(default_factory=default_samplers)
    segmenter: str | None = None  # None: the model's own mask head if it has one, else SAM
    sam_model: str = "vit_h"
    sam_checkpoint: Path | None = None
    mask_choice: str = "single"
    cascade_rounds: int = 1
    cascade_threshold: float = 0.3
    negatives: int = 0
    abstain: bool | None = False  # the calibrated abstention (not the papers' protocol: off by default)
    alpha: float = 0.4
    align_corners: bool = ALIGN_CORNERS
    audio: AudioMode = AudioMode.normal
    noise_dbfs: float = DEFAULT_NOISE_DBFS  # --audio noise: RMS level, dB re full scale (data.negative_audio)
    batch_size: int = 8
    limit: int | None = None
    subset: str | None = None
    embedding_cache: Path | None = None
    save_heatmaps: Path | None = None
    report: bool = False
    resnet_checkpoint: Path | None = None
    pretrained_prior: bool = True
    device: str = "cpu"
    seed: int = 123
    exclude: tuple[str, ...] = ()  # clip ids left out (`--skip-bad`: the damaged ones)
    videos_per_batch: int = 1  # AVS M_J / M_F batching (AVSBench's test.py: 1)
    zeroshot: ZeroShotSettings = field(default_factory=ZeroShotSettings)  # the text maps' models and labels

    def to_json(self) -> dict[str, Any]:
        """The settings as JSON values (enums by value, paths as text), as metrics.json records them."""
        return json.loads(json.dumps(asdict(self), default=lambda v: v.value if isinstance(v, Enum) else str(v)))


# -- prompts against the ground truth (the protocol itself: gsavl_cli.validation) -----------


def heard_text(heard: Heard) -> str | None:
    """per_sample.csv's `heard`: the labels a zero-shot map was made from, `label:score` joined by `;`."""
    return ";".join(f"{label}:{score:.4f}" for label, score in heard) or None


def _prompt_hit_rate(points: np.ndarray, labels: np.ndarray, gt: np.ndarray) -> float:
    positive = points[labels == 1]
    return float(np.mean([metrics.pointing_hit(p, gt) for p in positive])) if len(positive) else float("nan")


# -- samples --------------------------------------------------------------------------------


@dataclass
class Sample:
    """One evaluated frame and what scoring it needs."""

    clip: str
    frame_index: int
    key: str
    input: ClipInput
    item: dict[str, np.ndarray]
    audio: AudioMode = AudioMode.normal  # the condition it is heard under
    category: str | None = None  # the clip's, when the store records one (what a zero-shot map should hear)


_NAMES = ("first_frame", "frames", "frame_times", "waveform", "masks", "mask_frames", "boxes")


def audio_partners(ids: list[str], seed: int) -> dict[str, str]:
    """`--audio shuffled`: a seeded derangement, so no clip keeps its own audio."""
    if len(ids) < 2:
        raise UsageError("--audio shuffled needs at least 2 clips")
    order = [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]
    return {order[i]: order[(i + 1) % len(order)] for i in range(len(order))}


Partners = dict[AudioMode, dict[str, str]]
"""Per condition that borrows another clip's audio (shuffled, offscreen): clip id -> the clip it hears."""


def condition_partners(store: Store, ids: list[str], settings: EvalSettings) -> Partners:
    """The partners of every condition `settings.audio` runs, drawn over all of `ids` (before any sharding)."""
    conditions = settings.audio.conditions()
    partners: Partners = {}
    if AudioMode.shuffled in conditions:
        partners[AudioMode.shuffled] = audio_partners(ids, settings.seed)
    if AudioMode.offscreen in conditions:
        partners[AudioMode.offscreen] = offscreen_partners(
            {i: store.meta(i).get("category") for i in ids}, settings.seed
        )
    return partners


def heard_waveform(
    store: Store, clip_id: str, waveform: np.ndarray, condition: AudioMode, settings: EvalSettings, partners: Partners
) -> np.ndarray:
    """The waveform clip `clip_id` is heard with under `condition`; the model's features come from it as from any."""
    if condition == AudioMode.silent:
        return silent_like(waveform)
    if condition == AudioMode.noise:
        return white_noise_like(waveform, settings.noise_dbfs, settings.seed, clip_id)
    if condition in (AudioMode.shuffled, AudioMode.offscreen):
        return store.read(partners[condition][clip_id], ("waveform",))["waveform"]
    return waveform


def _samples(store: Store, clip_id: str, settings: EvalSettings, partners: Partners) -> list[Sample]:
    """`first`: frame 0 with the clip-level audio; `all`: every annotated frame with its own audio window.

    One set per audio condition, in `AudioMode.conditions` order, all from one read of the clip.
    """
    names = (
        ("first_frame", "waveform", "masks", "mask_frames", "boxes") if settings.frames == FrameMode.first else _NAMES
    )
    item = store.read(clip_id, names)
    category = store.meta(clip_id).get("category")
    out = []
    for condition in settings.audio.conditions():
        waveform = heard_waveform(store, clip_id, item["waveform"], condition, settings, partners)
        if settings.frames == FrameMode.first:
            out.append(
                Sample(
                    clip_id,
                    0,
                    clip_id,
                    ClipInput(item["first_frame"], waveform, None, clip_id),
                    item,
                    condition,
                    category,
                )
            )
            continue
        for i in [int(i) for i in item.get("mask_frames", [0])]:
            key = f"{clip_id}#{i}"
            frame_input = ClipInput(item["frames"][i], waveform, float(item["frame_times"][i]), key)
            out.append(Sample(clip_id, i, key, frame_input, item, condition, category))
    return out


class _SharedEmbeddings:
    """The image embeddings of the current batch, shared by its audio conditions (the frames are the same),
    over the persistent embedding cache if there is one: SAM's image encoder runs once per frame, not per condition."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.batch: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        found = self.batch.get(key)
        if found is None and self.inner is not None:
            found = self.inner.get(key)
            if found is not None:
                self.batch[key] = found
        return found

    def put(self, key: str, embedding: Any) -> None:
        self.batch[key] = embedding
        if self.inner is not None:
            self.inner.put(key, embedding)


# -- the loop -------------------------------------------------------------------------------


@dataclass
class EvalOutput:
    """What `evaluate` returns: one row per clip x map (x sampler for masks) and the seconds spent per stage."""

    rows: list[dict[str, Any]]
    timings: dict[str, float]


def _sample_rows(
    predictor: Predictor,
    sample: Sample,
    clip: PreparedClip,
    settings: EvalSettings,
    timings: dict[str, float],
    keep: Callable[[str, dict[str, Any]], None] | None,
    heat_out: h5py.File | None,
) -> list[dict[str, Any]]:
    size = clip.size
    gt_frame = ground_truth(sample.item, size, sample.frame_index)
    protocol = protocol_size(sample.item, size)
    gt_protocol = ground_truth(sample.item, protocol, sample.frame_index)
    base = {"clip": sample.clip, "frame": sample.frame_index, "audio": sample.audio.value}
    heat_group = hdf5_name(sample.key) + (f"/{sample.audio.value}" if settings.audio == AudioMode.all else "")
    runs = predictor.mask_runs(settings.maps, settings.samplers)
    rows: list[dict[str, Any]] = []
    visuals: dict[str, Any] = {
        "frame": clip.frame,
        "gt": gt_frame,
        "audio": sample.audio.value,
        "heatmaps": {},
        "results": {},
        "heard": {},
    }
    for map_name in settings.maps:
        tick = time.perf_counter()
        heat = predictor.heatmap_tensor(map_name, clip=clip)
        scored = heat if protocol == size else predictor.heatmap_tensor(map_name, clip=clip, size=protocol)
        timings["heatmap_s"] += time.perf_counter() - tick
        heard = clip.heard[: predictor.zeroshot.top_labels] if map_name in TEXT_MAPS else ()
        said = {"heard": heard_text(heard), "heard_top": heard[0][0] if heard else None, "heard_right": None}
        if heard and sample.audio == AudioMode.normal and sample.category in predictor.zeroshot.labels:
            said["heard_right"] = int(heard[0][0] == sample.category)  # the clip's own sound, heard as its category
        visuals["heard"][map_name] = said["heard"]
        rows.append(
            {
                **base,
                "map": map_name,
                "sampler": None,
                "segmenter": None,
                **heatmap_row(scored, gt_protocol),
                "gt_fraction": float(gt_protocol.mean()),
                **said,
            }
        )
        visuals["heatmaps"][map_name] = heat.float().cpu().numpy()
        if heat_out is not None:
            heat_out.create_dataset(
                f"{heat_group}/{map_name}",
                data=visuals["heatmaps"][map_name].astype(np.float32),
                compression="gzip",
            )
        for choice in [choice for shown, choice in runs if shown == map_name]:
            tick = time.perf_counter()
            found = predictor.predict(
                map_name,
                choice.name,
                settings.seed,
                clip=clip,
                negatives=settings.negatives,
                mask_choice=settings.mask_choice,
                cascade_rounds=settings.cascade_rounds,
                cascade_threshold=settings.cascade_threshold,
                **choice.params,
            )
            timings["decoder_s"] += time.perf_counter() - tick
            rows.append(
                {
                    **base,
                    "map": map_name,
                    "sampler": choice.name,
                    "segmenter": found.segmenter,
                    "iou": metrics.mask_iou(found.mask, gt_frame),
                    "mask_f": metrics.f_measure(found.mask, gt_frame),
                    "ciou": metrics.ciou_of_mask(found.mask, gt_frame),
                    "score": found.score,
                    "rounds": found.rounds,
                    "mask_area": int(found.mask.sum()),
                    "fpr": metrics.false_positive_rate(found.mask) if sample.audio.negative else None,
                    "any_mask": int(metrics.any_foreground(found.mask)),
                    "pointing": _prompt_hit_rate(found.points, found.labels, gt_frame),
                    "points": found.points.round(2).tolist(),
                    "labels": found.labels.tolist(),
                    "gt_fraction": float(gt_frame.mean()),
                    **said,
                }
            )
            visuals["results"][(map_name, choice.name)] = (found.mask, found.prompts, rows[-1]["iou"])
    if keep is not None:
        keep(sample.key, visuals)
    return rows


def _batches(
    store: Store, ids: list[str], settings: EvalSettings, partners: Partners
) -> Iterator[tuple[int, list[Sample]]]:
    for start in range(0, len(ids), settings.batch_size):
        chunk = ids[start : start + settings.batch_size]
        yield len(chunk), [s for clip_id in chunk for s in _samples(store, clip_id, settings, partners)]


def prefetch(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """Yields `items` while a background thread already reads the next `depth` ones.

    Store reads and PNG decoding then overlap the encoders (both release the GIL).
    """
    queue: Queue = Queue(maxsize=depth)
    done = object()

    def produce() -> None:
        try:
            for item in items:
                queue.put(item)
        except BaseException as exc:  # handed to the consumer, raised there
            queue.put(_Failure(exc))
        queue.put(done)

    worker = threading.Thread(target=produce, daemon=True)
    worker.start()
    while (item := queue.get()) is not done:
        if isinstance(item, _Failure):
            raise item.error
        yield item
    worker.join()


@dataclass
class _Failure:
    error: BaseException


def evaluate(
    predictor: Predictor,
    settings: EvalSettings,
    ids: list[str],
    *,
    partners: Partners | None = None,
    on_batch: Callable[[int], None] | None = None,
    keep: Callable[[str, dict[str, Any]], None] | None = None,
    heat_out: h5py.File | None = None,
) -> EvalOutput:
    """Per-sample rows for `ids`: clip x map (heatmap protocol) and clip x map x sampler (masks), per audio condition.

    The conditions of a batch are prepared one after the other over the same frames; their image embeddings are
    computed once (`_SharedEmbeddings`), and `partners` are those of `condition_partners`.
    """
    timings = {"prepare_s": 0.0, "heatmap_s": 0.0, "decoder_s": 0.0}
    rows: list[dict[str, Any]] = []
    conditions = settings.audio.conditions()
    persistent = predictor.embedding_cache
    shared = _SharedEmbeddings(persistent) if len(conditions) > 1 else None
    try:
        if shared is not None:
            predictor.embedding_cache = shared
        with open_store(settings.data) as store:
            for n_clips, batch in prefetch(_batches(store, ids, settings, partners or {})):
                for condition in conditions:
                    heard = [s for s in batch if s.audio == condition]
                    tick = time.perf_counter()
                    prepared = predictor.prepare(
                        [s.input for s in heard], maps=settings.maps, batch_size=settings.batch_size
                    )
                    timings["prepare_s"] += time.perf_counter() - tick
                    for sample, clip in zip(heard, prepared):
                        rows.extend(_sample_rows(predictor, sample, clip, settings, timings, keep, heat_out))
                if shared is not None:
                    shared.batch.clear()
                if on_batch is not None:
                    on_batch(n_clips)
    finally:
        predictor.embedding_cache = persistent
    timings["image_encoder_calls"] = predictor.segmenter.encoder_calls
    return EvalOutput(rows, timings)


def dataset_order(path: Path, ids: list[str]) -> tuple[list[str], str]:
    """`ids` in the dataset's own listing order when the store recorded it (the official loaders batch in it), else sorted."""
    with open_store(path) as store:
        order = [store.meta(i).get("order") for i in ids]
    if ids and all(isinstance(o, int) for o in order):
        return [i for _, i in sorted(zip(order, ids))], "dataset"
    return sorted(ids), "sorted"


_NO_NEGATIVE_SCORES = {"fpr": None, "abstention_failure": None}


def summarise_rows(rows: list[dict[str, Any]], videos_per_batch: int = 1) -> list[dict[str, Any]]:
    """One metrics entry per (audio, map, sampler, segmenter), in first-seen order.

    `miou` / `mask_f` (F_0.3 of each binary mask) are per-frame means (batch-independent); `avsbench_miou` /
    `avsbench_fmeasure` are the AVS benchmark's own M_J / M_F with one video per batch; `fpr` /
    `abstention_failure` (mask entries of a negative audio condition only) AVSBench-Robust's false-positive
    rate and the share of frames that get any mask; `heard` (zero-shot maps only, else None) how often each
    label was the top one the audio was heard as, most frequent first, and `heard_accuracy` the share of frames
    whose top label is the clip's category (under normal audio, when the label set holds the store's categories).
    """
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row.get("audio", "normal"), row["map"], row["sampler"], row["segmenter"]), []).append(row)
    return [
        {
            "audio": a,
            "map": m,
            "sampler": s,
            "segmenter": g,
            **metrics.summarize(members),
            **metrics.avsbench_from_rows(members, videos_per_batch),
            **(
                metrics.negative_audio_summary(members)
                if s is not None and AudioMode(a).negative
                else _NO_NEGATIVE_SCORES
            ),
            "heard": heard_counts(members),
            "heard_accuracy": _mean_or_none([r["heard_right"] for r in members if r.get("heard_right") is not None]),
        }
        for (a, m, s, g), members in groups.items()
    ]


def _mean_or_none(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def heard_counts(rows: list[dict[str, Any]]) -> dict[str, int] | None:
    """How often each label was the top one heard over `rows` (a zero-shot map's), most frequent first; else None."""
    tops = [row["heard_top"] for row in rows if row.get("heard_top")]
    if not tops:
        return None
    counts: dict[str, int] = {}
    for label in tops:
        counts[label] = counts.get(label, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def robustness_records(results: list[dict[str, Any]], map_name: str, sampler: str | None) -> dict[str, dict[str, Any]]:
    """metrics.json's `robustness`: per audio condition, the results entry of the headline run (the report's
    map and sampler), so that one condition is one record."""
    return {r["audio"]: r for r in results if r["map"] == map_name and r["sampler"] == sampler}


def _gather(rows: list[dict[str, Any]], world: int) -> list[dict[str, Any]]:
    if world == 1:
        return rows
    parts: list[Any] = [None] * world
    dist.all_gather_object(parts, rows)
    return [row for part in parts for row in part]


def _csv_bytes(rows: list[dict[str, Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in CSV_COLUMNS})
    return buffer.getvalue().encode("utf-8")


def make_predictor(settings: EvalSettings, device: str) -> Predictor:
    """The Predictor every evaluation uses; image interpolation follows the dataset's protocol."""
    return Predictor.from_checkpoint(
        settings.checkpoint,
        device=device,
        segmenter=settings.segmenter,
        sam_model=settings.sam_model,
        sam_checkpoint=settings.sam_checkpoint,
        resnet_checkpoint=settings.resnet_checkpoint,
        alpha=settings.alpha,
        align_corners=settings.align_corners,
        interpolation=store_dataset(settings.data).test_interpolation,
        pretrained_prior=settings.pretrained_prior,
        abstain=settings.abstain if settings.checkpoint is not None else False,
        zeroshot=settings.zeroshot,
    )


def run_evaluation(settings: EvalSettings, *, progress: Callable[..., Any]) -> dict[str, Any]:
    """Evaluates, writes metrics.json / per_sample.csv (/ report.html, heatmaps), returns metrics.json's content."""
    rank, world, device = init_distributed(settings.device)
    start = time.perf_counter()
    all_ids = validation_ids(settings.data, settings.split)
    ids, clip_order = dataset_order(
        settings.data, [i for i in filter_subset(all_ids, settings.subset) if i not in settings.exclude]
    )
    ids = ids[: settings.limit]
    if not ids:
        raise UsageError(
            f"no annotated clips of {settings.data} are in subset {settings.subset}", hint="check --subset and --split"
        )
    with open_store(settings.data) as store:
        partners = condition_partners(store, ids, settings)
    predictor = make_predictor(settings, device)
    settings = replace(settings, maps=settings.maps or predictor.default_maps)
    out = settings.out
    out.mkdir(parents=True, exist_ok=True)
    runs = predictor.mask_runs(settings.maps, settings.samplers)  # the report shows the last one's masks
    shown_map, shown_sampler = (runs[-1][0], runs[-1][1].name) if runs else (settings.maps[-1], None)
    reporter = ReportWriter(out, shown_map, shown_sampler) if settings.report and rank == 0 else None
    mine = ids[rank::world]
    with ExitStack() as stack:
        if settings.embedding_cache is not None and predictor.segmenter.name in ("sam", "sam2"):
            name = settings.sam_checkpoint.name if settings.sam_checkpoint else "default"
            predictor.embedding_cache = stack.enter_context(
                closing(EmbeddingCache(settings.embedding_cache, f"{settings.sam_model}:{name}"))
            )
        heat_out = None
        if settings.save_heatmaps is not None and world == 1:
            heat_path = stack.enter_context(atomic_path(settings.save_heatmaps))
            heat_out = stack.enter_context(h5py.File(heat_path, "w"))
        bar = stack.enter_context(progress())
        task = bar.add_task("eval", total=len(mine), rate="")
        t0 = time.perf_counter()

        def advance(n: int) -> None:
            bar.advance(task, n)
            done = bar.tasks[0].completed
            bar.update(task, rate=f"{done / max(time.perf_counter() - t0, 1e-9):.2f} clips/s")

        output = evaluate(
            predictor, settings, mine, partners=partners, on_batch=advance, keep=reporter, heat_out=heat_out
        )
    position = {clip_id: k for k, clip_id in enumerate(ids)}
    rows = sorted(
        _gather(output.rows, world), key=lambda r: position[r["clip"]]
    )  # the dataset's order, whatever the sharding
    total = time.perf_counter() - start
    n_frames = len({(r["clip"], r["frame"]) for r in rows})
    results = summarise_rows(rows, settings.videos_per_batch)
    robustness = robustness_records(results, shown_map, shown_sampler)
    summary = {
        "results": results,
        "robustness": robustness,
        "timings": {**output.timings, "total_s": total, "frames_per_s": n_frames / total if total > 0 else None},
        "settings": {
            **settings.to_json(),
            "n_clips": len(ids),
            "world_size": world,
            "device": device,
            "segmenter": predictor.segmenter.name,
            "clip_order": clip_order,
            "gsavl": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    }
    if rank == 0:
        write_atomic(out / "metrics.json", json.dumps(summary, indent=2, default=str).encode("utf-8"))
        write_atomic(out / "per_sample.csv", _csv_bytes(rows))
        if reporter is not None:
            if len(settings.audio.conditions()) > 1:  # the robustness table: one row per condition
                shown = list(robustness.values())
            else:
                shown = [
                    r for r in results if r["map"] == reporter.map_name and r["sampler"] in (None, reporter.sampler)
                ]
            title = f"gsavl eval · {settings.data.name} · {reporter.map_name} / {reporter.sampler or 'heatmap'} · {predictor.segmenter.name} segmenter · audio {settings.audio.value}"
            reporter.write(title, shown)
    return summary
