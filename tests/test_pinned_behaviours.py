"""Behaviours a user relies on, each pinned by a test that fails when the behaviour changes.

Every test here was checked by breaking the behaviour by hand and watching it fail
(see the closing note of the issue "tests that can fail").
"""

from __future__ import annotations

import hashlib
import json

import h5py
import numpy as np
import torch
from typer.testing import CliRunner

from gsavl_cli.cli import app
from gsavl_cli.commands.train import TrainConfig, train
from gsavl_cli.data.synthetic import render_clip
from gsavl_cli.io.store import open_store
from gsavl_cli.model import config_from_preset, load_checkpoint
from gsavl_cli.predictor import Predictor, prompt_generator
from gsavl_cli.samplers import Prompts, sample
from gsavl_cli.segment import RegionSegmenter
from gsavl_cli.segment.region import prompt_region

runner = CliRunner()


def test_the_seeding_rule_is_the_documented_hash_and_the_predictor_draws_with_it():
    """seed = first 8 bytes (little-endian) of sha256("SEED/KEY/MAP/SAMPLER"), top bit cleared (docs/api.md)."""
    digest = hashlib.sha256(b"7/clip-a/av/prob").digest()
    by_hand = int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)
    assert prompt_generator(7, "clip-a", "av", "prob").initial_seed() == by_hand
    heat = torch.zeros(24, 32)
    heat[4:12, 6:20] = torch.linspace(0.2, 1.0, 14)
    expected = sample("prob", heat, generator=torch.Generator().manual_seed(by_hand))
    predictor = Predictor(None, RegionSegmenter())
    predictor.set_clip(np.zeros((24, 32, 3), np.uint8), np.zeros(1600, np.float32), key="clip-a")
    found = predictor.predict("av", "prob", seed=7, heatmap=heat)
    np.testing.assert_array_equal(found.points, expected.points)
    np.testing.assert_array_equal(found.labels, expected.labels)
    other = predictor.predict("av", "prob", seed=8, heatmap=heat)
    assert not np.array_equal(other.points, found.points)  # the seed is part of the rule


def test_a_clip_interrupted_between_arrays_is_not_complete_and_preprocess_redoes_it(tmp_path, monkeypatch):
    for i in range(2):
        render_clip(tmp_path / "in" / f"c{i}.mp4", seed=i)
    out = tmp_path / "s.h5"
    args = ["-q", "preprocess", str(tmp_path / "in"), "-o", str(out), "--workers", "1", "--no-register", "--json"]
    original = h5py.Group.create_dataset

    def disk_full_at_the_spectrogram(self, name, *a, **k):
        if name == "spectrogram":
            raise OSError(28, "No space left on device (simulated)")
        return original(self, name, *a, **k)

    monkeypatch.setattr(h5py.Group, "create_dataset", disk_full_at_the_spectrogram)
    failed = runner.invoke(app, args)
    assert failed.exit_code == 1 and "No space left" in failed.output and isinstance(failed.exception, SystemExit)
    monkeypatch.undo()
    with h5py.File(out, "r") as f:
        started = [g for g in f["clips"].values()]
        assert started and all("vggish" in g and not g.attrs.get("complete", False) for g in started)
    assert open_store(out).ids == []  # a reader never sees the half-written clip
    resumed = json.loads(runner.invoke(app, args).stdout)
    assert resumed["written"] == 2 and resumed["skipped"] == 0
    with open_store(out) as store:
        assert store.ids == ["c0", "c1"] and all("spectrogram" in store[i] for i in store.ids)


def test_early_stopping_stops_after_patience_bad_epochs_and_best_pt_holds_the_best_epoch(
    s4_store, tmp_path, monkeypatch
):
    import gsavl_cli.validation as validation

    scores, weights = iter([0.10, 0.30, 0.20, 0.25, 0.50, 0.60]), []

    def scripted(model, *args, **kwargs):
        weights.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        score = next(scores)
        return {"ciou": score, "auc": score}

    monkeypatch.setattr(validation, "heatmap_metrics", scripted)
    out = tmp_path / "run"
    train(
        TrainConfig(
            data=s4_store,
            out=out,
            model=config_from_preset("ezvsl", image_size=64),
            epochs=6,
            batch_size=4,
            workers=0,
            pretrained=False,
            max_steps=1,
            seed=7,
            val=s4_store,
            val_split="test",
            patience=2,
        )
    )
    logs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [log["epoch"] for log in logs] == [1, 2, 3, 4]  # 0.30 at epoch 2, then two epochs without better
    assert [log["best"] for log in logs] == [True, True, False, False]
    best = load_checkpoint(out / "best.pt")
    assert best.extra["epoch"] == 2
    for name, value in best.model.state_dict().items():
        torch.testing.assert_close(value, weights[1][name], rtol=0, atol=0, msg=name)


def test_region_segmenter_joins_diagonal_neighbours_8_connectivity():
    heat = np.zeros((5, 5), np.float32)
    heat[1, 1] = heat[2, 2] = 1.0  # touching only at a corner
    heat[4, 0] = 1.0  # a separate hot pixel
    mask = prompt_region(heat, Prompts(np.array([[1.0, 1.0]], np.float32), np.array([1])))
    assert mask[1, 1] and mask[2, 2] and not mask[4, 0] and mask.sum() == 2


def test_an_unexpected_exception_is_one_internal_error_line(tmp_path, monkeypatch):
    import gsavl_cli.commands.localize as localize

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(localize, "localize_clips", broken)
    clip = render_clip(tmp_path / "c.mp4").path
    result = runner.invoke(app, ["-q", "localize", str(clip), "--map", "obj", "--segmenter", "region"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[0] == "internal error: RuntimeError: boom" and "-v" in lines[1] and len(lines) == 2, result.output


def test_verbose_does_not_leak_into_the_next_invocation(tmp_path):
    missing = str(tmp_path / "missing.mp4")
    loud = runner.invoke(app, ["-v", "localize", missing, "--map", "obj"])
    assert loud.exit_code == 2 and "Traceback" in loud.output  # -v shows the traceback of the error
    plain = runner.invoke(app, ["localize", missing, "--map", "obj"])
    assert plain.exit_code == 2 and "Traceback" not in plain.output and plain.output.startswith("error:")
