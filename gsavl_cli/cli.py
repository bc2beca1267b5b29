"""The `gsavl` command: thin Typer functions that call the library and print with rich."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from . import __version__
from .console import OPTIONS, err, handle_errors, info, print_json, progress, rate
from .errors import UsageError

app = typer.Typer(
    name="gsavl",
    help="Shape-aware sound-source localization: audio-visual localizer -> prompt sampler -> Segment Anything.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


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
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = None,
) -> None:
    """Global options go before the subcommand: `gsavl --device cuda eval ...`."""
    OPTIONS.device, OPTIONS.seed, OPTIONS.verbose, OPTIONS.quiet = device, seed, verbose, quiet


def _parse_times(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        times = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UsageError(f"--frame-times must be comma-separated seconds, got {text!r}", hint="e.g. --frame-times 0,2.5") from None
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
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="HDF5 file to write (default: SOURCE.h5).")] = None,
    layout: Annotated[str, typer.Option(help="auto, folder, avsbench-s4, avsbench-ms3, avsbench-semantic or vggsound.")] = "auto",
    split: Annotated[str, typer.Option(help="train, val, test or all.")] = "all",
    frame_times: Annotated[Optional[str], typer.Option(help="Frame times in seconds for plain videos, e.g. 0,2.5 (default: first frame).")] = None,
    vggish_seconds: Annotated[Optional[float], typer.Option(help="Centred audio window for the log-mel features (default: whole clip; 3 s for vggsound).")] = None,
    annotations: Annotated[Optional[Path], typer.Option(help="VGG-SS boxes file (vggss.json) for the vggsound layout.")] = None,
    subset: Annotated[Optional[Path], typer.Option(help="Only the clip ids listed in this file (one per line).")] = None,
    semantic_subsets: Annotated[str, typer.Option(help="AVSBench-semantic subsets, comma-separated: v1s,v1m,v2.")] = "v1s,v1m,v2",
    workers: Annotated[int, typer.Option(help="Parallel decode processes (default: CPU cores).")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Start the output over instead of resuming it.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")] = False,
) -> None:
    """Decode frames and audio, compute features, and write them to one HDF5 file.

    Re-running the same command resumes: clips already in the file are skipped.
    """
    from .datasets import discover
    from .preprocess import make_settings, run_preprocess

    if annotations is not None and not annotations.exists():
        raise UsageError(f"annotations file not found: {annotations}")
    layout, clips = discover(
        source, layout, split, annotations=annotations,
        subsets=tuple(s.strip() for s in semantic_subsets.split(",") if s.strip()), subset_file=subset,
    )
    if not clips:
        raise UsageError(f"no clips found in {source} (layout {layout}, split {split})", hint="check SOURCE, --layout and --split")
    output = output or source.with_suffix(".h5") if source.is_file() else output or Path(f"{source.resolve().name}.h5")
    settings = make_settings(layout, _parse_times(frame_times), vggish_seconds)
    workers = workers or os.cpu_count() or 1
    info(f"[bold]{len(clips)}[/] clips ({layout}, split {split}) -> {output}")
    start = time.perf_counter()
    with progress() as bar:
        task = bar.add_task("preprocess", total=len(clips), rate="")

        def advance(_src: object, _ok: bool) -> None:
            bar.advance(task)
            done = int(bar.tasks[0].completed)
            bar.update(task, rate=rate(done, time.perf_counter() - start, "clips"))

        result = run_preprocess(clips, output, settings, workers=workers, overwrite=overwrite, on_clip=advance)
        bar.update(task, completed=result.skipped + result.written + len(result.failed))
    _report_preprocess(result)
    if json_output:
        print_json(result.to_json())
    if result.interrupted:
        err.print(f"[yellow]interrupted[/]: {result.written} clips written; run the same command again to finish")
        raise typer.Exit(130)
    if result.failed:
        raise typer.Exit(1)


def _report_preprocess(result: object) -> None:
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
    json_output: Annotated[bool, typer.Option("--json", help="Print everything as JSON on stdout.")] = False,
) -> None:
    """Show a data file's settings, clip count, and each clip's arrays and annotations."""
    from .store import open_store

    with open_store(file) as store:
        shown = store.ids if clips < 0 else store.ids[:clips]
        details = []
        for clip_id in shown:
            arrays = store.arrays(clip_id)
            details.append({"id": clip_id, "meta": store.meta(clip_id), "arrays": {k: {"shape": list(s), "dtype": d} for k, (s, d) in arrays.items()}})
        summary = {"file": str(file), "tool_version": store.tool_version, "settings": store.settings, "clips": len(store), "details": details}
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
        notes = ", ".join(f"{k} {tuple(v['shape'])}" for k, v in item["arrays"].items() if k in ("masks", "boxes")) or "-"
        table.add_row(item["id"], str(item["meta"].get("split")), str(item["meta"].get("category")), arrays, notes)
    err.print(table)


def main() -> None:
    app()
