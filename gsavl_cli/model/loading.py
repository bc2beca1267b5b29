"""Strict state-dict loading with errors that say what differs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from gsavl_cli.errors import UsageError


def few(keys: Sequence[str], limit: int = 3) -> str:
    """Up to `limit` of `keys` for an error message, with how many more; "none" when there are none."""
    if not keys:
        return "none"
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def load_exact(
    module: nn.Module,
    state: dict[str, torch.Tensor],
    *,
    source: Path,
    what: str,
    error: type[UsageError],
    hint: str,
    assign: bool = False,
) -> None:
    """Load `state` into `module` with every key matched, or raise `error` saying what differs."""
    own = module.state_dict().keys()
    missing, unexpected = sorted(own - state.keys()), sorted(state.keys() - own)
    if missing or unexpected:
        raise error(
            f"{source} does not fit the {what}: missing {few(missing)}, unexpected {few(unexpected)}",
            hint=hint,
        )
    try:
        module.load_state_dict(state, assign=assign)
    except RuntimeError as exc:
        detail = str(exc).strip().splitlines()[-1].strip()
        raise error(f"{source} does not fit the {what}: {detail}", hint=hint) from exc
