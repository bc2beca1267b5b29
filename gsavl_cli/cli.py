"""The `gsavl` command: thin Typer functions that call the library and print with rich."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from gsavl_cli import __version__
from gsavl_cli.choices import AudioMode, FrameMode, MapName, MaskChoice, SamModel, SegmenterName
from gsavl_cli.console import OPTIONS, err, handle_errors, info, out, print_json, progress, rate
from gsavl_cli.datasets import SEMANTIC_SUBSETS, list_datasets
from gsavl_cli.errors import UsageError

if TYPE_CHECKING:
    from gsavl_cli.commands.preprocess import PreprocessResult

app = typer.Typer(
    name="gsavl",
    help="Shape-aware sound-source localization: audio-visual localizer -> prompt sampler -> Segment Anything.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


_LAYOUTS = ["auto", *(d.name for d in list_datasets())]
LAYOUT_HELP = f"{', '.join(_LAYOUTS[:-1])} or {_LAYOUTS[-1]}."
"""`preprocess --layout`'s help: the registered dataset layouts, after "auto"."""


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gsavl {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed for every random choice (sampling, shuffling, init).")] = 123,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks and debug detail.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or chatter.")] = False,
    version: Annotated[
        bool | None, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = None,
) -> None:
    """Global options go before or after the subcommand: `gsavl --device cuda eval ...`."""
    OPTIONS.device, OPTIONS.seed, OPTIONS.verbose, OPTIONS.quiet = device, seed, verbose, quiet


def _parse_times(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        times = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UsageError(
            f"--frame-times must be comma-separated seconds, got {text!r}", hint="e.g. --frame-times 0,2.5"
        ) from None
    if not times or min(times) < 0:
        raise UsageError("--frame-times needs at least one time >= 0")
    return times


@app.command(
    epilog="Examples:\n\n  gsavl preprocess ./videos -o videos.h5\n\n"
    "  gsavl preprocess AVSBench_object -o s4_test.h5 --layout avsbench-s4 --split test\n\n"
    "  gsavl preprocess vggsound/ -o vggss.h5 --layout vggsound --annotations vggss.json --split test"
)
@handle_errors
def preprocess(
    source: Annotated[Path, typer.Argument(help="A video, a folder of videos, or a dataset root.")],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="HDF5 file to write (default: SOURCE.h5).")
    ] = None,
    layout: Annotated[str, typer.Option(help=LAYOUT_HELP)] = "auto",
    split: Annotated[str, typer.Option(help="train, val, test or all.")] = "all",
    frame_times: Annotated[
        str | None, typer.Option(help="Frame times in seconds for plain videos, e.g. 0,2.5 (default: first frame).")
    ] = None,
    vggish_seconds: Annotated[
        float | None,
        typer.Option(help="Centred audio window for the log-mel features (default: whole clip; 3 s for vggsound)."),
    ] = None,
    annotations: Annotated[
        Path | None, typer.Option(help="VGG-SS boxes file (vggss.json) for the vggsound layout.")
    ] = None,
    subset: Annotated[
        str | None,
        typer.Option(
            help="Only these clips: a file of ids, or vggss_10k, vggss_144k, vggss_heard_test, vggss_unheard_test."
        ),
    ] = None,
    semantic_subsets: Annotated[
        str, typer.Option(help=f"AVSBench-semantic subsets, comma-separated: {','.join(SEMANTIC_SUBSETS)}.")
    ] = ",".join(SEMANTIC_SUBSETS),
    workers: Annotated[int, typer.Option(help="Parallel decode processes (default: CPU cores).")] = 0,
    name: Annotated[
        str | None,
        typer.Option(
            help="Register the store under this dataset name for `train --dataset NAME` (default: the dataset's name, e.g. vggsound or avsbench-s4; a plain folder's own name)."
        ),
    ] = None,
    register: Annotated[bool, typer.Option(help="Register the store in the data home (see `gsavl datasets`).")] = True,
    overwrite: Annotated[bool, typer.Option(help="Start the output over instead of resuming it.")] = False,
    shard: Annotated[
        str | None,
        typer.Option(
            rich_help_panel="Sharding",
            help="Only shard K/N of the clips (0 <= K < N, by a stable hash of the clip id); merge the parts with `gsavl merge`.",
        ),
    ] = None,
    executor: Annotated[
        str | None,
        typer.Option(
            rich_help_panel="Sharding",
            help="Run --shards shards through submitit: slurm (a job array) or local (processes here), then merge into -o.",
        ),
    ] = None,
    shards: Annotated[
        int, typer.Option(min=1, rich_help_panel="Sharding", help="With --executor: how many shards (array tasks).")
    ] = 4,
    partition: Annotated[
        str | None, typer.Option(rich_help_panel="Sharding", help="With --executor slurm: the SLURM partition.")
    ] = None,
    time_limit: Annotated[
        int, typer.Option("--time", min=1, rich_help_panel="Sharding", help="With --executor: minutes per task.")
    ] = 240,
    cpus: Annotated[
        int,
        typer.Option(min=1, rich_help_panel="Sharding", help="With --executor slurm: CPUs (decode workers) per task."),
    ] = 4,
    json_output: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")] = False,
) -> None:
    """Decode frames and audio, compute features, and write them to one HDF5 file.

    Re-running the same command resumes: clips already in the file are skipped.
    """
    from gsavl_cli.commands.preprocess import make_settings, run_preprocess
    from gsavl_cli.datasets import VIDEO_SUFFIXES, Ignored, discover, store_name
    from gsavl_cli.io.files import guard_outputs

    if annotations is not None and not annotations.exists():
        raise UsageError(f"annotations file not found: {annotations}")
    ignored: list[Ignored] = []
    layout, clips = discover(
        source,
        layout,
        split,
        annotations=annotations,
        subsets=tuple(s.strip() for s in semantic_subsets.split(",") if s.strip()),
        subset=subset,
        ignored=ignored,
    )
    if not clips:
        skipped = "; ".join(f"{i.source.name}: {i.reason}" for i in ignored[:3]) + (" ..." if len(ignored) > 3 else "")
        raise UsageError(
            f"no clips found in {source} (layout {layout}, split {split})"
            + (f"; ignored {len(ignored)} file(s): {skipped}" if ignored else ""),
            hint="check SOURCE, --layout and --split",
        )
    if output is None:
        output = source.with_suffix(".h5") if source.is_file() else Path(f"{source.resolve().name}.h5")
    guard_outputs(
        {"-o": output},
        {
            "source video": source if source.is_file() else None,
            "--annotations file": annotations,
            "--subset list": subset if subset and Path(subset).is_file() else None,
        },
        many_inputs=(p for c in clips for p in (c.video, c.audio, *(c.frame_files or ()), *c.mask_files.values()) if p),
        walked=[source] if source.is_dir() else [],
        video_suffixes=VIDEO_SUFFIXES,
    )
    settings = make_settings(layout, _parse_times(frame_times), vggish_seconds)
    workers = workers or os.cpu_count() or 1
    if shard is not None and executor is not None:
        raise UsageError("--shard runs one shard here; --executor runs all of them", hint="pass one of them")
    if executor is not None:
        _preprocess_on_executor(clips, settings, output, executor, shards, partition, time_limit, cpus, json_output)
        if register:
            _register(name or store_name(layout, source, subset), output, layout, len(clips))
        return
    shard_spec = None
    if shard is not None:
        from gsavl_cli.commands.shards import parse_shard, select_shard, start_shard

        shard_spec = parse_shard(shard)
        clips = select_shard(clips, *shard_spec)
        register = False  # a part is not a dataset until merged
        start_shard(output, settings, *shard_spec, [c.clip_id for c in clips], overwrite=overwrite)
        overwrite = False
    info(f"[bold]{len(clips)}[/] clips ({layout}, split {split}) -> {output}")
    start = time.perf_counter()
    with progress() as bar:
        task = bar.add_task("preprocess", total=len(clips), rate="")

        def advance(_src: object, _ok: bool) -> None:
            bar.advance(task)
            done = int(bar.tasks[0].completed)
            bar.update(task, rate=rate(done, time.perf_counter() - start, "clips"))

        result = run_preprocess(
            clips, output, settings, workers=workers, overwrite=overwrite, on_clip=advance, ignored=ignored
        )
        bar.update(task, completed=result.skipped + result.written + len(result.failed))

    _report_preprocess(result)
    if result.ignored and not OPTIONS.quiet:
        shown = 10
        err.print(f"[yellow]ignored[/] {len(result.ignored)} file(s) that are not clips:")
        for item in result.ignored[:shown]:
            err.print(f"  {item.source}: {item.reason}")
        if len(result.ignored) > shown:
            err.print(f"  ... and {len(result.ignored) - shown} more (all of them in --json)")
    if json_output:
        print_json(result.to_json())
    if result.interrupted:
        err.print(f"[yellow]interrupted[/]: {result.written} clips written; run the same command again to finish")
        raise typer.Exit(130)
    if register and result.written + result.skipped:
        _register(name or store_name(layout, source, subset), output, layout, result.written + result.skipped)
    if result.failed:
        raise typer.Exit(1)


