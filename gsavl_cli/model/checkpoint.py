"""Checkpoints: configuration + weights in one file, and import of the original formats.

A checkpoint names its model family (the localizer, or another registered family such
as SSL2AVS) and stores the family's configuration, so `eval` and `localize` rebuild the
right model from the file alone. Original GSAVL / EZ-VSL `best.pth` files are mapped
onto the localizer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from gsavl_cli import weights
from gsavl_cli.errors import UsageError, WeightsError
from gsavl_cli.io.files import write_atomic_with
from gsavl_cli.model.config import ModelConfig, config_from_preset
from gsavl_cli.model.loading import load_exact
from gsavl_cli.model.localizer import Localizer

CHECKPOINT_FORMAT = "gsavl"
CHECKPOINT_VERSION = 1
DEFAULT_FAMILY = "localizer"
_CHECKPOINT_HINT = "pass a checkpoint written by `gsavl train` (or an original GSAVL / EZ-VSL best.pth)"

# Original GSAVL / EZ-VSL parameter names -> ours (after removing `module.`/`backbone.`).
ORIGINAL_PREFIXES = {
    "imgnet.": "image_trunk.",
    "img_proj.": "image_proj.",
    "audnet.": "audio.trunk.",
    "aud_proj.": "audio.proj.",
}
# The originals replaced these heads by nn.Identity; a variant that kept them is fine too.
_ORIGINAL_IGNORED = ("imgnet.fc.", "audnet.fc.")
_WRAPPER_PREFIXES = ("module.", "backbone.", "_orig_mod.")
_ORIGINAL_FIELDS = ("epoch", "best_cIoU", "best_Auc", "best_Pr")


@dataclass(frozen=True)
class Family:
    """A model family: how to read its configuration and build an (untrained) model from it."""

    name: str
    config_from_dict: Callable[[dict[str, Any]], Any]
    build: Callable[[Any], nn.Module]


FAMILIES: dict[str, Family] = {}


def register_family(
    name: str, config_from_dict: Callable[[dict[str, Any]], Any], build: Callable[[Any], nn.Module]
) -> None:
    FAMILIES[name] = Family(name, config_from_dict, build)


register_family(DEFAULT_FAMILY, ModelConfig.from_dict, Localizer)


def family_of(config: Any) -> str:
    """The registered family whose configuration class `config` is."""
    for family in FAMILIES.values():
        if getattr(family.config_from_dict, "__self__", None) is type(config):
            return family.name
    raise UsageError(f"no model family is registered for {type(config).__name__}")


class LoadedCheckpoint(NamedTuple):
    model: nn.Module
    config: Any
    extra: dict[str, Any]
    raw: Any
    family: str = DEFAULT_FAMILY

    @property
    def localizer(self) -> nn.Module:
        """The model (named for the localizer family, the one most code loads)."""
        return self.model


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
        "family": family_of(config),
        "config": config.to_dict(),
        "model": model.state_dict(),
        "extra": dict(extra or {}),
    }
    if optimizer_state is not None:
        payload["optimizer"] = optimizer_state
    write_atomic_with(Path(path), lambda name: torch.save(payload, name))


def load_checkpoint(path: Path, *, map_location: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Rebuild the model from a gsavl checkpoint or an original GSAVL / EZ-VSL one.

    Never falls back to random weights: every parameter must come from the file.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"checkpoint not found: {path}", hint=_CHECKPOINT_HINT)
    try:
        raw = weights.torch_load(path)
    except WeightsError as exc:
        raise UsageError(str(exc), hint=_CHECKPOINT_HINT) from exc
    family, config, state, extra = _parse_checkpoint(raw, path)
    with torch.device("meta"):
        model = FAMILIES[family].build(config)
    load_exact(model, state, source=path, what=f"{family} model", error=UsageError, hint=_CHECKPOINT_HINT, assign=True)
    return LoadedCheckpoint(model.to(map_location), config, extra, raw, family)


def _parse_checkpoint(raw: Any, path: Path) -> tuple[str, Any, dict[str, torch.Tensor], dict[str, Any]]:
    if isinstance(raw, dict) and raw.get("format") == CHECKPOINT_FORMAT:
        if raw.get("version") != CHECKPOINT_VERSION:
            raise UsageError(
                f"{path}: checkpoint version {raw.get('version')} is not supported "
                f"(this gsavl reads version {CHECKPOINT_VERSION})",
                hint="use the gsavl version that wrote it, or upgrade gsavl",
            )
        if not isinstance(raw.get("config"), dict) or not isinstance(raw.get("model"), dict):
            raise UsageError(f"damaged gsavl checkpoint (no config or weights): {path}", hint=_CHECKPOINT_HINT)
        family = raw.get("family", DEFAULT_FAMILY)
        if family not in FAMILIES:
            raise UsageError(f"{path}: unknown model family {family!r}", hint="upgrade gsavl")
        config = FAMILIES[family].config_from_dict(raw["config"])
        return family, config, _strip_wrappers(raw["model"]), dict(raw.get("extra") or {})
    state = raw.get("model") if isinstance(raw, dict) and isinstance(raw.get("model"), dict) else raw
    if not isinstance(state, dict) or not state or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise UsageError(f"not a gsavl checkpoint: {path}", hint=_CHECKPOINT_HINT)
    config, mapped, source = _import_original(_strip_wrappers(state), path)
    extra: dict[str, Any] = {"source": source}
    if isinstance(raw, dict):
        extra.update({key: _plain(raw[key]) for key in _ORIGINAL_FIELDS if key in raw})
    return DEFAULT_FAMILY, config, mapped, extra


def _strip_wrappers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove DDP (`module.`), GSAVL (`backbone.`) and torch.compile prefixes from keys."""
    stripped = {}
    for key, value in state.items():
        while key.startswith(_WRAPPER_PREFIXES):
            key = key.split(".", 1)[1]
        stripped[key] = value
    return stripped


def _import_original(state: dict[str, torch.Tensor], path: Path) -> tuple[ModelConfig, dict[str, torch.Tensor], str]:
    """Map an original GSAVL (VGGish audio) / EZ-VSL (ResNet-18 audio) state dict to ours."""
    if "audnet.features.0.weight" in state:
        preset, source = "gsavl", "original GSAVL"
    elif "audnet.conv1.weight" in state:
        preset, source = "ezvsl", "original EZ-VSL"
    else:
        raise UsageError(f"not a gsavl, GSAVL or EZ-VSL checkpoint: {path}", hint=_CHECKPOINT_HINT)
    if "img_proj.weight" not in state:
        raise UsageError(f"{path} has no img_proj.weight", hint=_CHECKPOINT_HINT)
    config = config_from_preset(preset, dim=int(state["img_proj.weight"].shape[0]))
    if preset == "gsavl":
        config.audio_seconds = None
    mapped = {}
    for key, value in state.items():
        if key.startswith(_ORIGINAL_IGNORED):
            continue
        prefix = next((p for p in ORIGINAL_PREFIXES if key.startswith(p)), "")
        mapped[ORIGINAL_PREFIXES.get(prefix, "") + key[len(prefix) :]] = value
    return config, mapped, source


def _plain(value: Any) -> Any:
    """NumPy / tensor scalars as Python numbers, so `extra` stays plain data."""
    return value.item() if hasattr(value, "item") else value
