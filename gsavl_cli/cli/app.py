"""The Typer app's making: its global options, the `command` declaration of a subcommand, and `make_app`."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import typer

from gsavl_cli import __version__
from gsavl_cli.cli.options import AFTER_SUBCOMMAND, DeviceOpt, QuietOpt, SeedOpt, VerboseOpt
from gsavl_cli.console import OPTIONS, GlobalOptions, handle_errors

F = TypeVar("F", bound=Callable[..., Any])


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gsavl {__version__}")
        raise typer.Exit()


def main_options(
    device: DeviceOpt = GlobalOptions.device,
    seed: SeedOpt = GlobalOptions.seed,
    verbose: VerboseOpt = GlobalOptions.verbose,
    quiet: QuietOpt = GlobalOptions.quiet,
    version: Annotated[
        bool | None, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = None,
) -> None:
    """Global options go before or after the subcommand: `gsavl --device cuda eval ...`."""
    OPTIONS.device, OPTIONS.seed, OPTIONS.verbose, OPTIONS.quiet = device, seed, verbose, quiet


def _accepts_global_options(func: F) -> F:
    """`func` with the global options as hidden parameters of its own (`options.AFTER_SUBCOMMAND`).

    Click gives a group's options only before the subcommand; declared on the subcommand too,
    `gsavl localize clip.mp4 -q --seed 3` means what `gsavl -q --seed 3 localize clip.mp4` does.
    One given there overrides the one given before the subcommand.
    """
    signature = inspect.signature(func, eval_str=True)
    clash = set(AFTER_SUBCOMMAND) & set(signature.parameters)
    assert not clash, f"{func.__name__} has parameters named like global options: {clash}"

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        for name in AFTER_SUBCOMMAND:
            value = kwargs.pop(name)
            if value is not None and value is not False:
                setattr(OPTIONS, name, value)
        return func(*args, **kwargs)

    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=option)
        for name, option in AFTER_SUBCOMMAND.items()
    ]
    wrapper.__signature__ = signature.replace(parameters=[*signature.parameters.values(), *extra])  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


@dataclass(frozen=True)
class Command:
    """A subcommand as its module declares it; `make_app` registers it."""

    func: Callable[..., Any]
    name: str | None = None  # None: the function's name
    epilog: str | None = None


def command(name: str | None = None, *, epilog: str | None = None) -> Callable[[Callable[..., Any]], Command]:
    """Declares a subcommand (Typer's `name` and `epilog`); `make_app` registers it."""

    def declare(func: Callable[..., Any]) -> Command:
        return Command(func, name, epilog)

    return declare


def make_app(commands: Iterable[Command]) -> typer.Typer:
    """The `gsavl` app: the global options, then `commands` in the order `gsavl --help` lists them.

    Each command reports errors as one line (`handle_errors`) and takes the global options
    after it too. A fresh app per call: `python -m typer gsavl_cli.cli utils docs` runs the
    package anew and turns off shell completion on an app it has seen.
    """
    app = typer.Typer(
        name="gsavl",
        help="Shape-aware sound-source localization: audio-visual localizer -> prompt sampler -> Segment Anything.",
        no_args_is_help=True,
        rich_markup_mode="rich",
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(main_options)
    for declared in commands:
        app.command(name=declared.name, epilog=declared.epilog)(handle_errors(_accepts_global_options(declared.func)))
    return app