def _preprocess_on_executor(
    clips,
    settings,
    output: Path,
    executor: str,
    shards: int,
    partition: str | None,
    minutes: int,
    cpus: int,
    json_output: bool,
) -> None:
    """`preprocess --executor`: every shard through submitit, then one merged store at -o."""
    from gsavl_cli.commands.shards import ClusterPlan, merge_stores, run_sharded

    plan = ClusterPlan(executor, shards, output.with_name(output.name + ".parts"), partition, minutes, cpus)
    info(f"[bold]{len(clips)}[/] clips in {shards} shards on the {executor} executor; parts and logs in {plan.folder}")
    with progress() as bar:
        task = bar.add_task("shards", total=shards, rate="")
        parts = run_sharded(clips, settings, plan, on_progress=lambda done, total: bar.update(task, completed=done))
    with progress() as bar:
        task = bar.add_task("merge", total=len(clips), rate="")
        merged = merge_stores(output, parts, allow_missing=True, on_clip=lambda _id: bar.advance(task))
    lacking = sum(len(v) for v in merged.missing.values())
    info(
        f"merged {merged.clips} clips into [bold]{output}[/]"
        + (f"; {lacking} clip(s) failed in their shard (see the logs)" if lacking else "")
    )
    if json_output:
        print_json(merged.to_json())
    if lacking:
        raise typer.Exit(1)


@app.command(epilog="Example:\n\n  gsavl merge vggsound.h5 vggsound.h5.parts/part-*.h5")
@handle_errors
def merge(
    output: Annotated[Path, typer.Argument(help="The merged store to write.")],
    parts: Annotated[list[Path], typer.Argument(help="Every part-K.h5 of one `preprocess --shard K/N` run.")],
    allow_missing: Annotated[
        bool, typer.Option(help="Merge although some parts lack clips (failed or unfinished); they are listed.")
    ] = False,
    name: Annotated[str | None, typer.Option(help="Register the merged store under this dataset name.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")] = False,
) -> None:
    """Merge the parts of a sharded preprocess into one store (refuses missing, unfinished or overlapping parts)."""
    from gsavl_cli.commands.shards import merge_stores
    from gsavl_cli.io.files import guard_outputs

    guard_outputs({"OUTPUT": output}, {f"part {p}": p for p in parts})
    with progress() as bar:
        task = bar.add_task("merge", total=None, rate="")
        result = merge_stores(output, parts, allow_missing=allow_missing, on_clip=lambda _id: bar.advance(task))
    info(f"merged {result.clips} clips from {result.parts} parts into [bold]{output}[/]")
    for part, lacking in result.missing.items():
        err.print(f"[yellow]missing[/] {len(lacking)} clip(s) of {escape(part)}, e.g. {escape(lacking[0])}")
    if name:
        from gsavl_cli.io.store import open_store

        with open_store(output) as store:
            layout = str(store.settings.get("layout", "folder"))
        _register(name, output, layout, result.clips)
    if json_output:
        print_json(result.to_json())


def _register(name: str, output: Path, layout: str, clips: int) -> None:
    from gsavl_cli.home import register_store

    replaced = register_store(name, output, layout, clips)
    info(
        f"registered as dataset [bold]{name}[/]: `gsavl train --dataset {name}`"
        + (f" (it named {replaced.path} before)" if replaced else "")
    )


