"""One object per model family, and the one registry that finds it (timm-style: a name -> an object).

A `ModelFamily` holds everything gsavl knows about one kind of model, so no other code
asks which family it holds (docs/architecture.md, "Adding a model family"):

- `config_class`: its configuration (`to_dict` / `from_dict`); a checkpoint stores the
  family's name and this dict, `family_for(config)` finds the family of a configuration;
- `build(config)`: the untrained architecture `load_checkpoint` fills with the file's weights;
- `recipe(cfg, world)`: what the shared training loop needs (`Recipe`: data, model,
  optimizer, loss step, validation), and `schedule` / `describe_validation` for `gsavl train`;
- the inference adapter: `predict(model, images, audio, lengths)` gives the coarse outputs
  named in `outputs` ("av": the audio-visual heatmap [B,h,w]; "mask": mask logits [B,H,W]
  for a family with its own mask head) that the Predictor turns into heatmaps and masks;
- `import_checkpoint`: how a file that is not a gsavl checkpoint is recognised as one of
  the family's own original formats (the localizer: GSAVL / EZ-VSL `best.pth`).

The built-in families register themselves next to their models
(`model/localizer_family.py`, `model/ssl2avs/family.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import torch
from torch import nn
from torch.utils.data import Dataset

from gsavl_cli.errors import UsageError

if TYPE_CHECKING:
    from gsavl_cli.commands.train import TrainConfig

Step = Callable[[nn.Module, dict[str, torch.Tensor], str, torch.autocast], tuple[torch.Tensor, int]]
"""(possibly DDP-wrapped model, batch, device, autocast) -> (loss, number of samples)."""

OUTPUT_NAMES = {"av": "audio-visual heatmap", "mask": "mask head of its own"}
"""What each named model output is, for the error that a segmenter needs one a model lacks."""


@dataclass
class Recipe:
    """What one model family brings to the shared training loop (`commands.train.train`)."""

    dataset: Dataset
    collate: Callable[[list[Any]], Any] | None
    model: nn.Module
    optimizer: torch.optim.Optimizer
    step: Step
    validate: Callable[[nn.Module], dict[str, Any]] | None  # None: no validation data
    score: str  # the validation metric (higher is better) that picks best.pt
    ddp_options: dict[str, Any] = field(default_factory=dict)
    chance_loss: Callable[[int], float] | None = None
    """The loss of a batch of B when every logit is equal (`training_health`); None: no such value."""


class Imported(NamedTuple):
    """A foreign checkpoint mapped onto a family: its configuration, our parameter names, provenance."""

    config: Any
    state: dict[str, torch.Tensor]
    extra: dict[str, Any]


class ModelFamily:
    """A model family: subclass it, set `name` and `config_class`, implement `build`, `recipe`, `predict`."""

    name: str = ""
    config_class: type = object
    """The configuration dataclass; `to_dict()` and the classmethod `from_dict(data)` round-trip it."""
    outputs: tuple[str, ...] = ("av",)
    """The coarse outputs `predict` returns (see the module docstring)."""
    default_segmenter: str = "sam"
    """The segmenter `Predictor.from_checkpoint` uses unless told (a family with a mask head: "model")."""
    foreign_formats: tuple[str, ...] = ()
    """Names of the original formats `import_checkpoint` recognises, for the error naming what loads."""

    def config_from_dict(self, data: dict[str, Any]) -> Any:
        """The configuration a checkpoint stored."""
        return self.config_class.from_dict(data)  # type: ignore[attr-defined]

    def build(self, config: Any) -> nn.Module:
        """The untrained model of `config` (`load_checkpoint` builds it on the meta device, then loads)."""
        raise NotImplementedError

    def recipe(self, cfg: TrainConfig, world: int) -> Recipe:
        """Data, model (on `cfg.device`), optimizer, step and validation for `gsavl train`.

        May complete `cfg.model` (e.g. record the audio window) and `cfg.lr` (the family's default).
        """
        raise NotImplementedError

    def schedule(self, dataset: str, data: Path) -> tuple[int, int]:
        """`gsavl train`'s default (batch size, epochs): the named dataset's localizer schedule unless overridden."""
        from gsavl_cli.datasets import train_preset

        return train_preset(dataset)

    def describe_validation(self, val: dict[str, Any]) -> str:
        """One epoch's validation for `gsavl train`'s progress line."""
        return "val " + " ".join(f"{k} {v:.4f}" for k, v in val.items() if isinstance(v, float))

    def predict(
        self, model: nn.Module, images: torch.Tensor, audio: torch.Tensor, lengths: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The inference adapter: `outputs` for a batch of test-resized frames and their audio inputs.

        Called under `torch.no_grad()` with the model in eval mode.
        """
        raise NotImplementedError

    def listening_score(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """How strongly some place in each frame matches its audio, [B], from `predict`'s outputs.

        The abstention rule (`gsavl_cli.abstention`) compares it with a threshold chosen on
        validation data. Default: the peak of the raw audio-visual similarity map `av`.
        """
        return outputs["av"].flatten(1).amax(dim=1)

    def import_checkpoint(self, raw: Any, state: dict[str, torch.Tensor], path: Path) -> Imported | None:
        """A file that is not a gsavl checkpoint (`state`: its tensors, wrapper prefixes removed)
        as one of this family's original formats; None when it is not one."""
        return None

    def __repr__(self) -> str:
        return f"<model family {self.name!r}>"


F = TypeVar("F", bound="type[ModelFamily] | ModelFamily")
_REGISTRY: dict[str, ModelFamily] = {}


def register_family(family: F) -> F:
    """Registers a `ModelFamily` subclass (as a class decorator) or instance under its `name`."""
    obj = family() if isinstance(family, type) else family
    if not obj.name:
        raise ValueError(f"{type(obj).__name__} has no name")
    if not (hasattr(obj.config_class, "from_dict") and hasattr(obj.config_class, "to_dict")):
        raise ValueError(f"model family {obj.name!r}: its config_class needs to_dict and from_dict")
    previous = _REGISTRY.get(obj.name)
    if previous is not None and type(previous) is not type(obj):
        raise ValueError(f"a model family named {obj.name!r} is already registered")
    _REGISTRY[obj.name] = obj
    return family


def unregister_family(name: str) -> None:
    """Removes a registered family (tests and plugins that register one for a while)."""
    _REGISTRY.pop(name, None)


def get_family(name: str) -> ModelFamily:
    """The family registered as `name`; one UsageError listing the registered ones otherwise."""
    if name not in _REGISTRY:
        raise UsageError(
            f"unknown model family {name!r}",
            hint=f"registered families: {', '.join(_REGISTRY)} (a plugin's family needs its package imported)",
        )
    return _REGISTRY[name]


def family_for(config: Any) -> ModelFamily:
    """The registered family whose configuration class `config` is."""
    for family in _REGISTRY.values():
        if type(config) is family.config_class:
            return family
    raise UsageError(f"no model family is registered for {type(config).__name__}")


def list_families() -> list[ModelFamily]:
    """The registered families, in registration order."""
    return list(_REGISTRY.values())
