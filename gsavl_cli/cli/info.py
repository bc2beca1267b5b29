"""The listings: `gsavl datasets` (named stores), `gsavl samplers` (prompt samplers) and `gsavl doctor` (the install)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from gsavl_cli import __version__
from gsavl_cli.cli.app import command
from gsavl_cli.console import err, out, print_json

JsonListOpt = Annotated[bool, typer.Option("--json", help="Print as JSON on stdout.")]


@command(name="datasets", epilog="Example:\n\n  gsavl datasets --json")
def datasets(
    json_output: JsonListOpt = False,
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


@command(name="samplers")
def samplers(
    json_output: JsonListOpt = False,
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


@command(epilog="Example:\n\n  gsavl doctor --json")
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