@app.command(name="datasets", epilog="Example:\n\n  gsavl datasets --json")
@handle_errors
def list_datasets_command(
    json_output: Annotated[bool, typer.Option("--json", help="Print as JSON on stdout.")] = False,
) -> None:
    """List the named datasets (stores registered by `gsavl preprocess`) that `--dataset NAME` accepts."""
    from dataclasses import asdict

    from gsavl_cli.datasets import named_datasets
    from gsavl_cli.home import data_dir, named_stores

    stores = named_stores()
    if json_output:
        print_json([{**asdict(s), "exists": s.exists} for s in stores.values()])
        return
    if not stores:
        err.print(f"no named datasets in {data_dir()} yet: `gsavl preprocess SOURCE` registers one")
        return
    table = Table("name", "layout", "clips", "file", "also answers to", title=f"named datasets ({data_dir()})")
    named = named_datasets().values()
    for s in stores.values():
        aliases = ", ".join(n.name for n in named if n.store == s.name and n.name != s.name) or "-"
        table.add_row(
            s.name,
            s.layout,
            "?" if s.clips < 0 else str(s.clips),
            s.path if s.exists else f"[red]{s.path} (gone)[/]",
            aliases,
        )
    out.print(table)


def _report_preprocess(result: PreprocessResult) -> None:
    if OPTIONS.quiet:
        return
    table = Table(title=f"{result.output}", show_header=True)
    table.add_column("written", justify="right")
    table.add_column("skipped (already there)", justify="right")
    table.add_column("failed", justify="right")
    table.add_row(str(result.written), str(result.skipped), str(len(result.failed)))
    err.print(table)
    for failure in result.failed:
        err.print(f"[red]failed[/] {failure.source}: {failure.reason}")


