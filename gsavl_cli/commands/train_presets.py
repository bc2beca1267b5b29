"""What `gsavl train --dataset NAME --model PRESET` means before the loop starts.

The model preset with its overrides, the schedule (batch size, epochs) that the preset's
family and the named dataset give by default, the run folder, and the published clip list
a named VGGSound dataset trains on. `commands.train.TrainConfig` receives the result;
the CLI only parses the options and prints.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gsavl_cli.errors import UsageError

if TYPE_CHECKING:
    from gsavl_cli.model.family import ModelFamily


_STAND_INS = ("--no-pretrained", "--identity-init", "--freeze-image", "--freeze-audio", "--standardize-audio")
_SCHEDULE = ("--beta", "5", "--image-size", "257", "--lr", "2e-3")
FROM_SCRATCH: dict[str, tuple[str, ...]] = {
    "gsavl": (*_STAND_INS, "--tau", "0.07", *_SCHEDULE, "--batch-size", "16"),
    "ezvsl": (*_STAND_INS, "--similarity", "cosine", *_SCHEDULE, "--batch-size", "8"),
}
"""`gsavl train` options with which each localizer preset learns without pretrained weights
(docs/results.md, "When training collapses": fixed random/identity trunks, standardised
audio, the global term at weight 5; gsavl at temperature 0.07, ezvsl with cosine in batches of 8). The paper's numbers use the
presets as they are."""


@dataclass
class TrainPreset:
    """A model preset resolved for one dataset."""

    model: Any  # the family's configuration
    family: ModelFamily
    batch_size: int
    epochs: int


def resolve_preset(dataset: str, data: Path, model: str, overrides: dict[str, Any]) -> TrainPreset:
    """`--model PRESET` with the options given (`None`: the preset's) and its family's default schedule.

    An option the preset's configuration has no field for (a localizer option given to
    SSL2AVS) is refused rather than ignored.
    """
    from gsavl_cli.model import config_from_preset, family_for

    given = {k: v for k, v in overrides.items() if v is not None}
    preset = config_from_preset(model)
    family = family_for(preset)
    misplaced = [f"--{k.replace('_', '-')}" for k in given if k not in {f.name for f in fields(preset)}]
    if misplaced:
        raise UsageError(
            f"options the {model} preset ({family.name} family) does not take: {', '.join(misplaced)}",
            hint="drop them",
        )
    batch_size, epochs = family.schedule(dataset, data)
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
