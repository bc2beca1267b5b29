"""Terminal output shared by the subcommands: global options, errors, progress bars.

Human-readable output goes to stderr so that `--json` on stdout stays machine-readable.
"""

from __future__ import annotations

import functools
import json
import signal
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from gsavl_cli.errors import GsavlError, unwrap_worker_message

err = Console(stderr=True, highlight=False)
out = Console(highlight=False, soft_wrap=True)


@dataclass
class GlobalOptions:
    """The options every command shares (--device, --seed, -v, -q), set once by the app's callback."""

    device: str = "auto"
    seed: int = 123
    verbose: bool = False
    quiet: bool = False


OPTIONS = GlobalOptions()

F = TypeVar("F", bound=Callable[..., Any])


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def handle_errors(func: F) -> F:
    """One clear line and an exit code for user mistakes; a traceback only with -v."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            return func(*args, **kwargs)
        except GsavlError as exc:
            if OPTIONS.verbose:
                err.print(traceback.format_exc(), markup=False)
            err.print(f"[bold red]error:[/] {escape(unwrap_worker_message(str(exc)))}", markup=True)
            if exc.hint:
                err.print(f"[dim]hint:[/] {escape(exc.hint)}")
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None
        except OSError as exc:  # disk full, permission denied, ...: the system's words suffice
            if OPTIONS.verbose:
                err.print(traceback.format_exc(), markup=False)
            where = f": {exc.filename}" if exc.filename else ""
            err.print(f"[bold red]error:[/] {escape(str(exc.strerror or exc))}{escape(where)}")
            raise typer.Exit(1) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:  # a broken invariant: a bug, reported as one, never a user mistake
            if OPTIONS.verbose:
                err.print(traceback.format_exc(), markup=False)
            err.print(f"[bold red]internal error:[/] {escape(type(exc).__name__)}: {escape(str(exc))}")
            err.print("[dim]hint:[/] this is a bug in gsavl; run again with -v for the traceback and report it")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def progress(*, transient: bool = False) -> Progress:
    """A rich progress bar with rate and ETA; silent under -q."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err,
        disable=OPTIONS.quiet,
        transient=transient,
    )


def rate(count: int, seconds: float, unit: str) -> str:
    """A progress bar's throughput text, e.g. "12.34 clips/s"; empty before any time has passed."""
    return f"{count / seconds:.2f} {unit}/s" if seconds > 0 else ""


def info(message: str) -> None:
    """A status line on stderr, silenced by -q."""
    if not OPTIONS.quiet:
        err.print(message)


def warning_text(message: str, hint: str | None = None) -> str:
    """A warning as the commands print it (to stderr, also under --quiet): what happened, then what to try."""
    text = f"[yellow]warning:[/] {escape(message)}"
    return text + (f"\n  try: {escape(hint)}" if hint else "")


def print_json(data: Any) -> None:
    """The machine-readable result on stdout (the messages go to stderr), flushed at once."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def resolve_device(name: str | None = None) -> str:
    """`auto` means the first CUDA device when there is one."""
    import torch

    from gsavl_cli.errors import UsageError

    name = name or OPTIONS.device
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"device {name} asked for, but CUDA is not available", hint="use --device cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise UsageError(f"unknown device {name!r}", hint="use auto, cpu, cuda or cuda:N")
    return name
