"""`python -m gsavl_cli` (and `torchrun -m gsavl_cli`) runs the CLI."""

from gsavl_cli.cli import main

main()
