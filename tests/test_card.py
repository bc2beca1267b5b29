"""The card's own sequence, as written: preprocess a folder, train by dataset name, localize with no checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchvision
from typer.testing import CliRunner

from gsavl_cli.cli import app
from gsavl_cli.data.synthetic import CLASSES, render_clip
from gsavl_cli.datasets import detect_layout
from gsavl_cli.home import NO_MODEL, latest_run, named_stores
from gsavl_cli.io.media import read_image

runner = CliRunner()
VGGSOUND_NAMES = ["abcdefghijk_000000", "bcdefghijkl_000010", "cdefghijklm_000030", "defghijklmn_000120"]


def gsavl(*args: object, code: int = 0):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    return result


@pytest.fixture()
def card(tmp_path, monkeypatch) -> Path:
    """A working folder with ./videos (VGGSound-named clips), a private gsavl home and a prior in the cache."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GSAVL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GSAVL_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "cache" / "resnet18-f37072fd.pth")
    for i, name in enumerate(VGGSOUND_NAMES):
        render_clip(tmp_path / "videos" / f"{name}.mp4", seconds=1.0, category=CLASSES[i % len(CLASSES)], seed=i)
    return tmp_path


def test_the_cards_three_commands_work_as_written(card):
    assert detect_layout(card / "videos") == "vggsound"
    gsavl("-q", "preprocess", "./videos", "--workers", "1")
    assert (card / "videos.h5").exists() and named_stores()["vggsound"].path == str((card / "videos.h5").resolve())
    listed = json.loads(gsavl("datasets", "--json").stdout)
    assert [(d["name"], d["clips"], d["exists"]) for d in listed] == [("vggsound", 4, True)]

    gsavl(
        "-q",
        "train",
        "--dataset",
        "vggsound10k",
        "--no-pretrained",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--max-steps",
        "1",
        "--workers",
        "0",
    )
    run = latest_run()
    assert (
        run is not None
        and run.dataset == "vggsound10k"
        and Path(run.checkpoint) == (card / "runs" / "vggsound10k" / "last.pt").resolve()
    )

    clip = card / "videos" / f"{VGGSOUND_NAMES[0]}.mp4"
    result = gsavl("localize", str(clip), "--sampler", "prob", "--segmenter", "region")
    squeezed = "".join(result.output.split())  # rich wraps long paths anywhere
    assert "".join(f"using the most recent trained model: {run.checkpoint}".split()) in squeezed
    mask = read_image(card / "videos" / f"{VGGSOUND_NAMES[0]}.mask.png", mode="GRAY") > 0
    assert mask.shape == (48, 64) and 0 < mask.sum() < mask.size


def test_no_trained_model_is_one_line_with_the_three_ways_out(card):
    clip = card / "videos" / f"{VGGSOUND_NAMES[0]}.mp4"
    result = gsavl("localize", str(clip), "--sampler", "prob", code=2)
    assert (
        result.output.startswith("error:") and result.output.count("error:") == 1
    )  # one message (rich wraps it at 80 columns)
    assert "hint:" not in result.output and isinstance(result.exception, SystemExit)
    flat = " ".join(result.output.split())
    assert NO_MODEL.split(":")[0] in flat and "--checkpoint" in flat and "gsavl train" in flat and "--map obj" in flat
    assert not (card / "videos" / f"{VGGSOUND_NAMES[0]}.mask.png").exists()


def test_the_object_prior_needs_no_checkpoint(card):
    clip = card / "videos" / f"{VGGSOUND_NAMES[0]}.mp4"
    summary = json.loads(
        gsavl("-q", "localize", str(clip), "--map", "obj", "--segmenter", "region", "-o", "m.png", "--json").stdout
    )
    assert summary["map"] == "obj" and summary["segmenter"] == "region" and summary["mask_area"] > 0
    assert (card / "m.png").exists() and latest_run() is None
    refused = gsavl("localize", str(clip), "--map", "av", "--segmenter", "region", code=2)
    assert "--map obj" in " ".join(refused.output.split())


def test_an_unpreprocessed_name_lists_the_named_stores(card):
    gsavl("-q", "preprocess", "./videos", "--workers", "1", "--name", "mine", "-o", "mine.h5")
    result = gsavl("train", "--dataset", "avsbench-s4", "--no-pretrained", code=2)
    flat = " ".join(result.output.split())
    assert "avsbench-s4 has not been preprocessed" in flat and "mine" in flat
