"""`gsavl preprocess` (here, one shard, or every shard through submitit) and `gsavl merge` of a sharded run's parts."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from gsavl_cli.cli.app import command
from gsavl_cli.cli.options import SubsetOpt
from gsavl_cli.console import OPTIONS, err, info, print_json, progress, rate
from gsavl_cli.datasets import SEMANTIC_SUBSETS, list_datasets
from gsavl_cli.errors import UsageError

if TYPE_CHECKING:
    from gsavl_cli.commands.preprocess import PreprocessResult

_LAYOUTS = ["auto", *(d.name for d in list_datasets())]
LAYOUT_HELP = f"{', '.join(_LAYOUTS[:-1])} or {_LAYOUTS[-1]}."
"""`preprocess --layout`'s help: the registered dataset layouts, after "auto"."""


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


@command(
    epilog="Examples:\n\n  gsavl preprocess ./videos -o videos.h5\n\n"
    "  gsavl preprocess AVSBench_object -o s4_test.h5 --layout avsbench-s4 --split test\n\n"
    "  gsavl preprocess vggsound/ -o vggss.h5 --layout vggsound --annotations vggss.json --split test"
)
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
    subset: SubsetOpt = None,
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


@command(epilog="Example:\n\n  gsavl merge vggsound.h5 vggsound.h5.parts/part-*.h5")
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