@app.command(epilog="Example:\n\n  gsavl inspect videos.h5 --clips 5")
@handle_errors
def inspect(
    file: Annotated[Path, typer.Argument(help="An HDF5 file written by `gsavl preprocess`.")],
    clips: Annotated[int, typer.Option(help="How many clips to list in detail (-1: all).")] = 10,
    verify: Annotated[
        bool,
        typer.Option(
            help="Read and decode every clip's frames, audio and masks; list the damaged ones (exit 1 if any)."
        ),
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print everything as JSON on stdout.")] = False,
) -> None:
    """Show a data file's settings, clip count, and each clip's arrays and annotations."""
    from gsavl_cli.io.store import open_store

    if verify:
        _verify_store(file, json_output)
        return

    with open_store(file) as store:
        shown = store.ids if clips < 0 else store.ids[:clips]
        details = []
        for clip_id in shown:
            arrays = store.arrays(clip_id)
            details.append(
                {
                    "id": clip_id,
                    "meta": store.meta(clip_id),
                    "arrays": {k: {"shape": list(s), "dtype": d} for k, (s, d) in arrays.items()},
                }
            )
        summary = {
            "file": str(file),
            "tool_version": store.tool_version,
            "settings": store.settings,
            "clips": len(store),
            "details": details,
        }
    if json_output:
        print_json(summary)
        return
    err.print(f"[bold]{file}[/]: {summary['clips']} clips, made by gsavl {summary['tool_version']}")
    settings = Table("setting", "value", title="settings")
    for key, value in sorted(store.settings.items()):
        settings.add_row(key, str(value))
    err.print(settings)
    table = Table("clip", "split", "category", "arrays", "annotations", title=f"first {len(details)} clips")
    for item in details:
        arrays = ", ".join(f"{k} {tuple(v['shape'])}" for k, v in item["arrays"].items() if k not in ("masks", "boxes"))
        notes = (
            ", ".join(f"{k} {tuple(v['shape'])}" for k, v in item["arrays"].items() if k in ("masks", "boxes")) or "-"
        )
        table.add_row(item["id"], str(item["meta"].get("split")), str(item["meta"].get("category")), arrays, notes)
    err.print(table)


def _verify_store(file: Path, json_output: bool) -> None:
    damaged = _damaged_clips(file)
    if json_output:
        print_json({"file": str(file), "damaged": [{"id": k, "reason": v} for k, v in damaged.items()]})
    elif damaged:
        table = Table("clip", "what is wrong", title=f"{file}: {len(damaged)} damaged clip(s)")
        for clip_id, reason in damaged.items():
            table.add_row(clip_id, reason)
        out.print(table)
    else:
        out.print(f"{file}: every clip reads back")
    if damaged:
        raise typer.Exit(1)


def _damaged_clips(file: Path) -> dict[str, str]:
    """Every damaged clip of a store, with a progress bar (inspect --verify, --skip-bad)."""
    from gsavl_cli.io.store import find_damaged, open_store

    with open_store(file) as store:
        total = len(store)
    with progress() as bar:
        task = bar.add_task(f"verify {file.name}", total=total, rate="")
        return find_damaged(file, on_clip=lambda _id: bar.advance(task))


def _skip_damaged(*files: Path | None) -> tuple[str, ...]:
    """--skip-bad: the damaged clips of these stores, each named once on stderr."""
    left_out: list[str] = []
    for file in dict.fromkeys(f for f in files if f is not None):
        for clip_id, reason in _damaged_clips(file).items():
            err.print(f"[yellow]skipping[/] damaged clip {escape(clip_id)} of {escape(str(file))}: {escape(reason)}")
            left_out.append(clip_id)
    return tuple(left_out)


SkipBadOpt = Annotated[
    bool, typer.Option(help="Verify the store first and leave out the clips whose bytes are damaged (each is named).")
]
SubsetOpt = Annotated[
    str | None,
    typer.Option(
        help="Only these clips: a file of ids, or vggss_10k, vggss_144k, vggss_heard_test, vggss_unheard_test."
    ),
]


def _default_subset(dataset: str) -> str | None:
    """Named VGGSound datasets use EZ-VSL's published lists when they can be had."""
    from gsavl_cli.datasets import named_datasets
    from gsavl_cli.errors import WeightsError
    from gsavl_cli.weights import resolve_weights

    named = named_datasets().get(dataset)
    name = named.subset if named else None
    if name is None:
        return None
    try:
        resolve_weights(f"subset_{name}", progress=not OPTIONS.quiet)
    except WeightsError as exc:
        info(f"[yellow]note:[/] {exc}; training on every clip of the file (pass --subset to choose)")
        return None
    return name


@app.command(
    epilog="Examples:\n\n  gsavl train --dataset vggsound10k --val vggss.h5 --out runs/gsavl\n\n"
    "  gsavl train --dataset s4.h5 --model ezvsl --epochs 10 --batch-size 32\n\n"
    "  gsavl train --dataset s4.h5 --model ssl2avs-pvt --out runs/ssl2avs-s4\n\n"
    "  torchrun --nproc-per-node 4 -m gsavl_cli train --dataset vggsound144k --out runs/big"
)
@handle_errors
def train(
    dataset: Annotated[
        str, typer.Option(help="An HDF5 file from `gsavl preprocess`, or vggsound10k, vggsound144k, avsbench-s4.")
    ],
    out: Annotated[
        Path | None, typer.Option(help="Run folder for best.pt, last.pt, metrics.jsonl, config.json.")
    ] = None,
    val: Annotated[
        Path | None,
        typer.Option(
            help="Annotated HDF5 for validation after every epoch (localizer: cIoU picks best.pt; ssl2avs: mask mIoU, default the data file's own val, else test, split)."
        ),
    ] = None,
    model: Annotated[
        str,
        typer.Option(
            help="Preset: gsavl (VGGish + cosine) or ezvsl (ResNet-18 audio + dot), self-supervised; or SSL2AVS, supervised on masks: ssl2avs-r50, ssl2avs-r50-plus (no stem max-pool), ssl2avs-pvt (PVT-v2-b5), ssl2avs-tiny (small, for CPUs)."
        ),
    ] = "gsavl",
    audio_encoder: Annotated[str | None, typer.Option(help="Override the preset: vggish or resnet18.")] = None,
    similarity: Annotated[str | None, typer.Option(help="Override the preset: cosine or dot.")] = None,
    tau: Annotated[float | None, typer.Option(help="Contrastive temperature (paper: 0.03).")] = None,
    beta: Annotated[float | None, typer.Option(help="Weight of the global-alignment loss (0 = off).")] = None,
    freeze_audio: Annotated[
        bool | None,
        typer.Option(
            "--freeze-audio/--no-freeze-audio",
            help="Keep the pretrained VGGish weights fixed (default: the preset's; off for gsavl, on for ssl2avs).",
        ),
    ] = None,
    freeze_image: Annotated[
        bool | None,
        typer.Option(
            "--freeze-image/--no-freeze-image",
            help="Keep the image trunk fixed; only its 1x1 projection trains (not in the paper; with --identity-init, the demo's recipe).",
        ),
    ] = None,
    standardize_audio: Annotated[
        bool | None,
        typer.Option(
            "--standardize-audio/--no-standardize-audio",
            help="BatchNorm between the audio trunk and its projection (not in the paper; makes a random VGGish usable).",
        ),
    ] = None,
    image_size: Annotated[
        int | None,
        typer.Option(help="Square frame size the model sees (default: the preset's, 224; ssl2avs also 512)."),
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(help="Epochs (paper: 20 VGGSound, 10 AVSBench; ssl2avs: 30 S4, 60 MS3).")
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(help="Batch size over all processes (paper: 128 VGGSound, 32 AVSBench; ssl2avs: 4 clips)."),
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option(help="Learning rate (default: 1e-4 with Adam for the localizer, 2e-5 with AdamW for ssl2avs)."),
    ] = None,
    split: Annotated[str, typer.Option(help="Split of the data file to train on.")] = "train",
    val_split: Annotated[
        str | None,
        typer.Option(help="Split of --val to validate on (default: test, else val; ssl2avs: val, else test)."),
    ] = None,
    patience: Annotated[
        int | None,
        typer.Option(help="Stop after this many epochs without a better validation score (cIoU; ssl2avs: mIoU)."),
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue from OUT/last.pt (optimizer, epoch and RNG included).")
    ] = False,
    workers: Annotated[int, typer.Option(help="DataLoader worker processes.")] = 2,
    pretrained: Annotated[
        bool,
        typer.Option(help="Start from ImageNet ResNet-18 and AudioSet VGGish weights (--no-pretrained: random init)."),
    ] = True,
    identity_init: Annotated[
        bool,
        typer.Option(
            help="With --no-pretrained: identity (Dirac) image encoder, a locality-preserving stand-in for ImageNet weights offline."
        ),
    ] = False,
    vggish_checkpoint: Annotated[
        Path | None, typer.Option(help="VGGish weights file (else cache or download).")
    ] = None,
    resnet_checkpoint: Annotated[
        Path | None, typer.Option(help="ImageNet ResNet-18 weights file (else cache or download).")
    ] = None,
    backbone_checkpoint: Annotated[
        Path | None,
        typer.Option(help="ssl2avs: ImageNet ResNet-50 or PVT-v2-b5 weights file (else cache or download)."),
    ] = None,
    frames: Annotated[
        str,
        typer.Option(
            help="ssl2avs: feed every frame of a clip (all, as AVSegFormer) or only the annotated ones (annotated: S4 trains 5x faster)."
        ),
    ] = "all",
    augment: Annotated[
        bool,
        typer.Option(
            help="ssl2avs: random horizontal flip and crop of each training clip (not the paper's protocol; for small data)."
        ),
    ] = False,
    max_steps: Annotated[
        int | None, typer.Option(help="At most this many steps per epoch (smoke tests, benchmarks).")
    ] = None,
    checkpoint_every: Annotated[
        int,
        typer.Option(
            help="Write OUT/last.pt every N epochs and after the last (best.pt: whenever validation improves)."
        ),
    ] = 1,
    subset: SubsetOpt = None,
    skip_bad: SkipBadOpt = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the checkpoint path and every epoch's log as JSON on stdout.")
    ] = False,
) -> None:
    """Train the audio-visual localizer, self-supervised (no labels needed), or SSL2AVS, supervised on masks."""
    from dataclasses import fields

    from gsavl_cli.commands.train import TIE_WARNING, TrainConfig
    from gsavl_cli.commands.train import train as run_training
    from gsavl_cli.console import resolve_device
    from gsavl_cli.datasets import resolve_dataset
    from gsavl_cli.model import config_from_preset, family_for

    data = resolve_dataset(dataset)
    subset = subset or _default_subset(dataset)
    overrides = {
        k: v
        for k, v in {
            "audio_encoder": audio_encoder,
            "similarity": similarity,
            "tau": tau,
            "beta": beta,
            "freeze_audio": freeze_audio,
            "image_size": image_size,
            "freeze_image": freeze_image,
            "standardize_audio": standardize_audio,
        }.items()
        if v is not None
    }
    preset = config_from_preset(model)
    family = family_for(preset)
    misplaced = [f"--{k.replace('_', '-')}" for k in overrides if k not in {f.name for f in fields(preset)}]
    if misplaced:
        raise UsageError(
            f"options of the localizer presets (gsavl, ezvsl) given to {model}: {', '.join(misplaced)}",
            hint="drop them",
        )
    preset_batch, preset_epochs = family.schedule(dataset, data)
    config = config_from_preset(model, **overrides)
    cfg = TrainConfig(
        data=data,
        out=out
        or Path("runs")
        / (data.stem if Path(dataset).suffix in (".h5", ".hdf5") or Path(dataset).exists() else dataset),
        model=config,
        val=val,
        split=split,
        val_split=val_split,
        epochs=epochs or preset_epochs,
        batch_size=batch_size or preset_batch,
        lr=lr,
        seed=OPTIONS.seed,
        workers=workers,
        patience=patience,
        resume=resume,
        device=resolve_device(),
        pretrained=pretrained,
        vggish_checkpoint=vggish_checkpoint,
        resnet_checkpoint=resnet_checkpoint,
        max_steps=max_steps,
        subset=subset,
        identity_init=identity_init,
        backbone_checkpoint=backbone_checkpoint,
        frames=frames,
        augment=augment,
        checkpoint_every=checkpoint_every,
        exclude=_skip_damaged(data, val) if skip_bad else (),
    )
    from gsavl_cli.io.files import guard_outputs

    guard_outputs(
        {
            "--out": cfg.out,
            **{f"--out {name}": cfg.out / name for name in ("best.pt", "last.pt", "config.json", "metrics.jsonl")},
        },
        {
            "data file": data,
            "--val file": val,
            "--vggish-checkpoint": vggish_checkpoint,
            "--resnet-checkpoint": resnet_checkpoint,
            "--backbone-checkpoint": backbone_checkpoint,
        },
    )
    if not pretrained:
        info("[yellow]note:[/] --no-pretrained: encoders start from random weights")
    if val is not None and not val.exists():
        raise UsageError(f"no such validation file: {val}")
    logs = []
    with progress() as bar:

        def step_factory(epoch: int, total: int):
            task = bar.add_task(f"epoch {epoch}/{cfg.epochs}", total=total, rate="")
            start = time.perf_counter()
            seen = [0]

            def on_step(n: int, loss: float) -> None:
                seen[0] += n
                bar.update(
                    task, advance=1, rate=f"loss {loss:.4f} · {rate(seen[0], time.perf_counter() - start, 'samples')}"
                )

            return on_step

        def on_epoch(log) -> None:
            logs.append(log)
            val_text = (
                "" if log.val is None else f" · {family.describe_validation(log.val)}{' (best)' if log.best else ''}"
            )
            info(f"epoch {log.epoch}: loss {log.loss:.4f} · {log.samples_per_s:.1f} samples/s{val_text}")
            if log.tied:
                err.print(TIE_WARNING)

        checkpoint = run_training(cfg, on_epoch=on_epoch, on_step_factory=step_factory)
    from gsavl_cli.home import record_run

    record_run(checkpoint, dataset, model, family.name)
    info(f"checkpoint: [bold]{checkpoint}[/] (`gsavl localize` and `gsavl eval` use it when no --checkpoint is given)")
    if json_output:
        from dataclasses import asdict

        print_json({"checkpoint": str(checkpoint), "epochs": [asdict(x) for x in logs]})


