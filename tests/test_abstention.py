"""Abstention: the listening score, the calibrated threshold, and "nothing here makes the sound" end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from gsavl_cli import Predictor
from gsavl_cli.abstention import Calibration, choose_threshold, store_calibration
from gsavl_cli.cli import app
from gsavl_cli.data.audio_input import audio_input
from gsavl_cli.data.features import test_transform
from gsavl_cli.io import media
from gsavl_cli.model import build_localizer, config_from_preset, load_checkpoint, save_checkpoint
from gsavl_cli.model.family import family_for
from gsavl_cli.model.heatmap import coarse_maps
from gsavl_cli.predictor import ClipInput
from gsavl_cli.segment import RegionSegmenter

SR = 16000
runner = CliRunner()


def test_threshold_separates_scores_with_the_best_balanced_accuracy():
    assert choose_threshold(np.array([0.8, 0.9]), np.array([0.1, 0.2])) == (0.5, 1.0)
    # values 0.1 0.3 0.5 0.9 -> cuts 0.2 and 0.7 both give (TPR + TNR) / 2 = 0.75; the later (middle) one is kept
    assert choose_threshold(np.array([0.3, 0.9]), np.array([0.1, 0.5])) == (pytest.approx(0.7), 0.75)
    _, accuracy = choose_threshold(np.array([0.4]), np.array([0.4]))  # inseparable: chance
    assert accuracy == 0.5


@pytest.fixture(scope="module")
def localizer():
    config = config_from_preset("gsavl", image_size=64, audio_seconds=1.0)
    torch.manual_seed(0)
    return build_localizer(config, pretrained=False, identity_image_init=True).eval()


def _clip(seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (48, 80, 3), dtype=np.uint8), rng.standard_normal(2 * SR).astype(np.float32)


def test_the_localizers_listening_score_is_the_peak_raw_similarity(localizer):
    frame, wave = _clip()
    predictor = Predictor(localizer, RegionSegmenter())
    predictor.set_clip(frame, wave, key="c")
    image = test_transform(64)(frame)[None]
    audio = audio_input(wave, None, localizer.config)[None]
    raw = coarse_maps(localizer, None, image, audio, torch.tensor([audio.shape[1]]), ("av",))["av"]
    assert predictor.listening_score() == pytest.approx(float(raw.max()), rel=1e-5)
    batch = predictor.listening_scores([ClipInput(*_clip(s), None, f"k{s}") for s in (1, 2, 3)], batch_size=2)
    assert batch[0] == pytest.approx(predictor.listening_score(), rel=1e-5) and len(set(batch.round(6))) == 3


def test_ssl2avs_listens_through_its_mask_head():
    from gsavl_cli.model.ssl2avs import SSL2AVSConfig

    logits = torch.tensor([[[-3.0, 1.0], [0.0, -1.0]], [[-5.0, -4.0], [-2.0, -6.0]]])
    family = family_for(SSL2AVSConfig())
    scores = family.listening_score({"mask": logits, "av": torch.rand(2, 2, 2)})
    torch.testing.assert_close(scores, torch.sigmoid(torch.tensor([1.0, -2.0])))


def test_below_the_threshold_the_predictor_abstains_and_above_it_predicts_as_without(localizer):
    frame, wave = _clip()
    plain = Predictor(localizer, RegionSegmenter())
    plain.set_clip(frame, wave, key="c")
    score = plain.listening_score()
    expected = plain.predict("av", "prob", seed=3)
    for threshold, abstains in ((score + 1e-3, True), (score - 1e-3, False)):
        predictor = Predictor(localizer, RegionSegmenter(), abstain_below=threshold)
        predictor.set_clip(frame, wave, key="c")
        found = predictor.predict("av", "prob", seed=3)
        assert found.abstained is abstains and found.listening == pytest.approx(score)
        if abstains:
            assert not found.mask.any() and found.mask.shape == frame.shape[:2] and len(found.points) == 0
        else:
            assert np.array_equal(found.mask, expected.mask) and np.array_equal(found.points, expected.points)


def test_calibrate_stores_the_threshold_and_localize_abstains_below_it(synthetic_world, s4_store, tmp_path):
    config = config_from_preset("gsavl", image_size=64, audio_seconds=1.0)
    torch.manual_seed(0)
    ckpt = tmp_path / "m.pt"
    save_checkpoint(ckpt, build_localizer(config, pretrained=False, identity_image_init=True), config)
    clip = next(c for c in synthetic_world.clips if c.split == "test")
    common = ["--checkpoint", str(ckpt), "--segmenter", "region", "--map", "av"]

    refused = runner.invoke(
        app, ["-q", "localize", str(clip.video), *common, "--abstain", "-o", str(tmp_path / "x.png")]
    )
    said = " ".join(refused.output.split())
    assert refused.exit_code == 2 and "no abstention threshold" in said and "gsavl calibrate" in said

    done = runner.invoke(app, ["-q", "calibrate", "--checkpoint", str(ckpt), "--dataset", str(s4_store), "--json"])
    assert done.exit_code == 0, done.output
    stored = load_checkpoint(ckpt).extra["abstention"]
    found = json.loads(done.stdout)
    assert stored["threshold"] == found["threshold"] and stored["split"] == "val"
    assert found["positives"] == 2 and found["negatives"] == 6 and 0.5 <= found["balanced_accuracy"] <= 1

    never = Calibration(float("inf"), 1.0, 2, 6, 0.0, 0.0, ("silence",), "d", "val", 42)
    store_calibration(ckpt, never)  # every frame below: localize now abstains by default
    out = tmp_path / "m.png"
    said = runner.invoke(
        app, ["localize", str(clip.video), *common, "-o", str(out), "--json-file", str(tmp_path / "r.json")]
    )
    assert said.exit_code == 0, said.output
    assert "nothing in the frame makes the sound" in " ".join(said.output.split())
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["abstained"] is True and result["mask_area"] == 0 and result["points"] == []
    assert not (media.read_image(out, mode="GRAY") > 0).any()
    heard = runner.invoke(
        app,
        [
            "-q",
            "localize",
            str(clip.video),
            *common,
            "--no-abstain",
            "-o",
            str(out),
            "--json-file",
            str(tmp_path / "r.json"),
        ],
    )
    assert heard.exit_code == 0 and json.loads((tmp_path / "r.json").read_text())["mask_area"] > 0
