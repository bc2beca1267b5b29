"""Negative-audio evaluation (AVSBench-Robust, Li et al., arXiv 2502.00358): the conditions' waveforms, FPR and
abstention failure, and `gsavl eval --audio all`, the robustness table from one command."""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from gsavl_cli import metrics
from gsavl_cli.choices import AudioMode
from gsavl_cli.cli import app
from gsavl_cli.commands.evaluate import (
    EvalSettings,
    _samples,
    audio_partners,
    condition_partners,
    heard_waveform,
    summarise_rows,
)
from gsavl_cli.data.negative_audio import (
    DEFAULT_NOISE_DBFS,
    FULL_SCALE_NOISE_DBFS,
    offscreen_partners,
    white_noise_like,
)
from gsavl_cli.errors import UsageError
from gsavl_cli.io.store import open_store
from gsavl_cli.model import build_localizer, config_from_preset, save_checkpoint
from gsavl_cli.segment.tiny import build_tiny_sam

runner = CliRunner()
CONDITIONS = ["normal", "shuffled", "silent", "noise", "offscreen"]


def gsavl(*args, code: int = 0):
    result = runner.invoke(app, ["-q", *map(str, args)])
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    return result


def dbfs(x: np.ndarray) -> float:
    return 20 * math.log10(float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))))


# -- the metrics, by hand -------------------------------------------------------------------


def test_false_positive_rate_is_the_share_of_foreground_pixels():
    mask = np.zeros((4, 5), dtype=bool)
    mask[0, :3] = True  # 3 of 20 pixels
    assert metrics.false_positive_rate(mask) == pytest.approx(0.15)
    assert metrics.false_positive_rate(mask.astype(np.uint8) * 255) == pytest.approx(0.15)  # 0/255 masks binarise
    assert metrics.false_positive_rate(torch.full((2, 2), 0.7)) == 1.0  # probabilities > 0.5 are foreground
    assert metrics.false_positive_rate(np.zeros((3, 3))) == 0.0
    assert metrics.any_foreground(mask) and not metrics.any_foreground(np.zeros((3, 3), dtype=bool))
    one = np.zeros((8, 8), dtype=bool)
    one[5, 5] = True
    assert metrics.any_foreground(one) and metrics.false_positive_rate(one) == pytest.approx(1 / 64)


def test_negative_audio_summary_averages_frames_and_counts_masks():
    rows = [
        {"fpr": 0.1, "any_mask": 1},
        {"fpr": 0.0, "any_mask": 0},
        {"fpr": 0.5, "any_mask": 1},
        {"fpr": None, "any_mask": None},  # a heatmap row: not a mask
    ]
    assert metrics.negative_audio_summary(rows) == {
        "fpr": pytest.approx(0.2),
        "abstention_failure": pytest.approx(2 / 3),
    }
    assert metrics.negative_audio_summary([]) == {"fpr": None, "abstention_failure": None}


def test_summaries_score_fpr_under_negative_audio_only():
    rows = [
        {"audio": audio, "sampler": sampler, "fpr": fpr, "any_mask": masked, "iou": 0.5}
        for audio, sampler, fpr, masked in [
            ("normal", "naive", None, 1),
            ("silent", "naive", 0.25, 1),
            ("silent", "naive", 0.0, 0),
            ("silent", None, None, None),
            ("shuffled", "naive", None, 1),
        ]
    ]
    rows = [{**r, "clip": f"c{k}", "frame": 0, "map": "av", "segmenter": "region"} for k, r in enumerate(rows)]
    entries = {(e["audio"], e["sampler"]): e for e in summarise_rows(rows)}
    assert list(entries) == [("normal", "naive"), ("silent", "naive"), ("silent", None), ("shuffled", "naive")]
    assert entries[("silent", "naive")]["n"] == 2
    assert entries[("silent", "naive")]["fpr"] == pytest.approx(0.125)
    assert entries[("silent", "naive")]["abstention_failure"] == pytest.approx(0.5)
    for key in (("normal", "naive"), ("shuffled", "naive"), ("silent", None)):  # a control, or not a mask
        assert entries[key]["fpr"] is None and entries[key]["abstention_failure"] is None, key


# -- the conditions' waveforms --------------------------------------------------------------


def _settings(**kw) -> EvalSettings:
    return EvalSettings(data=Path("unused.h5"), checkpoint=None, **kw)