def _sampler_choices(text: str, params: list[str] | None):
    from gsavl_cli.predictor import SamplerChoice
    from gsavl_cli.samplers import get_sampler

    names = [n.strip() for n in text.split(",") if n.strip()]
    parsed: dict[str, str] = {}
    for item in params or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--param needs KEY=VALUE, got {item!r}", hint="e.g. --param n=5 or --param prob.n=5")
        parsed[key.strip()] = value.strip()
    choices = []
    for name in names:
        info_ = get_sampler(name)
        own = {}
        for key, value in parsed.items():
            scope, _, bare = key.rpartition(".")
            if (scope in ("", name)) and bare in info_.params:
                own[bare] = value
        choices.append(SamplerChoice(name, own))
    unused = [k for k in parsed if not any(k.rpartition(".")[2] in get_sampler(c.name).params for c in choices)]
    if unused:
        raise UsageError(f"no chosen sampler takes parameter(s) {', '.join(unused)}", hint="see `gsavl samplers`")
    return choices


def _parse_maps(text: str) -> tuple[str, ...]:
    from gsavl_cli.model import MAP_NAMES

    maps = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in maps if m not in MAP_NAMES]
    if unknown or not maps:
        raise UsageError(f"unknown map(s): {', '.join(unknown) or text!r}", hint=f"choose from {', '.join(MAP_NAMES)}")
    return maps


SamplerOpt = Annotated[str, typer.Option("--sampler", help="Prompt sampler(s), comma-separated; see `gsavl samplers`.")]
ParamOpt = Annotated[
    list[str] | None, typer.Option("--param", help="Sampler parameter KEY=VALUE or SAMPLER.KEY=VALUE (repeatable).")
]
SegmenterOpt = Annotated[
    SegmenterName | None,
    typer.Option(
        help="sam (Segment Anything); region: the heatmap region around the prompts (no weights needed); model: an SSL2AVS checkpoint's own mask. Default: the model's own mask if it has one, else sam.",
        show_default=False,
    ),
]
CheckpointOpt = Annotated[
    Path | None,
    typer.Option(
        help="Trained checkpoint (best.pt); default: the most recent `gsavl train` run. Not needed for --map obj.",
        show_default=False,
    ),
]
SamModelOpt = Annotated[
    SamModel, typer.Option(help="SAM size: vit_h (paper), vit_l or vit_b (tiny: a test model from --sam-checkpoint).")
]
SamCkptOpt = Annotated[Path | None, typer.Option(help="SAM weights file (else the torch hub cache, else download).")]
MaskChoiceOpt = Annotated[
    MaskChoice, typer.Option(help="single (paper), score (SAM's predicted IoU) or heatmap (best agreement).")
]
CascadeOpt = Annotated[int, typer.Option(min=1, help="Cascade refinement rounds (1 = off).")]
CascadeThresholdOpt = Annotated[
    float, typer.Option(help="Cascade: re-prompt while mask/heatmap agreement is below this.")
]
NegativesOpt = Annotated[int, typer.Option(min=0, help="Negative prompts from the coldest heatmap region.")]
AlphaOpt = Annotated[float, typer.Option(min=0.0, max=1.0, help="Weight of the audio-visual map in avobj.")]
AlignOpt = Annotated[
    bool,
    typer.Option(
        "--align-corners/--no-align-corners",
        help="Upsample the 7x7 maps with align_corners=True (the original GSAVL's convention).",
    ),
]
PriorCkptOpt = Annotated[
    Path | None,
    typer.Option(
        "--resnet-checkpoint", help="ImageNet ResNet-18 weights for the object prior (else cache or download)."
    ),
]


