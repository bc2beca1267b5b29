"""`gsavl eval`: heatmaps and masks scored against a store's annotations, as a table, metrics.json and a report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from gsavl_cli.choices import AudioMode, ClapModel, FrameMode, MaskChoice, SamModel
from gsavl_cli.cli.app import command
from gsavl_cli.cli.inspect import skip_damaged
from gsavl_cli.cli.options import (
    AbstainOpt,
    AlignOpt,
    AlphaOpt,
    CascadeOpt,
    CascadeThresholdOpt,
    CheckpointOpt,
    ClapCkptOpt,
    ClapModelOpt,
    ClipSegCkptOpt,
    LabelsOpt,
    MaskChoiceOpt,
    NegativesOpt,
    ParamOpt,
    PriorCkptOpt,
    SamCkptOpt,
    SamModelOpt,
    SamplerOpt,
    SegmenterOpt,
    SkipBadOpt,
    SubsetOpt,
    TopLabelsOpt,
    choose_checkpoint,
    parse_maps,
    parse_samplers,
    predictor_fields,
)
from gsavl_cli.console import OPTIONS, err, info, print_json, progress


@command(
    name="eval",
    epilog="Examples:\n\n  gsavl eval --dataset s4_test.h5 --checkpoint runs/s4/best.pt --out runs/s4/eval --report\n\n"
    "  gsavl eval --dataset vggss.h5 --checkpoint best.pt --map avobj --sampler prob --out eval_vggss\n\n"
    "  gsavl eval --dataset s4_test.h5 --checkpoint best.pt --audio shuffled   # does the model listen?\n\n"
    "  gsavl eval --dataset s4_test.h5 --checkpoint best.pt --audio all --report   # the robustness table\n\n"
    "  gsavl eval --dataset s4_test.h5 --checkpoint best.pt --map text,obj,av --sampler prob   # zero-shot beside trained",
)
def evaluate(
    ctx: typer.Context,
    dataset: Annotated[
        str, typer.Option(help="Annotated HDF5 file (AVSBench masks or VGG-SS boxes), or avsbench-s4 / vggss.")
    ],
    checkpoint: CheckpointOpt = None,
    out: Annotated[Path, typer.Option(help="Folder for metrics.json, per_sample.csv and the report.")] = Path("eval"),
    split: Annotated[str, typer.Option(help="Split to evaluate.")] = "test",
    frames: Annotated[
        FrameMode,
        typer.Option(
            help="first: each clip's first frame (GSAVL protocol; its AVS M_J / M_F are not the benchmark's); all: every annotated frame with its own audio window (the AVS benchmark's M_J / M_F, one video per batch)."
        ),
    ] = FrameMode.first,
    maps: Annotated[
        str | None,
        typer.Option(
            "--map",
            help="Heatmaps, comma-separated: av, obj, avobj; text, textobj (zero-shot). Default: av, obj, avobj; av alone for a model with its own mask.",
            show_default=False,
        ),
    ] = None,
    sampler: SamplerOpt = "naive,grid,prob",
    param: ParamOpt = None,
    segmenter: SegmenterOpt = None,
    sam_model: SamModelOpt = SamModel.vit_h,
    sam_checkpoint: SamCkptOpt = None,
    mask_choice: MaskChoiceOpt = MaskChoice.single,
    cascade_rounds: CascadeOpt = 1,
    cascade_threshold: CascadeThresholdOpt = 0.3,
    negatives: NegativesOpt = 0,
    abstain: AbstainOpt = False,
    alpha: AlphaOpt = 0.4,
    align_corners: AlignOpt = True,
    audio: Annotated[
        AudioMode,
        typer.Option(
            help="normal; shuffled (each clip hears another clip's audio, a control); the negative conditions of AVSBench-Robust, scored with FPR and abstention failure: silent (digital silence), noise (white noise at --noise-dbfs), offscreen (a clip of another category); all: every one over the same frames, one row each."
        ),
    ] = AudioMode.normal,
    noise_dbfs: Annotated[
        float,
        typer.Option(
            max=-4.77,
            help="--audio noise: the white noise's RMS level in dB re full scale (1.0), seeded per clip; -4.77 is uniform noise over the whole range [-1, 1], as AVSBench-Robust's.",
        ),
    ] = -4.77,
    batch_size: Annotated[int, typer.Option(min=1, help="Frames per batch through the encoders.")] = 8,
    videos_per_batch: Annotated[
        int,
        typer.Option(
            min=1,
            help="Videos per batch of the AVS benchmark's M_J / M_F, batched in the dataset's own order (AVSBench's test.py: 1; its released test script and AVSegFormer's configs pass more). M_F depends on it.",
        ),
    ] = 1,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N clips.")] = None,
    subset: SubsetOpt = None,
    embedding_cache: Annotated[
        Path | None, typer.Option(help="HDF5 file caching SAM image embeddings across runs.")
    ] = None,
    save_heatmaps: Annotated[
        Path | None,
        typer.Option(help="HDF5 file of every sample's float32 heatmaps (KEY/MAP), exactly the maps that were scored."),
    ] = None,
    report: Annotated[
        bool,
        typer.Option(
            help="Write report.html: frame, heatmap + prompts, predicted mask, ground truth; sortable by IoU."
        ),
    ] = False,
    prior_checkpoint: PriorCkptOpt = None,
    labels: LabelsOpt = "avsbench-s4",
    top_labels: TopLabelsOpt = 1,
    clap_model: ClapModelOpt = ClapModel.clap_htsat_unfused,
    clap_checkpoint: ClapCkptOpt = None,
    clipseg_checkpoint: ClipSegCkptOpt = None,
    skip_bad: SkipBadOpt = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print metrics.json on stdout.")] = False,
) -> None:
    """Evaluate heatmaps and masks: IoU/F (AVSBench), cIoU/AP50/AUC (VGG-SS), pointing game."""
    from gsavl_cli.commands.evaluate import EvalSettings, run_evaluation
    from gsavl_cli.datasets import resolve_dataset

    chosen_maps = parse_maps(maps) if maps is not None else None
    data = resolve_dataset(dataset)
    checkpoint = choose_checkpoint(checkpoint, chosen_maps or ())
    settings = EvalSettings(
        data=data,
        checkpoint=checkpoint,
        out=out,
        split=split,
        frames=frames,
        maps=chosen_maps,
        samplers=parse_samplers(sampler, param),
        **predictor_fields(ctx.params),
        audio=audio,
        noise_dbfs=noise_dbfs,
        batch_size=batch_size,
        limit=limit,
        subset=subset,
        embedding_cache=embedding_cache,
        save_heatmaps=save_heatmaps,
        report=report,
        exclude=skip_damaged(data) if skip_bad else (),
        videos_per_batch=videos_per_batch,
    )
    from gsavl_cli.io.files import guard_outputs

    guard_outputs(
        {
            "--out": out,
            **{f"--out {name}": out / name for name in ("metrics.json", "per_sample.csv", "report.html")},
            "--save-heatmaps": save_heatmaps,
            "--embedding-cache": embedding_cache,
        },
        {
            "data file": data,
            "checkpoint": checkpoint,
            "--sam-checkpoint": sam_checkpoint,
            "--resnet-checkpoint": prior_checkpoint,
            "--clap-checkpoint": clap_checkpoint,
            "--clipseg-checkpoint": clipseg_checkpoint,
        },
    )
    result = run_evaluation(settings, progress=progress)
    clips = f"{dataset} · {result['settings']['n_clips']} clips"
    if audio == AudioMode.all:
        print_robustness(result["robustness"], title=f"{clips} · robustness")
    else:
        print_results(result["results"], title=f"{clips} · audio {audio.value}")
    if frames == FrameMode.first and any(r.get("avsbench_miou") is not None for r in result["results"]):
        info(
            "[yellow]note:[/] AVS M_J / M_F here score each clip's first frame only; the benchmark's numbers need --frames all"
        )
    written = (
        [out / "metrics.json", out / "per_sample.csv"]
        + ([out / "report.html"] if report else [])
        + ([save_heatmaps] if save_heatmaps else [])
    )
    info("wrote " + ", ".join(str(p) for p in written))
    if json_output:
        print_json(result)


METRIC_HEADERS = {
    "miou": "mIoU %",
    "mask_f": "mask F %",
    "fpr": "FPR %",
    "abstention_failure": "abstain fail %",
    "avsbench_miou": "AVS M_J %",
    "avsbench_fmeasure": "AVS M_F %",
    "ciou": "cIoU %",
    "ap50": "AP50 %",
    "auc": "AUC %",
    "pointing_game": "pointing %",
    "heard_accuracy": "heard right %",
}
"""The terminal's column title of each metric of metrics.json's results (`viz.report.SUMMARY_KEYS` orders them)."""


def percent(value: object) -> str:
    """A metric as the tables show it: a fraction in percent with two decimals; `-` for none."""
    return "-" if value is None else f"{100 * value:.2f}" if isinstance(value, float) else str(value)


NEGATIVE_KEYS = ("fpr", "abstention_failure")
"""Scored under negative audio only: their columns are shown when some row has them."""


def print_results(results: list[dict], title: str, by_audio: bool = False) -> None:
    """metrics.json's results (or its robustness records, `by_audio`: one row per condition) as a table on stderr
    (nothing under -q)."""
    from gsavl_cli.viz.report import SUMMARY_KEYS

    if OPTIONS.quiet:
        return
    metrics = [
        k
        for k in SUMMARY_KEYS
        if k in METRIC_HEADERS
        and (k not in (*NEGATIVE_KEYS, "heard_accuracy") or any(r.get(k) is not None for r in results))
    ]
    caption = "AVS M_J / M_F: the AVS benchmark's batch-level metrics (one video per batch)"
    if any(k in NEGATIVE_KEYS for k in metrics):
        caption += "; under negative audio (silent, noise, offscreen) FPR: share of pixels predicted foreground, abstain fail: share of frames with any mask"
    heard = any(r.get("heard") for r in results)  # a zero-shot map: the label its audio was most often heard as
    if heard:
        caption += "; heard: the text map's most frequent top label (frames)"
    if "heard_accuracy" in metrics:
        caption += "; heard right: frames whose top label is the clip's category"
    table = Table(
        *(("audio",) if by_audio else ()),
        "map",
        "sampler",
        "segmenter",
        "n",
        *(METRIC_HEADERS[k] for k in metrics),
        *(("heard",) if heard else ()),
        title=title,
        caption=caption,
    )
    for r in results:
        table.add_row(
            *((r["audio"],) if by_audio else ()),
            r["map"],
            r["sampler"] or "(heatmap)",
            r["segmenter"] or "-",
            str(r["n"]),
            *(percent(r.get(k)) for k in metrics),
            *((_top_heard(r.get("heard")),) if heard else ()),
        )
    err.print(table)


def _top_heard(counts: dict[str, int] | None) -> str:
    """The most frequent top label of a zero-shot map's entry and its frame count; `-` for the other maps."""
    if not counts:
        return "-"
    label, n = next(iter(counts.items()))
    return f"{label} ({n})"


ROBUSTNESS_KEYS = ("miou", "mask_f", "fpr", "abstention_failure")
"""The robustness table's columns (`--audio all`), as in AVSBench-Robust: quality, and false positives under negative audio."""


def print_robustness(records: dict[str, dict], title: str) -> None:
    """metrics.json's robustness records as a table on stderr: one row per audio condition (nothing under -q)."""
    if OPTIONS.quiet or not records:
        return
    first = next(iter(records.values()))
    table = Table(
        "audio",
        "n",
        *(METRIC_HEADERS[k] for k in ROBUSTNESS_KEYS),
        title=f"{title} · {first['map']} / {first['sampler'] or '(heatmap)'} · {first['segmenter'] or '-'}",
        caption="negative audio (silent, noise, offscreen): nothing in the frame sounds; FPR: share of pixels "
        "predicted foreground; abstain fail: share of frames with any mask. shuffled is a control (it may hear "
        "the same category).",
    )
    for condition, r in records.items():
        table.add_row(condition, str(r["n"]), *(percent(r.get(k)) for k in ROBUSTNESS_KEYS))
    err.print(table)
