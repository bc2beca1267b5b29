"""`gsavl demo` end to end: every promised file, and training that measurably helps."""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from gsavl_cli.cli import app
from gsavl_cli.commands.demo import chance_pointing
from gsavl_cli.commands.evaluate import validation_ids
from gsavl_cli.io.media import read_image


@pytest.mark.slow
def test_demo_trains_a_better_localizer(tmp_path):
    result = CliRunner().invoke(app, ["-q", "demo", str(tmp_path), "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    summary = json.loads(result.stdout)
    for name in ("mask", "overlay", "heatmap", "json", "report", "checkpoint", "metrics"):
        assert Path(summary["outputs"][name]).is_file(), name
    assert "<table" in Path(summary["outputs"]["report"]).read_text()
    mask = read_image(summary["outputs"]["mask"], mode="GRAY")
    assert set(np.unique(mask)) <= {0, 255}
    assert summary["segmenter"] in ("sam", "threshold")
    trained, untrained, centre = summary["trained"], summary["untrained"], summary["centre_prior"]
    for metrics in (trained, untrained, centre):
        assert {"pointing_game", "miou"} <= set(metrics)
    data = tmp_path / "world.h5"
    chance = chance_pointing(data, validation_ids(data, "test"))
    assert summary["chance_pointing"] == chance
    assert chance < 0.1  # the sounding objects are small: a random point rarely hits one
    # The trained localizer points at the sounding object far more often than before
    # training, than chance, and than the centre prior (fixed seed: deterministic here).
    assert trained["pointing_game"] >= untrained["pointing_game"] + 0.15
    assert trained["pointing_game"] >= chance + 0.2
    assert trained["pointing_game"] > centre["pointing_game"]
    # Heatmap IoU at half the normalised maximum, computed here independently of `eval`.
    trained_iou = _heatmap_iou(data, Path(summary["outputs"]["checkpoint"]))
    untrained_iou = _heatmap_iou(data, tmp_path / "untrained.pt")
    assert trained_iou >= untrained_iou + 0.05
    assert trained_iou >= 2 * chance  # chance: the IoU of predicting the whole frame


def _heatmap_iou(data: Path, checkpoint: Path) -> float:
    import torch

    from gsavl_cli import metrics
    from gsavl_cli.commands.evaluate import ground_truth
    from gsavl_cli.pipeline import batch_heatmaps, load_models
    from gsavl_cli.io.store import open_store

    models = load_models(checkpoint, "cpu", ("av",))
    ious = []
    with open_store(data) as store:
        for clip in validation_ids(data, "test"):
            item = store.read(clip, ("first_frame", "vggish", "masks", "mask_frames"))
            gt = ground_truth(item, item["first_frame"].shape[:2])
            heat = batch_heatmaps(models, [item["first_frame"]], [torch.from_numpy(item["vggish"])], ("av",))["av"][0].numpy()
            ious.append(metrics.mask_iou(heat >= 0.5, gt))
    return float(np.mean(ious))