@app.command(
    name="eval",
    epilog="Examples:\n\n  gsavl eval --dataset s4_test.h5 --checkpoint runs/s4/best.pt --out runs/s4/eval --report\n\n"
    "  gsavl eval --dataset vggss.h5 --checkpoint best.pt --map avobj --sampler prob --out eval_vggss\n\n"
    "  gsavl eval --dataset s4_test.h5 --checkpoint best.pt --audio shuffled   # does the model listen?",
)
@handle_errors
def evaluate_command(
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
            help="Heatmaps, comma-separated: av, obj, avobj (default: all three; av alone for a model with its own mask).",
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
    alpha: AlphaOpt = 0.4,
    align_corners: AlignOpt = True,
    audio: Annotated[
        AudioMode,
        typer.Option(
            help="normal; silent (no sound); shuffled (each clip hears another clip's audio): shows how much a result depends on the sound."
        ),
    ] = AudioMode.normal,
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
    skip_bad: SkipBadOpt = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print metrics.json on stdout.")] = False,
) -> None:
    """Evaluate heatmaps and masks: IoU/F (AVSBench), cIoU/AP50/AUC (VGG-SS), pointing game."""
    from gsavl_cli.commands.evaluate import EvalSettings, run_evaluation
    from gsavl_cli.console import resolve_device
    from gsavl_cli.datasets import resolve_dataset

    chosen_maps = _parse_maps(maps) if maps is not None else None
    data = resolve_dataset(dataset)
    checkpoint = _choose_checkpoint(checkpoint, chosen_maps or ())
    settings = EvalSettings(
        data=data,
        checkpoint=checkpoint,
        out=out,
        split=split,
        frames=frames,
        maps=chosen_maps,
        samplers=_sampler_choices(sampler, param),
        segmenter=segmenter.value if segmenter else None,
        sam_model=sam_model.value,
        sam_checkpoint=sam_checkpoint,
        mask_choice=mask_choice.value,
        cascade_rounds=cascade_rounds,
        cascade_threshold=cascade_threshold,
        negatives=negatives,
        alpha=alpha,
        align_corners=align_corners,
        audio=audio,
        batch_size=batch_size,
        limit=limit,
        subset=subset,
        embedding_cache=embedding_cache,
        save_heatmaps=save_heatmaps,
        report=report,
        resnet_checkpoint=prior_checkpoint,
        device=resolve_device(),
        seed=OPTIONS.seed,
        exclude=_skip_damaged(data) if skip_bad else (),
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
        },
    )
    result = run_evaluation(settings, progress=progress)
    _print_results(result["results"], title=f"{dataset} · {result['settings']['n_clips']} clips · audio {audio.value}")
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


def _choose_checkpoint(given: Path | None, maps: tuple[str, ...]) -> Path | None:
    """--checkpoint, else nothing for the obj map alone, else the latest `gsavl train` run (said so)."""
    from gsavl_cli.home import choose_checkpoint

    path, run = choose_checkpoint(given, maps)
    if run is not None:
        info(
            f"using the most recent trained model: [bold]{path}[/] ({run.model} on {run.dataset}, {run.when}); "
            "--checkpoint chooses another"
        )
    elif path is None:
        info("no checkpoint: the training-free object prior (--map obj)")
    return path


def _fmt(value: object) -> str:
    return "-" if value is None else f"{100 * value:.2f}" if isinstance(value, float) else str(value)


def _print_results(results: list[dict], title: str) -> None:
    if OPTIONS.quiet:
        return
    table = Table(
        "map",
        "sampler",
        "segmenter",
        "n",
        "mIoU %",
        "mask F %",
        "AVS M_J %",
        "AVS M_F %",
        "cIoU %",
        "AP50 %",
        "AUC %",
        "pointing %",
        title=title,
        caption="AVS M_J / M_F: the AVS benchmark's batch-level metrics (one video per batch)",
    )
    for r in results:
        table.add_row(
            r["map"],
            r["sampler"] or "(heatmap)",
            r["segmenter"] or "-",
            str(r["n"]),
            *(
                _fmt(r.get(k))
                for k in (
                    "miou",
                    "mask_f",
                    "avsbench_miou",
                    "avsbench_fmeasure",
                    "ciou",
                    "ap50",
                    "auc",
                    "pointing_game",
                )
            ),
        )
    err.print(table)