def test_silence_is_zeros_and_noise_is_at_its_level_seeded_per_clip():
    wave = np.random.default_rng(0).uniform(-0.3, 0.3, 16000).astype(np.float32)
    silent = heard_waveform(None, "a", wave, AudioMode.silent, _settings(), {})
    assert silent.shape == wave.shape and not silent.any()
    for level in (-20.0, -40.0):
        noise = heard_waveform(None, "a", wave, AudioMode.noise, _settings(noise_dbfs=level, seed=3), {})
        assert noise.shape == wave.shape and noise.dtype == np.float32
        assert dbfs(noise) == pytest.approx(level, abs=0.2)
        np.testing.assert_array_equal(noise, white_noise_like(wave, level, 3, "a"))  # the same clip, the same noise
        assert not np.allclose(noise, white_noise_like(wave, level, 3, "b"))  # another clip, other noise
        assert not np.allclose(noise, white_noise_like(wave, level, 4, "a"))  # another seed, other noise
    loudest = white_noise_like(wave, DEFAULT_NOISE_DBFS, 0, "a")  # AVSBench-Robust's: uniform over [-1, 1]
    assert pytest.approx(FULL_SCALE_NOISE_DBFS, abs=0.01) == DEFAULT_NOISE_DBFS
    assert np.abs(loudest).max() <= 1.0 and np.abs(loudest).max() > 0.999
    assert dbfs(loudest) == pytest.approx(-4.77, abs=0.1)
    spectrum = np.abs(np.fft.rfft(loudest)) ** 2  # white: as much power in the low half of the band as the high
    low, high = spectrum[1 : len(spectrum) // 2].sum(), spectrum[len(spectrum) // 2 :].sum()
    assert low / high == pytest.approx(1.0, abs=0.1)


def test_offscreen_partners_are_of_another_category_and_seeded():
    categories = {f"clip{i:02d}": ("dog", "cat", "car")[i % 3] for i in range(30)}
    partners = offscreen_partners(categories, seed=42)
    assert set(partners) == set(categories)
    assert all(categories[p] != categories[c] for c, p in partners.items())
    assert offscreen_partners(dict(reversed(list(categories.items()))), seed=42) == partners  # order-free
    assert offscreen_partners(categories, seed=7) != partners
    fewer = {k: v for k, v in categories.items() if k != "clip29"}
    kept = offscreen_partners(fewer, seed=42)  # per clip: dropping a clip moves only clips that drew beside it
    assert sum(kept[c] == partners[c] for c in fewer) >= len(fewer) // 2
    heard = {p for p in partners.values()}
    assert len(heard) >= 10  # drawn, not a fixed rotation onto a few clips


@pytest.mark.parametrize(
    ("categories", "message"),
    [
        ({"a": None, "b": None}, "needs each clip's category; 2 of 2 clips have none"),
        ({"a": "dog", "b": None}, "1 of 2 clips have none"),
        ({"a": "dog", "b": "dog", "c": "dog"}, "at least 2 categories; all 3 are 'dog'"),
    ],
)
def test_offscreen_without_two_categories_is_a_usage_error(categories, message):
    with pytest.raises(UsageError, match=re.escape(message)) as caught:
        offscreen_partners(categories, seed=0)
    assert "avsbench-s4" in caught.value.hint


def test_each_condition_builds_its_waveform_from_the_store(s4_store):
    settings = _settings(audio=AudioMode.all, seed=9, noise_dbfs=-30.0)
    with open_store(s4_store) as store:
        ids = store.split_ids("test")
        partners = condition_partners(store, ids, settings)
        assert partners[AudioMode.shuffled] == audio_partners(ids, 9)
        clip = ids[0]
        samples = _samples(store, clip, settings, partners)
        assert [s.audio.value for s in samples] == CONDITIONS  # frames=first: one sample per condition
        own = store.read(clip, ("waveform",))["waveform"]
        heard = {s.audio.value: s.input.waveform for s in samples}
        assert all(np.array_equal(s.input.frame, samples[0].input.frame) for s in samples)  # the same frame
        np.testing.assert_array_equal(heard["normal"], own)
        assert not heard["silent"].any() and len(heard["silent"]) == len(own)
        assert dbfs(heard["noise"]) == pytest.approx(-30.0, abs=0.2)
        for condition in ("shuffled", "offscreen"):
            partner = partners[AudioMode(condition)][clip]
            assert partner != clip
            np.testing.assert_array_equal(heard[condition], store.read(partner, ("waveform",))["waveform"])
        off = partners[AudioMode.offscreen]
        assert all(store.meta(p)["category"] != store.meta(c)["category"] for c, p in off.items())
        again = _samples(store, clip, settings, condition_partners(store, ids, settings))
        np.testing.assert_array_equal(again[3].input.waveform, heard["noise"])  # deterministic per seed


# -- gsavl eval --audio all, end to end -----------------------------------------------------


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """A small random localizer (it listens: its maps change with the audio)."""
    path = tmp_path_factory.mktemp("robust") / "m.pt"
    config = config_from_preset("ezvsl", image_size=64)
    torch.manual_seed(0)
    save_checkpoint(path, build_localizer(config, pretrained=False), config)
    return path


def _eval(store: Path, ckpt: Path, out: Path, audio: str, *extra) -> dict:
    args = ["eval", "--dataset", store, "--checkpoint", ckpt, "--out", out, "--segmenter", "region"]
    args += ["--map", "av", "--sampler", "naive", "--audio", audio, "--json", *extra]
    return json.loads(gsavl(*args).stdout)


def test_eval_audio_all_writes_one_row_per_condition(s4_store, model_file, tmp_path):
    out = tmp_path / "all"
    summary = _eval(s4_store, model_file, out, "all", "--report", "--save-heatmaps", tmp_path / "heat.h5")
    assert json.loads((out / "metrics.json").read_text()) == summary
    robust = summary["robustness"]
    assert list(robust) == CONDITIONS
    rows = list(csv.DictReader((out / "per_sample.csv").open()))
    masks = [r for r in rows if r["sampler"] == "naive"]
    assert [r["audio"] for r in masks] == [c for _ in range(4) for c in CONDITIONS]  # 4 clips x 5 conditions
    for condition, record in robust.items():
        assert record["audio"] == condition and record["sampler"] == "naive" and record["n"] == 4
        mine = [r for r in masks if r["audio"] == condition]
        assert record["miou"] == pytest.approx(np.mean([float(r["iou"]) for r in mine]), abs=1e-12)
        if AudioMode(condition).negative:
            assert record["fpr"] == pytest.approx(np.mean([float(r["fpr"]) for r in mine]), abs=1e-12)
            assert record["abstention_failure"] == pytest.approx(np.mean([int(r["any_mask"]) for r in mine]))
            for r in mine:  # the per-frame FPR is the mask's share of the frame
                with open_store(s4_store) as store:
                    h, w = store.read(r["clip"], ("first_frame",))["first_frame"].shape[:2]
                assert float(r["fpr"]) == pytest.approx(int(r["mask_area"]) / (h * w))
        else:
            assert record["fpr"] is None and record["abstention_failure"] is None
            assert all(r["fpr"] == "" for r in mine)
    # the report: one summary row per condition, its values metrics.json's; one thumbnail row per clip x condition
    page = (out / "report.html").read_text()
    header = re.search(r'<table id="summary">(.*?)</table>', page, re.S).group(1).split("</thead>")[1]
    shown = [
        dict(re.findall(r'<td data-key="(\w+)" data-v="([^"]*)">', tr)) for tr in re.findall(r"<tr>(.*?)</tr>", header)
    ]
    assert [row["audio"] for row in shown] == CONDITIONS
    for row in shown:
        for key in ("miou", "fpr", "abstention_failure"):
            value = robust[row["audio"]][key]
            assert row[key] == ("" if value is None else repr(value)), (row["audio"], key)
    clips_table = page.split('<table id="t">')[1]
    assert clips_table.count("<tr><td>") == 4 * 5
    # the heatmaps each condition scored: the noise one is the model's map of that clip's seeded noise
    from gsavl_cli import Predictor
    from gsavl_cli.io.store import hdf5_name

    predictor = Predictor.from_checkpoint(model_file, segmenter="region", interpolation="bilinear")  # the store's
    with h5py.File(tmp_path / "heat.h5", "r") as f, open_store(s4_store) as store:
        clip = store.split_ids("test")[1]
        item = store.read(clip, ("first_frame", "waveform"))
        group = f[hdf5_name(clip)]
        assert sorted(group) == sorted(CONDITIONS)
        noise = white_noise_like(item["waveform"], DEFAULT_NOISE_DBFS, 123, clip)
        predictor.set_clip(item["first_frame"], noise, key=clip)
        np.testing.assert_allclose(group["noise"]["av"][()], predictor.heatmaps(("av",))["av"], atol=1e-5)
        assert not np.allclose(group["noise"]["av"][()], group["normal"]["av"][()], atol=1e-3)


def test_each_row_of_all_equals_its_single_condition_run(s4_store, model_file, tmp_path):
    """The conditions run together score exactly as each alone, whose output keeps its format (`results`)."""
    together = _eval(s4_store, model_file, tmp_path / "all", "all")
    for condition in ("silent", "offscreen"):
        alone = _eval(s4_store, model_file, tmp_path / condition, condition)
        assert list(alone["robustness"]) == [condition]
        mask = next(r for r in alone["results"] if r["sampler"] == "naive")
        assert mask == together["robustness"][condition]
        heat = next(r for r in alone["results"] if r["sampler"] is None)
        assert heat["audio"] == condition and heat["fpr"] is None  # a heatmap is not a mask
        assert {r["audio"] for r in alone["results"]} == {condition}


def test_audio_all_encodes_each_frame_once(s4_store, model_file, tmp_path):
    """SAM's image encoder runs once per frame for the five conditions, and a cache still serves a second run."""
    sam = tmp_path / "tiny_sam.pth"
    torch.save(build_tiny_sam().state_dict(), sam)
    args = ["--segmenter", "sam", "--sam-model", "tiny", "--sam-checkpoint", sam]
    base = ["eval", "--dataset", s4_store, "--checkpoint", model_file, "--map", "av", "--sampler", "naive,grid"]
    first = json.loads(gsavl(*base, *args, "--out", tmp_path / "a", "--audio", "all", "--json").stdout)
    assert first["timings"]["image_encoder_calls"] == 4  # 4 frames, not 4 x 5
    assert list(first["robustness"]) == CONDITIONS and first["robustness"]["noise"]["sampler"] == "grid"
    cache = ["--embedding-cache", tmp_path / "emb.h5"]
    gsavl(*base, *args, *cache, "--out", tmp_path / "b", "--audio", "silent")
    cached = json.loads(gsavl(*base, *args, *cache, "--out", tmp_path / "c", "--audio", "all", "--json").stdout)
    assert cached["timings"]["image_encoder_calls"] == 0
    assert cached["robustness"]["silent"]["miou"] == pytest.approx(first["robustness"]["silent"]["miou"], abs=1e-3)


def _store_with_categories(source: Path, target: Path, category) -> Path:
    shutil.copy(source, target)
    with h5py.File(target, "r+") as f:
        for name in f["clips"]:
            meta = json.loads(f["clips"][name].attrs["meta"])
            meta["category"] = category
            f["clips"][name].attrs["meta"] = json.dumps(meta)
    return target


@pytest.mark.parametrize(("category", "words"), [(None, "4 of 4 clips have none"), ("dog", "all 4 are 'dog'")])
@pytest.mark.parametrize("audio", ["offscreen", "all"])
def test_offscreen_on_a_store_without_two_categories_is_one_line(
    s4_store, model_file, tmp_path, category, words, audio
):
    store = _store_with_categories(s4_store, tmp_path / "flat.h5", category)
    args = ["eval", "--dataset", store, "--checkpoint", model_file, "--segmenter", "region", "--map", "av"]
    result = runner.invoke(app, [*map(str, args), "--audio", audio, "--out", str(tmp_path / "e")])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and words in errors[0] and "Traceback" not in result.output, result.output
    assert not (tmp_path / "e" / "metrics.json").exists()


def test_noise_louder_than_full_scale_is_refused(s4_store, model_file, tmp_path):
    args = ["eval", "--dataset", s4_store, "--checkpoint", model_file, "--audio", "noise", "--noise-dbfs", "0"]
    result = runner.invoke(app, [*map(str, args), "--out", str(tmp_path / "e")])
    assert result.exit_code == 2 and "noise-dbfs" in result.output


def test_audio_all_scores_what_an_abstaining_predictor_answers(s4_store, model_file, tmp_path):
    """With `--abstain` and a threshold no frame reaches, every frame abstains: no false positive, no failure."""
    from gsavl_cli.abstention import Calibration, store_calibration

    ckpt = tmp_path / "abstaining.pt"
    shutil.copy(model_file, ckpt)
    store_calibration(ckpt, Calibration(float("inf"), 1.0, 2, 6, 0.0, 0.0, ("silence",), "d", "val", 42))
    answering = _eval(s4_store, ckpt, tmp_path / "answers", "all")
    abstaining = _eval(s4_store, ckpt, tmp_path / "abstains", "all", "--abstain")
    rows = [r for r in csv.DictReader((tmp_path / "abstains" / "per_sample.csv").open()) if r["sampler"]]
    assert len(rows) == 4 * 5 and all(r["any_mask"] == "0" and r["mask_area"] == "0" for r in rows)
    for condition in ("silent", "noise", "offscreen"):
        assert answering["robustness"][condition]["abstention_failure"] == 1.0  # the region segmenter always answers
        assert abstaining["robustness"][condition]["fpr"] == 0.0
        assert abstaining["robustness"][condition]["abstention_failure"] == 0.0
    assert abstaining["robustness"]["normal"]["miou"] == 0.0  # an empty mask on a sounding object
