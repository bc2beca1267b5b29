"""The one prediction path: audio windows, the Predictor against the lower-level functions,
the cascade's reported prompts, and localize == eval on the same clip."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from gsavl_cli import Predictor
from gsavl_cli.cli import app
from gsavl_cli.data.audio_input import audio_input, window_around
from gsavl_cli.data.features import ezvsl_spectrogram, test_transform, vggish_examples
from gsavl_cli.io import media
from gsavl_cli.io.store import ClipRecord, StoreWriter
from gsavl_cli.model import build_localizer, config_from_preset, save_checkpoint
from gsavl_cli.predictor import ClipInput, prompt_generator
from gsavl_cli.samplers import sample
from gsavl_cli.segment import RegionSegmenter, SamSegmenter
from gsavl_cli.segment.tiny import build_tiny_sam

SR = 16000
runner = CliRunner()


def test_window_is_centred_on_the_time_and_kept_inside_the_clip():
    ramp = np.arange(10 * SR, dtype=np.float32)
    middle = window_around(ramp, 5.0, 3.0)
    assert len(middle) == 3 * SR and middle[0] == 3.5 * SR and middle[-1] == 6.5 * SR - 1
    start = window_around(ramp, 0.2, 3.0)  # shifted right, not padded
    assert start[0] == 0 and len(start) == 3 * SR
    end = window_around(ramp, 9.9, 3.0)
    assert end[-1] == 10 * SR - 1 and len(end) == 3 * SR


def test_the_audio_window_comes_from_the_model_config():
    short = np.linspace(-1, 1, SR, dtype=np.float32)
    tiled = window_around(short, 0.5, 3.0)
    assert len(tiled) == 3 * SR and np.array_equal(tiled[:SR], short)
    noise = np.random.default_rng(0).standard_normal(10 * SR).astype(np.float32)
    assert audio_input(noise, 2.0, config_from_preset("gsavl")).shape == (10, 96, 64)  # no window: the whole clip
    windowed = config_from_preset("gsavl", audio_seconds=3.0)
    torch.testing.assert_close(audio_input(noise, 2.0, windowed), vggish_examples(noise[int(0.5 * SR) : int(3.5 * SR)]))
    torch.testing.assert_close(
        audio_input(noise, None, windowed), vggish_examples(noise[int(3.5 * SR) : int(6.5 * SR)])
    )
    spec = audio_input(noise, 2.0, config_from_preset("ezvsl"))  # EZ-VSL: always 3 s
    np.testing.assert_allclose(spec.numpy(), ezvsl_spectrogram(noise[int(0.5 * SR) : int(3.5 * SR)]).numpy(), atol=1e-6)


@pytest.fixture(scope="module")
def localizer():
    config = config_from_preset("gsavl", image_size=64, audio_seconds=1.0)
    torch.manual_seed(0)
    return build_localizer(config, pretrained=False, identity_image_init=True).eval()


@pytest.fixture()
def clip():
    rng = np.random.default_rng(1)
    return rng.integers(0, 255, (48, 80, 3), dtype=np.uint8), rng.standard_normal(2 * SR).astype(np.float32)


def test_predictor_equals_the_lower_level_functions(localizer, clip):
    frame, wave = clip
    predictor = Predictor(localizer, RegionSegmenter())
    predictor.set_clip(frame, wave, time=1.2, key="k")
    heat = predictor.heatmaps(("av",))["av"]
    # by hand: the audio window around t=1.2 s, the model, align_corners=True upsampling, min-max
    audio = vggish_examples(wave[int(0.7 * SR) : int(1.7 * SR)])
    with torch.no_grad():
        coarse = localizer.ssl_map(*localizer(test_transform(64)(frame)[None], audio[None]))
    up = F.interpolate(coarse[None], size=(48, 80), mode="bilinear", align_corners=True)[0, 0]
    np.testing.assert_allclose(heat, ((up - up.min()) / (up.max() - up.min())).numpy(), atol=1e-6)
    found = predictor.predict("av", "prob", seed=3)
    expected = sample("prob", heat, generator=prompt_generator(3, "k", "av", "prob"))
    np.testing.assert_array_equal(found.points, expected.points)
    assert found.mask.shape == (48, 80) and found.mask.dtype == bool and found.rounds == 1
    # the batched form gives the same answer
    batched = predictor.prepare(
        [ClipInput(frame, wave, 1.2, "k"), ClipInput(frame[::-1].copy(), wave, 0.3, "j")], maps=("av",)
    )
    again = predictor.predict("av", "prob", seed=3, clip=batched[0])
    np.testing.assert_array_equal(again.points, found.points)
    np.testing.assert_array_equal(again.mask, found.mask)


def test_sam_embedding_is_computed_once_per_clip(localizer, clip):
    frame, wave = clip
    segmenter = SamSegmenter(build_tiny_sam())
    predictor = Predictor(localizer, segmenter)
    predictor.set_clip(frame, wave, key="k")
    for sampler in ("naive", "grid", "prob"):
        assert predictor.predict("av", sampler).mask.shape == (48, 80)
    assert segmenter.encoder_calls == 1


def test_cascade_reports_the_prompts_of_the_returned_mask_and_keeps_negatives(localizer, clip):
    frame, wave = clip
    predictor = Predictor(localizer, SamSegmenter(build_tiny_sam()))
    predictor.set_clip(frame, wave, key="k")
    found = predictor.predict("av", "prob", seed=0, cascade_rounds=3, cascade_threshold=1.5, negatives=2)
    assert found.rounds == 3  # never agrees at 1.5: every round runs
    assert list(found.labels) == [1, 1, 1, 0, 0]
    # re-segmenting the reported prompts gives exactly the reported mask
    direct = predictor.segmenter.segment_many(
        predictor.clip.embedding, [found.prompts], heatmap=predictor.heatmap_tensor("av")
    )[0]
    np.testing.assert_array_equal(direct.mask, found.mask)


def test_localize_and_eval_agree_on_the_same_clip(synthetic_world, tmp_path):
    """Same checkpoint, map, sampler `prob` and seed: identical points and mask through both commands."""
    clip = next(c for c in synthetic_world.clips if c.split == "test")
    frame = media.read_frames(clip.video, [0.0])[0]
    wave = media.read_audio(clip.video)
    mask = np.zeros(frame.shape[:2], dtype=bool)
    mask[10:30, 10:30] = True
    data = tmp_path / "one.h5"
    with StoreWriter(data, {"layout": "folder"}) as writer:
        writer.write(
            ClipRecord(
                clip_id=clip.video.stem,
                frames=frame[None],
                frame_times=[0.0],
                waveform=wave,
                vggish=vggish_examples(wave).numpy(),
                spectrogram=ezvsl_spectrogram(wave).numpy(),
                masks=mask[None],
                mask_frames=[0],
                meta={"split": "test", "duration": len(wave) / SR},
            )
        )
    config = config_from_preset("gsavl", image_size=64, audio_seconds=2.0)
    torch.manual_seed(0)
    ckpt = tmp_path / "m.pt"
    save_checkpoint(ckpt, build_localizer(config, pretrained=False, identity_image_init=True), config)
    common = ["--checkpoint", str(ckpt), "--map", "av", "--sampler", "prob", "--segmenter", "region"]
    result = runner.invoke(
        app,
        [
            "-q",
            "--seed",
            "7",
            "localize",
            str(clip.video),
            *common,
            "-o",
            str(tmp_path / "m.png"),
            "--json-file",
            str(tmp_path / "l.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app, ["-q", "--seed", "7", "eval", "--dataset", str(data), *common, "--out", str(tmp_path / "e")]
    )
    assert result.exit_code == 0, result.output
    local = json.loads((tmp_path / "l.json").read_text())
    row = next(r for r in csv.DictReader((tmp_path / "e" / "per_sample.csv").open()) if r["sampler"] == "prob")
    assert json.loads(row["points"]) == local["points"] and json.loads(row["labels"]) == local["labels"]
    localized = media.read_image(tmp_path / "m.png", mode="GRAY") > 0
    assert int(row["mask_area"]) == local["mask_area"] == int(localized.sum())
    predictor = Predictor.from_checkpoint(ckpt, segmenter="region")
    predictor.set_clip(frame, wave, key=clip.video.stem)
    np.testing.assert_array_equal(predictor.predict("av", "prob", seed=7).mask, localized)


def _soft_iou(heat: np.ndarray, mask: np.ndarray) -> float:
    return float(np.minimum(heat, mask).sum() / np.maximum(heat, mask).sum())


def test_cascade_stop_rule_and_resampling_away_from_rejected_masks(localizer, clip, monkeypatch):
    import gsavl_cli.predictor as P

    frame, wave = clip
    heat = np.random.default_rng(2).random((48, 80)).astype(np.float32) ** 3
    predictor = Predictor(localizer, SamSegmenter(build_tiny_sam(seed=1)))
    predictor.set_clip(frame, wave, key="k")
    once = predictor.predict("av", "prob", heatmap=heat, cascade_rounds=4, cascade_threshold=0.0)
    plain = predictor.predict("av", "prob", heatmap=heat)
    assert once.rounds == 1 and np.array_equal(once.mask, plain.mask)  # round one is plain prompting
    assert once.agreement == pytest.approx(_soft_iou(heat, once.mask), abs=1e-5)
    maps, masks = [], []
    real_sample, real_segment = P.samplers.sample, predictor.segmenter.segment_many

    def recording_sample(name, current, **kwargs):
        maps.append(current.clone())
        return real_sample(name, current, **kwargs)

    def recording_segment(*args, **kwargs):
        results = real_segment(*args, **kwargs)
        masks.append(results[0].mask.copy())
        return results

    monkeypatch.setattr(P.samplers, "sample", recording_sample)
    monkeypatch.setattr(predictor.segmenter, "segment_many", recording_segment)
    result = predictor.predict("av", "naive", heatmap=heat, cascade_rounds=3, cascade_threshold=1.5)
    assert len(maps) == result.rounds == 3
    expected = heat.copy()
    for previous, current in zip(masks, maps[1:]):
        expected = expected * ~previous
        expected = expected / expected.max()
        np.testing.assert_allclose(current.numpy(), expected, atol=1e-6)
    best = max(range(3), key=lambda i: _soft_iou(heat, masks[i]))
    assert np.array_equal(result.mask, masks[best])
    assert result.agreement == pytest.approx(_soft_iou(heat, masks[best]), abs=1e-5)
