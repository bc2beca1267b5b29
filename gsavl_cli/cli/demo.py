"""`gsavl demo`: the whole pipeline offline on a synthetic world, with a table of what it measured."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from gsavl_cli.choices import SamModel
from gsavl_cli.cli.app import command
from gsavl_cli.cli.eval import percent
from gsavl_cli.cli.options import SamCkptOpt, SamModelOpt
from gsavl_cli.console import OPTIONS, err, info, print_json, progress


@command(epilog="Example:\n\n  gsavl demo demo_out\n\n  gsavl demo demo_out --json > demo.json")
def demo(
    folder: Annotated[Path, typer.Argument(help="Folder for the synthetic data, the run and the outputs.")] = Path(
        "gsavl-demo"
    ),
    train_clips: Annotated[int | None, typer.Option(help="Synthetic training clips (default 128).")] = None,
    test_clips: Annotated[int | None, typer.Option(help="Synthetic test clips (default 64).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs (default 30).")] = None,
    sam_model: SamModelOpt = SamModel.vit_h,
    sam_checkpoint: SamCkptOpt = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the metrics and output paths as JSON on stdout.")
    ] = False,
) -> None:
    """Run the whole pipeline offline on a synthetic audio-visual world (about 2 minutes on 2 CPU cores)."""
    from gsavl_cli.commands.demo import DemoConfig, run_demo
    from gsavl_cli.console import resolve_device

    given: dict[str, Any] = {
        k: v for k, v in {"n_train": train_clips, "n_test": test_clips, "epochs": epochs}.items() if v is not None
    }
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
            table.add_row(name.replace("_", " "), percent(m["pointing_game"]), percent(m["ciou"]), percent(m["miou"]))
        table.add_row("random point", percent(summary["chance_pointing"]), "-", "-")
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
