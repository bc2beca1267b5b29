"""The `gsavl` command: a Typer app whose subcommands parse options, call `gsavl_cli.commands`, and print.

`app` makes the app (global options, error handling); `options` declares every option more
than one command takes; one module per subcommand (`preprocess` also holds `merge`;
`info` the listings `datasets`, `samplers` and the install check `doctor`).
"""

from gsavl_cli.cli import calibrate, demo, eval, info, inspect, localize, preprocess, train
from gsavl_cli.cli.app import make_app

app = make_app(
    [
        preprocess.preprocess,
        preprocess.merge,
        info.datasets,
        inspect.inspect,
        train.train,
        eval.evaluate,
        calibrate.calibrate,
        localize.localize,
        info.samplers,
        demo.demo,
        info.doctor,
    ]
)
"""The `gsavl` app; made here, where `python -m typer gsavl_cli.cli` looks for it."""


def main() -> None:
    """The `gsavl` console script (pyproject's entry point), `python -m gsavl_cli` and `torchrun -m gsavl_cli`."""
    app(prog_name="gsavl")


__all__ = ["app", "main"]
