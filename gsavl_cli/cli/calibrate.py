"""`gsavl calibrate`: choose a checkpoint's abstention threshold on validation clips."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gsavl_cli.cli.app import command
from gsavl_cli.cli.options import CheckpointOpt, choose_checkpoint
from gsavl_cli.console import info, print_json


@command(
    epilog="Example:\n\n  gsavl calibrate --checkpoint runs/s4/best.pt --dataset s4.h5 --split val\n\n"
    "  gsavl localize clip.mp4 --checkpoint runs/s4/best.pt   # now answers 'nothing sounds here' when so"
)
def calibrate(
    dataset: Annotated[str, typer.Option(help="HDF5 file (or dataset name) with the validation clips.")],
    checkpoint: CheckpointOpt = None,
    split: Annotated[
        str, typer.Option(help="Split to calibrate on: validation clips, never the test split you report.")
    ] = "val",
    limit: Annotated[int | None, typer.Option(min=2, help="At most this many clips.")] = None,
    negative_seed: Annotated[
        int, typer.Option(help="Seed of the noise and of the off-screen clips (AVSBench-Robust: 42).")
    ] = 42,
    json_output: Annotated[bool, typer.Option("--json", help="Print the calibration as JSON on stdout.")] = False,
) -> None:
    """Choose the listening-score threshold under which a model answers "nothing here makes the sound".

    Each clip's first frame is scored with its own audio and with negative audio (silence, white noise, another category's sound); the threshold that separates them best (balanced accuracy) is stored in the checkpoint. `localize` then abstains below it; `eval --abstain` measures it.
    """
    from gsavl_cli.abstention import calibrate as run_calibration
    from gsavl_cli.abstention import store_calibration
    from gsavl_cli.console import resolve_device
    from gsavl_cli.datasets import resolve_dataset
    from gsavl_cli.predictor import Predictor

    data = resolve_dataset(dataset)
    path: Path | None = choose_checkpoint(checkpoint, ("av",))
    predictor = Predictor.from_checkpoint(path, device=resolve_device(), segmenter="region")
    found = run_calibration(predictor, data, split, seed=negative_seed, limit=limit)
    assert path is not None
    store_calibration(path, found)
    info(
        f"{path}: abstain below listening score {found.threshold:.4g} (balanced accuracy {found.balanced_accuracy:.3f} "
        f"on {found.positives} {split} frames with their own audio, {found.negatives} with {', '.join(found.kinds)}; "
        f"medians {found.positive_median:.4g} / {found.negative_median:.4g})"
    )
    if json_output:
        print_json({"checkpoint": str(path), **found.to_dict()})
