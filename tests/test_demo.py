"""`gsavl demo` end to end: every promised file, training that wins on every column, masks
that follow the prompts, and a localizer that listens (`eval --audio shuffled`)."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from gsavl_cli.cli import app
from gsavl_cli.commands.demo import chance_pointing
from gsavl_cli.commands.evaluate import validation_ids
from gsavl_cli.io.media import read_image

runner = CliRunner()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    result = runner.invoke(app, ["-q", "demo", str(folder), "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    return folder, json.loads(result.stdout)


@pytest.mark.slow
def test_demo_writes_everything_and_training_wins_on_every_column(demo):
    folder, summary = demo
    for name in ("mask", "overlay", "heatmap", "json", "report", "checkpoint", "metrics"):
        assert Path(summary["outputs"][name]).is_file(), name
    assert "<table" in Path(summary["outputs"]["report"]).read_text()
    assert summary["segmenter"] in ("sam", "region") and summary["seconds"] > 0
    trained, untrained, centre = summary["trained"], summary["untrained"], summary["centre_prior"]
    data = folder / "world.h5"
    chance = chance_pointing(data, validation_ids(data, "test"))
    assert summary["chance_pointing"] == chance
    assert trained["pointing_game"] >= 0.8 and trained["pointing_game"] > untrained["pointing_game"] + 0.2
    assert trained["ciou"] > untrained["ciou"] and trained["ciou"] > centre["ciou"]
    assert trained["miou"] >= 0.4
    assert trained["miou"] >= 2 * untrained["miou"] and trained["miou"] >= 2 * centre["miou"]


@pytest.mark.slow
def test_demo_mask_contains_its_prompts(demo):
    _, summary = demo
    mask = read_image(summary["outputs"]["mask"], mode="GRAY") > 0
    found = json.loads(Path(summary["outputs"]["json"]).read_text())
    assert 0 < mask.mean() < 0.6  # a region, not the frame
    for (x, y), label in zip(found["points"], found["labels"]):
        assert label == 0 or mask[int(round(y)), int(round(x))]
    rows = list(csv.DictReader((Path(summary["outputs"]["metrics"]).parent / "per_sample.csv").open()))
    assert all(json.loads(r["points"]) for r in rows if r["sampler"] == "prob")


@pytest.mark.slow
def test_shuffled_audio_scores_clearly_lower(demo, tmp_path):
    """A localizer that listens loses its aim when each clip hears another clip's sound."""
    folder, summary = demo
    scores = {}
    for audio in ("normal", "shuffled"):
        result = runner.invoke(app, ["-q", "--seed", "0", "eval", "--dataset", str(folder / "world.h5"), "--checkpoint",
                                     summary["outputs"]["checkpoint"], "--segmenter", "region", "--map", "av", "--sampler",
                                     "prob", "--audio", audio, "--out", str(tmp_path / audio), "--json"])
        assert result.exit_code == 0, result.output
        heat = next(r for r in json.loads(result.stdout)["results"] if r["sampler"] is None)
        scores[audio] = heat["pointing_game"]
    assert scores["normal"] == pytest.approx(summary["trained"]["pointing_game"])
    assert scores["shuffled"] <= scores["normal"] - 0.3, scores
