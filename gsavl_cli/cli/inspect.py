"""`gsavl inspect`: a store's settings and clips, or (`--verify`) its damaged clips; and `--skip-bad` for train and eval."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from gsavl_cli.cli.app import command
from gsavl_cli.console import err, out, print_json, progress


@command(epilog="Example:\n\n  gsavl inspect videos.h5 --clips 5")
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
        details: list[dict[str, Any]] = []
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
        shapes = ", ".join(f"{k} {tuple(v['shape'])}" for k, v in item["arrays"].items() if k not in ("masks", "boxes"))
        notes = (
            ", ".join(f"{k} {tuple(v['shape'])}" for k, v in item["arrays"].items() if k in ("masks", "boxes")) or "-"
        )
        table.add_row(item["id"], str(item["meta"].get("split")), str(item["meta"].get("category")), shapes, notes)
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


def skip_damaged(*files: Path | None) -> tuple[str, ...]:
    """--skip-bad: the damaged clips of these stores, each named once on stderr."""
    left_out: list[str] = []
    for file in dict.fromkeys(f for f in files if f is not None):
        for clip_id, reason in _damaged_clips(file).items():
            err.print(f"[yellow]skipping[/] damaged clip {escape(clip_id)} of {escape(str(file))}: {escape(reason)}")
            left_out.append(clip_id)
    return tuple(left_out)
