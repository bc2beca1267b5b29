"""`python -m gsavl_cli` (and `torchrun -m gsavl_cli`) runs the CLI."""

from .cli import main

main()
