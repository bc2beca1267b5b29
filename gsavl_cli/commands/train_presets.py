"""What `gsavl train --dataset NAME --model PRESET` means before the loop starts.

The model preset with its overrides, the schedule (batch size, epochs) that the preset's
family and the named dataset give by default, the run folder, and the published clip list
a named VGGSound dataset trains on. `commands.train.TrainConfig` receives the result;
the CLI only parses the options and prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gsavl_cli.errors import UsageError

LOCALIZER_ONLY = ("audio_encoder", "similarity", "beta", "freeze_image", "standardize_audio")
"""Overrides that only the localizer presets (gsavl, ezvsl) take; an SSL2AVS preset refuses them."""


@dataclass
class TrainPreset:
    """A model preset resolved for one dataset."""

    model: Any  # ModelConfig or SSL2AVSConfig
    family: str  # "localizer" or "ssl2avs", as `home.record_run` logs it
    batch_size: int
    epochs: int

    @property
    def segmentation(self) -> bool:
        """Supervised on masks (SSL2AVS) rather than the self-supervised localizer."""
        return self.family == "ssl2avs"


def resolve_preset(dataset: str, data: Path, model: str, overrides: dict[str, Any]) -> TrainPreset:
    """`--model PRESET` with the options given (`None`: the preset's) and its default schedule.

    SSL2AVS trains on AVSegFormer's schedule (batch 4, epochs by the store's layout); the
    localizer on the named dataset's (`datasets.train_preset`), else the defaults.
    """
    from gsavl_cli.datasets import train_preset
    from gsavl_cli.model import config_from_preset
    from gsavl_cli.model.ssl2avs import SSL2AVSConfig

    given = {k: v for k, v in overrides.items() if v is not None}
    if isinstance(config_from_preset(model), SSL2AVSConfig):
        misplaced = [f"--{k.replace('_', '-')}" for k in LOCALIZER_ONLY if k in given]
        if misplaced:
            raise UsageError(
                f"options of the localizer presets (gsavl, ezvsl) given to {model}: {', '.join(misplaced)}",
                hint="drop them",
            )
        from gsavl_cli.commands.train_segmentation import DEFAULT_BATCH, default_epochs

        family, (batch_size, epochs) = "ssl2avs", (DEFAULT_BATCH, default_epochs(data))
    else:
        family, (batch_size, epochs) = "localizer", train_preset(dataset)
    return TrainPreset(config_from_preset(model, **given), family, batch_size, epochs)


def default_run_folder(dataset: str, data: Path) -> Path:
    """runs/STEM for a data file given by path, runs/NAME for a named dataset."""
    by_path = Path(dataset).suffix in (".h5", ".hdf5") or Path(dataset).exists()
    return Path("runs") / (data.stem if by_path else dataset)


def default_subset(dataset: str, *, progress: bool = True) -> str | None:
    """The published clip list a named dataset trains on (VGGSound: EZ-VSL's), fetched into the cache once.

    None for a file or a name without one. Raises `WeightsError` when the list cannot be
    had (offline with nothing cached); training then uses every clip of the file.
    """
    from gsavl_cli.datasets import named_datasets
    from gsavl_cli.weights import resolve_weights

    named = named_datasets().get(dataset)
    if named is None or named.subset is None:
        return None
    resolve_weights(f"subset_{named.subset}", progress=progress)
    return named.subset