@app.command(
    epilog="Examples:\n\n  gsavl localize clip.mp4 --checkpoint best.pt --sampler prob -o mask.png\n\n"
    "  gsavl localize clip.mp4 --checkpoint best.pt --overlay overlay.png --json-file result.json\n\n"
    "  gsavl localize ./clips --checkpoint best.pt --out-dir masks/ --segmenter region\n\n"
    "  gsavl localize clip.mp4 --checkpoint best.pt --every 0.25 --video overlay.mp4 --masks masks.npz --timeline timeline.json"
)
@handle_errors
def localize(
    clips: Annotated[list[Path], typer.Argument(help="Video file(s), or a folder of videos.")],
    checkpoint: CheckpointOpt = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Mask PNG for a single clip (default: CLIP.mask.png).")
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option(help="Folder for the masks of several clips (CLIP.mask.png ...).")
    ] = None,
    time_: Annotated[
        float | None,
        typer.Option(
            "--time",
            min=0.0,
            help="Frame time in seconds, its audio window centred on it (default: the first frame with the clip-level audio, as eval).",
        ),
    ] = None,
    map_: Annotated[
        MapName | None,
        typer.Option(
            "--map",
            help="Heatmap to prompt from: av, obj or avobj (default: avobj, the paper's; av for a model with its own mask).",
            show_default=False,
        ),
    ] = None,
    sampler: SamplerOpt = "prob",
    param: ParamOpt = None,
    negatives: NegativesOpt = 0,
    segmenter: SegmenterOpt = None,
    sam_model: SamModelOpt = SamModel.vit_h,
    sam_checkpoint: SamCkptOpt = None,
    mask_choice: MaskChoiceOpt = MaskChoice.single,
    cascade_rounds: CascadeOpt = 1,
    cascade_threshold: CascadeThresholdOpt = 0.3,
    alpha: AlphaOpt = 0.4,
    align_corners: AlignOpt = True,
    overlay: Annotated[Path | None, typer.Option(help="PNG: frame + heatmap + prompts + mask outline.")] = None,
    heatmap: Annotated[Path | None, typer.Option(help="PNG of the heatmap (coloured).")] = None,
    heatmap_npy: Annotated[Path | None, typer.Option(help="The float heatmap [H,W] as .npy, for analysis.")] = None,
    json_file: Annotated[
        Path | None, typer.Option(help="JSON file: points, labels, mask area, score, rounds, timings.")
    ] = None,
    every: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            rich_help_panel="Whole videos",
            help="Localize a frame every SECONDS over the whole clip (each with its own audio window).",
        ),
    ] = None,
    all_frames: Annotated[
        bool, typer.Option(rich_help_panel="Whole videos", help="Localize every frame of the clip.")
    ] = False,
    video: Annotated[
        Path | None,
        typer.Option(
            rich_help_panel="Whole videos",
            help="Overlay video (frame + heatmap + prompts + mask) with the clip's audio.",
        ),
    ] = None,
    masks: Annotated[
        Path | None,
        typer.Option(rich_help_panel="Whole videos", help="Masks of every processed frame: .npz of packed bits."),
    ] = None,
    mask_pngs: Annotated[
        Path | None, typer.Option(rich_help_panel="Whole videos", help="Folder for one mask PNG per processed frame.")
    ] = None,
    timeline: Annotated[
        Path | None,
        typer.Option(
            rich_help_panel="Whole videos",
            help="JSON timeline: per frame time, points, labels, score, mask area, rounds.",
        ),
    ] = None,
    smooth: Annotated[
        float | None,
        typer.Option(
            rich_help_panel="Whole videos",
            help="Smooth heatmaps over time: exponential moving average with this time constant in seconds (off by default).",
        ),
    ] = None,
    prior_checkpoint: PriorCkptOpt = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the results as JSON on stdout.")] = False,
) -> None:
    """Find the sounding object in a clip and write its pixel mask (one frame, or the whole video with --every / --all-frames)."""
    from gsavl_cli.commands.localize import LocalizeOutputs, LocalizeSettings, expand_clips, localize_clips
    from gsavl_cli.console import resolve_device
    from gsavl_cli.datasets import VIDEO_SUFFIXES
    from gsavl_cli.io.files import guard_outputs

    guard_outputs(
        {
            "-o": output,
            "--out-dir": out_dir,
            "--overlay": overlay,
            "--heatmap": heatmap,
            "--heatmap-npy": heatmap_npy,
            "--json-file": json_file,
            "--video": video,
            "--masks": masks,
            "--mask-pngs": mask_pngs,
            "--timeline": timeline,
        },
        {"checkpoint": checkpoint, "--sam-checkpoint": sam_checkpoint, "--resnet-checkpoint": prior_checkpoint},
        many_inputs=expand_clips(clips),
        walked=[c for c in clips if c.is_dir()],
        video_suffixes=VIDEO_SUFFIXES,
    )
    if every is not None or all_frames or any((video, masks, mask_pngs, timeline, smooth)):
        _localize_video(
            clips,
            checkpoint,
            time_=time_,
            every=every,
            all_frames=all_frames,
            map_=map_,
            sampler=sampler,
            param=param,
            negatives=negatives,
            segmenter=segmenter,
            sam_model=sam_model,
            sam_checkpoint=sam_checkpoint,
            mask_choice=mask_choice,
            cascade_rounds=cascade_rounds,
            cascade_threshold=cascade_threshold,
            alpha=alpha,
            align_corners=align_corners,
            video=video,
            masks=masks,
            mask_pngs=mask_pngs,
            timeline=timeline,
            smooth=smooth,
            prior_checkpoint=prior_checkpoint,
            json_output=json_output,
        )
        return

    settings = LocalizeSettings(
        checkpoint=_choose_checkpoint(checkpoint, (map_.value,) if map_ else ()),
        time=time_,
        map_name=map_.value if map_ else None,
        sampler=_sampler_choices(sampler, param)[0],
        negatives=negatives,
        segmenter=segmenter.value if segmenter else None,
        sam_model=sam_model.value,
        sam_checkpoint=sam_checkpoint,
        mask_choice=mask_choice.value,
        cascade_rounds=cascade_rounds,
        cascade_threshold=cascade_threshold,
        alpha=alpha,
        align_corners=align_corners,
        resnet_checkpoint=prior_checkpoint,
        device=resolve_device(),
        seed=OPTIONS.seed,
    )
    outputs = LocalizeOutputs(output, out_dir, overlay, heatmap, heatmap_npy, json_file)
    results = localize_clips(clips, settings, outputs, progress=progress)
    for item in results:
        info(
            f"{item['clip']}: mask {item['mask']} ({item['mask_area']} px, {item['segmenter']} segmenter, {item['sampler']} on {item['map']})"
        )
    if json_output:
        print_json(results if len(results) > 1 else results[0])


def _localize_video(
    clips: list[Path], checkpoint: Path | None, *, time_: float | None, every: float | None, all_frames: bool, **options
) -> None:
    """`localize --every/--all-frames`: the whole clip, streamed, through the same Predictor."""
    from gsavl_cli.commands.localize import LocalizeSettings, make_predictor
    from gsavl_cli.commands.localize_video import VideoSettings, localize_video
    from gsavl_cli.console import resolve_device

    if len(clips) != 1 or clips[0].is_dir():
        raise UsageError("video mode localizes one clip", hint="pass one video file (run the command once per clip)")
    if time_ is not None:
        raise UsageError(
            "--time picks one frame; video mode takes them all", hint="drop --time, or drop --every/--all-frames"
        )
    if every is not None and all_frames:
        raise UsageError("--every and --all-frames both choose the frames", hint="pass one of them")
    if every is None and not all_frames:
        raise UsageError("choose the frames of the video", hint="pass --every SECONDS or --all-frames")
    if every is not None and every <= 0:
        raise UsageError(f"--every must be > 0 s, got {every:g}")
    choice = _sampler_choices(options["sampler"], options["param"])[0]
    segmenter = options["segmenter"]
    settings = LocalizeSettings(
        checkpoint=_choose_checkpoint(checkpoint, (options["map_"].value,) if options["map_"] else ()),
        map_name=options["map_"].value if options["map_"] else None,
        sampler=choice,
        negatives=options["negatives"],
        segmenter=segmenter.value if segmenter else None,
        sam_model=options["sam_model"].value,
        sam_checkpoint=options["sam_checkpoint"],
        mask_choice=options["mask_choice"].value,
        cascade_rounds=options["cascade_rounds"],
        cascade_threshold=options["cascade_threshold"],
        alpha=options["alpha"],
        align_corners=options["align_corners"],
        resnet_checkpoint=options["prior_checkpoint"],
        device=resolve_device(),
        seed=OPTIONS.seed,
    )
    video = VideoSettings(
        every=every,
        sampler=choice,
        seed=OPTIONS.seed,
        negatives=settings.negatives,
        mask_choice=settings.mask_choice,
        cascade_rounds=settings.cascade_rounds,
        cascade_threshold=settings.cascade_threshold,
        smooth=options["smooth"],
        video=options["video"],
        masks=options["masks"],
        mask_pngs=options["mask_pngs"],
        timeline=options["timeline"],
    )
    video.check()
    predictor = make_predictor(settings)
    video.map_name = settings.map_name or predictor.default_map
    summary = localize_video(clips[0], predictor, video, progress=progress)
    written = [str(p) for p in (video.video, video.masks, video.mask_pngs, video.timeline) if p]
    info(
        f"{clips[0]}: {summary['frames']} frames at {summary['frames_per_second'] or 0:.2f} frames/s -> {', '.join(written)}"
    )
    if options["json_output"]:
        print_json(summary)


