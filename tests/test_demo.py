"""`gsavl demo` end to end: every promised file, every baseline reported, masks that follow the prompts."""

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gsavl_cli.cli import app
from gsavl_cli.commands.demo import chance_pointing
from gsavl_cli.io.media import read_image
from gsavl_cli.validation import validation_ids

runner = CliRunner()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    result = runner.invoke(app, ["-q", "demo", str(folder), "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    return folder, json.loads(result.stdout)


@pytest.mark.slow
def test_demo_writes_everything_and_reports_every_baseline(demo):
    folder, summary = demo
    for name in ("mask", "overlay", "heatmap", "json", "report", "checkpoint", "metrics"):
        assert Path(summary["outputs"][name]).is_file(), name
    assert "<table" in Path(summary["outputs"]["report"]).read_text()
    assert summary["segmenter"] in ("sam", "region") and summary["seconds"] > 0
    data = folder / "world.h5"
    chance = chance_pointing(data, validation_ids(data, "test"))
    assert summary["chance_pointing"] == chance
    for name in ("trained", "untrained", "centre_prior"):
        assert {"pointing_game", "ciou", "miou"} <= set(summary[name])
        assert all(0 <= summary[name][k] <= 1 for k in ("pointing_game", "ciou", "miou"))
    logged = [json.loads(line)["loss"] for line in (folder / "run" / "metrics.jsonl").read_text().splitlines()]
    assert summary["training"]["losses"] == [round(loss, 4) for loss in logged]
    assert summary["training"]["tied_epochs"] == [] and logged[-1] < logged[0]


@pytest.mark.slow
def test_demo_training_wins_on_every_column(demo):
    """The margins of issue 14 (docs/results.md, "the synthetic world", has the figures)."""
    _, summary = demo
    trained, untrained, centre = summary["trained"], summary["untrained"], summary["centre_prior"]
    assert trained["pointing_game"] >= 0.8
    assert trained["pointing_game"] > max(
        untrained["pointing_game"], centre["pointing_game"], summary["chance_pointing"]
    )
    assert trained["miou"] >= 0.4 and trained["miou"] >= 2 * max(centre["miou"], untrained["miou"])
    assert trained["ciou"] > max(untrained["ciou"], centre["ciou"])


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


@pytest.mark.parametrize("option", [["--epochs", "0"], ["--train-clips", "1"], ["--test-clips", "0"]])
def test_demo_refuses_bad_counts_before_doing_any_work(tmp_path, option):
    result = runner.invoke(app, ["demo", str(tmp_path / "out"), *option])
    assert result.exit_code == 2 and "the demo needs at least" in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_silent_audio_scores_well_below_the_real_audio_on_the_demo_world(demo, tmp_path):
    """The `--audio silent` control of a model that listens: same clips, same checkpoint, no sound."""
    folder, summary = demo
    scores = {}
    for audio in ("normal", "silent"):
        result = runner.invoke(
            app,
            [
                "-q",
                "eval",
                "--dataset",
                str(folder / "world.h5"),
                "--checkpoint",
                summary["outputs"]["checkpoint"],
                "--map",
                "av",
                "--sampler",
                "prob",
                "--segmenter",
                "region",
                "--audio",
                audio,
                "--out",
                str(tmp_path / audio),
                "--json",
            ],
        )
        assert result.exit_code == 0, result.output
        heat = next(r for r in json.loads(result.stdout)["results"] if r["sampler"] is None)
        scores[audio] = heat["pointing_game"]
    assert scores["normal"] == pytest.approx(summary["trained"]["pointing_game"])
    assert scores["silent"] <= 0.6 * scores["normal"], scores
