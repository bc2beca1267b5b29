"""Checkpoints: configuration + weights in one file, and import of the original formats.

A checkpoint names its model family (`model.family`: the localizer, SSL2AVS, or another
registered family) and stores the family's configuration, so `eval` and `localize`
rebuild the right model from the file alone. A file that is not a gsavl checkpoint is
offered to each registered family's `import_checkpoint` (the localizer recognises
original GSAVL / EZ-VSL `best.pth` files).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from gsavl_cli import weights
from gsavl_cli.errors import UsageError, WeightsError
from gsavl_cli.io.files import write_atomic_with
from gsavl_cli.model.family import ModelFamily, family_for, get_family, list_families
from gsavl_cli.model.loading import load_exact

CHECKPOINT_FORMAT = "gsavl"
CHECKPOINT_VERSION = 1
DEFAULT_FAMILY = "localizer"
"""The family of a gsavl checkpoint that names none (written before families were recorded)."""
_WRAPPER_PREFIXES = ("module.", "backbone.", "_orig_mod.")


def _formats() -> list[str]:
    return [name for family in list_families() for name in family.foreign_formats]


def _checkpoint_hint() -> str:
    originals = " / ".join(_formats())
    return "pass a checkpoint written by `gsavl train`" + (
        f" (or an original {originals} best.pth)" if originals else ""
    )


class LoadedCheckpoint(NamedTuple):
    """What `load_checkpoint` returns: the model, its config, the extra values, the file's raw content, the family."""

    model: nn.Module
    config: Any
    extra: dict[str, Any]
    raw: Any
    family: str = DEFAULT_FAMILY


def save_checkpoint(
    path: Path,
    model: nn.Module,
    config: Any,
    *,
    extra: dict[str, Any] | None = None,
    optimizer_state: dict[str, Any] | None = None,
) -> None:
    """Write family + config + weights (+ extra, optimizer) atomically.

    `extra` should hold plain Python values so that it loads with `weights_only=True`.
    """
    payload: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "family": family_for(config).name,
        "config": config.to_dict(),
        "model": model.state_dict(),
        "extra": dict(extra or {}),
    }
    if optimizer_state is not None:
        payload["optimizer"] = optimizer_state
    write_atomic_with(Path(path), lambda name: torch.save(payload, name))


def load_checkpoint(path: Path, *, map_location: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Rebuild the model from a gsavl checkpoint or an original format a family recognises.

    Never falls back to random weights: every parameter must come from the file.
    """
    path = Path(path)
    hint = _checkpoint_hint()
    if not path.is_file():
        raise UsageError(f"checkpoint not found: {path}", hint=hint)
    try:
        raw = weights.torch_load(path)
    except WeightsError as exc:
        raise UsageError(str(exc), hint=hint) from exc
    parsed = _parse_checkpoint(raw, path, hint)
    with torch.device("meta"):
        model = parsed.family.build(parsed.config)
    name = parsed.family.name
    load_exact(model, parsed.state, source=path, what=f"{name} model", error=UsageError, hint=hint, assign=True)
    return LoadedCheckpoint(model.to(map_location), parsed.config, parsed.extra, raw, name)


@dataclass
class _Parsed:
    family: ModelFamily
    config: Any
    state: dict[str, torch.Tensor]
    extra: dict[str, Any]


def _parse_checkpoint(raw: Any, path: Path, hint: str) -> _Parsed:
    if isinstance(raw, dict) and raw.get("format") == CHECKPOINT_FORMAT:
        if raw.get("version") != CHECKPOINT_VERSION:
            raise UsageError(
                f"{path}: checkpoint version {raw.get('version')} is not supported "
                f"(this gsavl reads version {CHECKPOINT_VERSION})",
                hint="use the gsavl version that wrote it, or upgrade gsavl",
            )
        if not isinstance(raw.get("config"), dict) or not isinstance(raw.get("model"), dict):
            raise UsageError(f"damaged gsavl checkpoint (no config or weights): {path}", hint=hint)
        try:
            family = get_family(raw.get("family", DEFAULT_FAMILY))
        except UsageError as exc:
            raise UsageError(f"{path}: {exc}", hint="upgrade gsavl, or import the package that registers it") from None
        config = family.config_from_dict(raw["config"])
        return _Parsed(family, config, _strip_wrappers(raw["model"]), dict(raw.get("extra") or {}))
    state = raw.get("model") if isinstance(raw, dict) and isinstance(raw.get("model"), dict) else raw
    if not isinstance(state, dict) or not state or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise UsageError(f"not a gsavl checkpoint: {path}", hint=hint)
    stripped = _strip_wrappers(state)
    for family in list_families():
        imported = family.import_checkpoint(raw, stripped, path)
        if imported is not None:
            return _Parsed(family, imported.config, imported.state, imported.extra)
    names = ["gsavl", *_formats()]
    what = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    raise UsageError(f"not a {what} checkpoint: {path}", hint=hint)


def _strip_wrappers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove DDP (`module.`), GSAVL (`backbone.`) and torch.compile prefixes from keys."""
    stripped = {}
    for key, value in state.items():
        while key.startswith(_WRAPPER_PREFIXES):
            key = key.split(".", 1)[1]
        stripped[key] = value
    return stripped