@app.command(name="samplers")
@handle_errors
def list_samplers_command(
    json_output: Annotated[bool, typer.Option("--json", help="Print as JSON on stdout.")] = False,
) -> None:
    """List the prompt samplers (built in and from plugins) with their parameters."""
    from gsavl_cli.samplers import list_samplers

    found = list_samplers()
    if json_output:
        print_json([{"name": s.name, "params": s.params, "description": s.description} for s in found])
        return
    table = Table("name", "parameters", "description", title="prompt samplers")
    for s in found:
        table.add_row(s.name, ", ".join(f"{k}={v}" for k, v in s.params.items()) or "-", s.description)
    out.print(table)


@app.command(epilog="Example:\n\n  gsavl demo demo_out\n\n  gsavl demo demo_out --json > demo.json")
@handle_errors
def demo(
    folder: Annotated[Path, typer.Argument(help="Folder for the synthetic data, the run and the outputs.")] = Path(
        "gsavl-demo"
    ),
    train_clips: Annotated[int | None, typer.Option(help="Synthetic training clips (default 128).")] = None,
    test_clips: Annotated[int | None, typer.Option(help="Synthetic test clips (default 64).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs (default 30).")] = None,
    sam_model: SamModelOpt = "vit_h",
    sam_checkpoint: SamCkptOpt = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the metrics and output paths as JSON on stdout.")
    ] = False,
) -> None:
    """Run the whole pipeline offline on a synthetic audio-visual world (about 2 minutes on 2 CPU cores)."""
    from gsavl_cli.commands.demo import DemoConfig, run_demo
    from gsavl_cli.console import resolve_device

    given = {k: v for k, v in {"n_train": train_clips, "n_test": test_clips, "epochs": epochs}.items() if v is not None}
    summary = run_demo(
        folder,
        DemoConfig(**given, seed=OPTIONS.seed % 1000),
        device=resolve_device(),
        sam_model=sam_model.value,
        sam_checkpoint=sam_checkpoint,
        progress=progress,
        say=info,
    )
    if not OPTIONS.quiet:
        table = Table(
            "model",
            "pointing game %",
            "heatmap cIoU %",
            "mask mIoU %",
            title=f"demo ({summary['segmenter']} segmenter, av map, prob sampler)",
        )
        for name in ("trained", "untrained", "centre_prior"):
            m = summary[name]
            table.add_row(name.replace("_", " "), _fmt(m["pointing_game"]), _fmt(m["ciou"]), _fmt(m["miou"]))
        table.add_row("random point", _fmt(summary["chance_pointing"]), "-", "-")
        err.print(table)
        if summary["segmenter"] == "region":
            err.print(
                "[dim]No SAM weights found: masks are the heatmap region around the prompts (--segmenter region). "
                "With SAM weights in the cache (or --sam-checkpoint) the masks come from SAM.[/]"
            )
        err.print(f"[dim]demo wall time: {summary['seconds']:.0f} s[/]")
        for name, path in summary["outputs"].items():
            err.print(f"{name:>10}: {path}")
    if json_output:
        print_json(summary)


@app.command(epilog="Example:\n\n  gsavl doctor --json")
@handle_errors
def doctor(
    json_output: Annotated[bool, typer.Option("--json", help="Print the checks as JSON on stdout.")] = False,
) -> None:
    """Check the install: torch / torchvision / torchaudio against gsavl's pins, each compiled kernel run once, ffmpeg."""
    from dataclasses import asdict

    from gsavl_cli.install_check import run_checks

    checks = run_checks()
    if json_output:
        print_json([asdict(c) for c in checks])
    else:
        table = Table("check", "", "detail", title=f"gsavl {__version__} install")
        for c in checks:
            table.add_row(c.name, "[green]ok[/]" if c.ok else "[red]FAILED[/]", c.detail)
        out.print(table)
    if not all(c.ok for c in checks):
        err.print(
            "[bold red]error:[/] this install does not work as pinned; "
            "reinstall in a fresh virtual environment with `pip install -e .`"
        )
        raise typer.Exit(1)


_GLOBAL_FLAGS = {"-q", "--quiet", "-v", "--verbose"}
_GLOBAL_VALUES = {"--device", "--seed"}


def hoist_global_options(argv: list[str]) -> list[str]:
    """Moves global options written after the subcommand in front of it.

    `gsavl localize clip.mp4 --seed 3 -q` then means `gsavl --seed 3 -q localize clip.mp4`.
    """
    command = next((i for i, a in enumerate(argv) if a in app_commands()), None)
    if command is None:
        return argv
    front, rest, tail = list(argv[:command]), [argv[command]], argv[command + 1 :]
    i = 0
    while i < len(tail):
        arg = tail[i]
        if arg == "--":
            rest.extend(tail[i:])
            break
        if arg in _GLOBAL_FLAGS or (arg.split("=", 1)[0] in _GLOBAL_VALUES and "=" in arg):
            front.append(arg)
        elif arg in _GLOBAL_VALUES and i + 1 < len(tail):
            front.extend(tail[i : i + 2])
            i += 1
        else:
            rest.append(arg)
        i += 1
    return front + rest


def app_commands() -> set[str]:
    return {c.name or c.callback.__name__ for c in app.registered_commands}


def main() -> None:
    import sys

    app(args=hoist_global_options(sys.argv[1:]), prog_name="gsavl")
