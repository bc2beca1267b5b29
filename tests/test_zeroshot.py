"""The zero-shot maps (`--map text`, `textobj`) on tiny random CLAP and CLIPSeg models: the label stage, the heatmap,
Predictor == localize == eval, labels that follow the audio, `--labels FILE`, and the one-line errors."""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

pytest.importorskip("transformers", reason="the zeroshot extra: pip install -e '.[zeroshot]'")

from gsavl_cli import weights
from gsavl_cli.cli import app
from gsavl_cli.data.features import ezvsl_spectrogram, vggish_examples
from gsavl_cli.errors import UsageError, WeightsError
from gsavl_cli.io import media
from gsavl_cli.io.store import ClipRecord, StoreWriter
from gsavl_cli.model.zeroshot import (
    AUDIO_TAGGERS,
    AVSBENCH_S4_LABELS,
    GROUNDERS,
    ZeroShotSettings,
    ZeroShotSource,
    read_labels,
)
from gsavl_cli.model.zeroshot_tiny import save_tiny_clap, save_tiny_clipseg
from gsavl_cli.predictor import Predictor
from gsavl_cli.segment import RegionSegmenter

runner = CliRunner()
SR = 16000


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Tiny random CLAP and CLIPSeg, saved as save_pretrained writes them (plus the hub's file names)."""
    root = tmp_path_factory.mktemp("zeroshot")
    return save_tiny_clap(root / "clap", seed=0), save_tiny_clipseg(root / "clipseg", seed=0)


@pytest.fixture(scope="module")
def source(folders: tuple[Path, Path]) -> ZeroShotSource:
    clap, clipseg = folders
    return ZeroShotSource.load(ZeroShotSettings(clap_checkpoint=clap, clipseg_checkpoint=clipseg))


def _args(folders: tuple[Path, Path]) -> list[str]:
    return ["--clap-checkpoint", str(folders[0]), "--clipseg-checkpoint", str(folders[1])]


def _sounds() -> list[np.ndarray]:
    """Two clips' audio that differ: a low tone and white noise."""
    t = np.arange(2 * SR) / SR
    return [0.5 * np.sin(2 * np.pi * 220 * t).astype(np.float32), np.random.default_rng(0).uniform(-0.5, 0.5, 2 * SR)]


def test_the_label_stage_returns_every_label_with_scores_that_sum_to_one(source: ZeroShotSource) -> None:
    heard = source.hear(_sounds())
    for labels in heard:
        assert {name for name, _ in labels} == set(AVSBENCH_S4_LABELS) and len(labels) == 23
        scores = [score for _, score in labels]
        assert sum(scores) == pytest.approx(1.0, abs=1e-5) and scores == sorted(scores, reverse=True)
    assert [s for _, s in heard[0]] != [s for _, s in heard[1]]  # different audio, different scores
    assert AUDIO_TAGGERS and GROUNDERS and len(read_labels("avsbench-s4")) == 23


def test_the_text_maps_are_float32_in_the_unit_range_at_the_frames_size(folders, tiny_clip) -> None:
    clip = tiny_clip(seconds=1.0)
    settings = ZeroShotSettings(clap_checkpoint=folders[0], clipseg_checkpoint=folders[1])
    predictor = Predictor(None, RegionSegmenter(), zeroshot=settings, pretrained_prior=False)
    predictor.set_clip(clip.frames[0], clip.waveform, key="c")
    maps = predictor.heatmaps(("text", "textobj"))
    for heat in maps.values():
        assert heat.dtype == np.float32 and heat.shape == clip.frames.shape[1:3]
        assert heat.min() == 0.0 and heat.max() == 1.0
    assert not np.array_equal(maps["text"], maps["textobj"])  # textobj mixes in the object prior
    found = predictor.predict("text", "prob", seed=0)
    assert len(found.heard) == 1 and found.heard[0] == predictor.clip.heard[0]  # the top label made the map
    assert predictor.predict("obj", "prob", seed=0).heard == ()  # other maps heard nothing
    # top-2: the two best labels' maps, mixed by their scores: another map
    two = Predictor(None, RegionSegmenter(), zeroshot=ZeroShotSettings(**{**vars(settings), "top_labels": 2}))
    two.set_clip(clip.frames[0], clip.waveform, key="c")
    assert not np.allclose(two.heatmaps(("text",))["text"], maps["text"])
    assert [label for label, _ in two.predict("text", "prob").heard] == [label for label, _ in two.clip.heard[:2]]


def _one_clip_store(path: Path, video: Path) -> tuple[np.ndarray, np.ndarray]:
    frame = media.read_frames(video, [0.0])[0]
    wave = media.read_audio(video)
    mask = np.zeros(frame.shape[:2], dtype=bool)
    mask[10:30, 10:30] = True
    with StoreWriter(path, {"layout": "folder"}) as writer:
        writer.write(
            ClipRecord(
                clip_id=video.stem,
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
    return frame, wave


def test_predictor_localize_and_eval_give_the_same_points_mask_and_labels(folders, synthetic_world, tmp_path) -> None:
    """No checkpoint at all: --map text through both commands and the Predictor, sampler prob, one seed."""
    clip = next(c for c in synthetic_world.clips if c.split == "test")
    data = tmp_path / "one.h5"
    frame, wave = _one_clip_store(data, clip.video)
    common = ["--map", "text", "--sampler", "prob", "--segmenter", "region", "--top-labels", "2", *_args(folders)]
    out = ["-o", str(tmp_path / "m.png"), "--json-file", str(tmp_path / "l.json")]
    result = runner.invoke(app, ["-q", "--seed", "7", "localize", str(clip.video), *common, *out])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app, ["-q", "--seed", "7", "eval", "--dataset", str(data), *common, "--out", str(tmp_path / "e")]
    )
    assert result.exit_code == 0, result.output
    local = json.loads((tmp_path / "l.json").read_text())
    rows = list(csv.DictReader((tmp_path / "e" / "per_sample.csv").open()))
    row = next(r for r in rows if r["sampler"] == "prob")
    assert json.loads(row["points"]) == local["points"] and json.loads(row["labels"]) == local["labels"]
    localized = media.read_image(tmp_path / "m.png", mode="GRAY") > 0
    assert int(row["mask_area"]) == local["mask_area"] == int(localized.sum())
    heard = [(h["label"], h["score"]) for h in local["heard"]]
    assert len(heard) == 2 and row["heard"] == ";".join(f"{label}:{score:.4f}" for label, score in heard)
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert all(r["heard"] == {heard[0][0]: 1} for r in metrics["results"])  # the top label, once per frame
    settings = ZeroShotSettings(clap_checkpoint=folders[0], clipseg_checkpoint=folders[1], top_labels=2)
    predictor = Predictor.from_checkpoint(None, segmenter="region", zeroshot=settings)
    predictor.set_clip(frame, wave, key=clip.video.stem)
    found = predictor.predict("text", "prob", seed=7)
    np.testing.assert_array_equal(found.mask, localized)
    assert [label for label, _ in found.heard] == [label for label, _ in heard]


def test_eval_scores_text_beside_a_trained_localizer_and_the_labels_follow_the_audio(
    folders, s4_store, tmp_path, monkeypatch
) -> None:
    """`--map text,obj,av --audio all`: under shuffled and silent audio the text map's labels change, clip by clip."""
    import torchvision

    from gsavl_cli.model import build_localizer, config_from_preset, save_checkpoint

    cache = tmp_path / "cache"
    cache.mkdir()
    torch.save(torchvision.models.resnet18().state_dict(), cache / "resnet18-f37072fd.pth")
    monkeypatch.setenv("GSAVL_CACHE", str(cache))
    config = config_from_preset("gsavl", image_size=64, dim=16)
    checkpoint = tmp_path / "random.pt"
    save_checkpoint(checkpoint, build_localizer(config, pretrained=False), config)
    args = ["-q", "eval", "--dataset", str(s4_store), "--checkpoint", str(checkpoint), "--map", "text,obj,av"]
    args += ["--sampler", "prob", "--segmenter", "region", "--audio", "all", "--top-labels", "3", *_args(folders)]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "e")])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((tmp_path / "e" / "per_sample.csv").open()))
    assert {r["map"] for r in rows} == {"text", "obj", "av"}
    assert all(bool(r["heard"]) == (r["map"] == "text") for r in rows)
    heard = {(r["clip"], r["audio"]): r["heard"] for r in rows if r["map"] == "text" and r["sampler"] == "prob"}
    clips = sorted({clip for clip, _ in heard})
    assert len(clips) >= 2
    for condition in ("shuffled", "silent", "noise"):
        assert all(heard[(c, condition)] != heard[(c, "normal")] for c in clips), condition
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    text = [r for r in metrics["results"] if r["map"] == "text"]
    assert text and all(sum(r["heard"].values()) == r["n"] for r in text)
    assert all(r["heard"] is None for r in metrics["results"] if r["map"] != "text")
    assert all(r["heard_accuracy"] is None for r in metrics["results"])  # S4's labels: not the world's categories


def test_eval_scores_how_often_the_clips_category_was_heard(folders, s4_store, tmp_path) -> None:
    from gsavl_cli.io.store import open_store
    from gsavl_cli.validation import validation_ids

    ids = validation_ids(s4_store, "test")
    with open_store(s4_store) as store:
        category = {i: store.meta(i)["category"] for i in ids}
    labels = tmp_path / "world.txt"
    labels.write_text("\n".join(sorted(set(category.values()) | {"silence"})) + "\n")
    args = ["-q", "eval", "--dataset", str(s4_store), "--map", "text", "--sampler", "prob", "--segmenter", "region"]
    result = runner.invoke(app, [*args, *_args(folders), "--labels", str(labels), "--out", str(tmp_path / "e")])
    assert result.exit_code == 0, result.output
    rows = [r for r in csv.DictReader((tmp_path / "e" / "per_sample.csv").open()) if r["sampler"] == "prob"]
    right = [r["heard"].split(":", 1)[0] == category[r["clip"]] for r in rows]
    mask_entry = next(r for r in json.loads((tmp_path / "e" / "metrics.json").read_text())["results"] if r["sampler"])
    assert mask_entry["heard_accuracy"] == pytest.approx(np.mean(right)) and len(rows) == len(ids)


def test_a_label_file_is_honoured(folders, tiny_clip, tmp_path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("# what may sound here\nengine idling\n\nbird song\nviolin  # a comment\nbird song\n")
    assert read_labels(labels) == ("engine idling", "bird song", "violin")
    clip = tiny_clip(seconds=1.0)
    args = ["-q", "localize", str(clip.path), "--map", "text", "--segmenter", "region", "--labels", str(labels)]
    result = runner.invoke(app, [*args, *_args(folders), "--top-labels", "3", "--json-file", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    heard = json.loads((tmp_path / "r.json").read_text())["heard"]
    assert {h["label"] for h in heard} == {"engine idling", "bird song", "violin"}


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("", "holds no labels"),
        ("# only comments\n\n   \n", "holds no labels"),
        ("dog\ndog\n# dog\n", "only one distinct label"),
        (None, "cannot read the label file"),
        (b"\xff\xfe\x00bad", "cannot read the label file"),
    ],
)
def test_a_bad_label_file_is_one_line_and_exit_2(content, words, tiny_clip, tmp_path) -> None:
    path = tmp_path / "labels.txt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    clip = tiny_clip(seconds=1.0)
    result = runner.invoke(app, ["localize", str(clip.path), "--map", "text", "--labels", str(path)])
    assert result.exit_code == 2, result.output
    assert words in " ".join(result.output.split()) and "Traceback" not in result.output
    with pytest.raises(UsageError, match=words):
        read_labels(path)


def test_the_resolver_finds_the_cache_and_offline_says_what_to_fetch(folders, tmp_path, monkeypatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("GSAVL_CACHE", str(cache))
    monkeypatch.setenv("GSAVL_OFFLINE", "1")
    with pytest.raises(WeightsError) as offline:
        ZeroShotSource.load(ZeroShotSettings())
    message, hint = str(offline.value), offline.value.hint
    assert "\n" not in message and "clap-htsat-unfused/config.json" in message
    assert "https://huggingface.co/laion/clap-htsat-unfused/resolve/main/config.json" in hint
    assert str(cache / "clap-htsat-unfused") in hint and "--clap-checkpoint" in hint
    for name, folder in zip(("clap-htsat-unfused", "clipseg-rd64-refined"), folders):  # the hub's files only
        (cache / name).mkdir(parents=True)
        for file in weights.ZEROSHOT_FILES.values():
            shutil.copy(folder / file, cache / name / file)
    (cache / "clipseg-rd64-refined" / "merges.txt").unlink()
    with pytest.raises(WeightsError, match="clipseg-rd64-refined/merges.txt") as missing:
        ZeroShotSource.load(ZeroShotSettings())
    assert "https://huggingface.co/CIDAS/clipseg-rd64-refined/resolve/main/merges.txt" in missing.value.hint
    shutil.copy(folders[1] / "merges.txt", cache / "clipseg-rd64-refined" / "merges.txt")
    cached = ZeroShotSource.load(ZeroShotSettings())
    explicit = ZeroShotSource.load(ZeroShotSettings(clap_checkpoint=folders[0], clipseg_checkpoint=folders[1]))
    assert cached.hear(_sounds()) == explicit.hear(_sounds())
    with pytest.raises(WeightsError, match="not found"):
        ZeroShotSource.load(ZeroShotSettings(clap_checkpoint=tmp_path / "nowhere"))


def test_without_a_checkpoint_localize_offers_the_zero_shot_map(tiny_clip, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GSAVL_HOME", str(tmp_path / "home"))  # no trained run recorded
    clip = tiny_clip(seconds=1.0)
    result = runner.invoke(app, ["localize", str(clip.path)])
    assert result.exit_code == 2 and "--map text" in " ".join(result.output.split())


def test_without_the_extra_one_line_says_how_to_install_it(tiny_clip, monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "transformers" else real(name, *a)
    )
    clip = tiny_clip(seconds=1.0)
    result = runner.invoke(app, ["localize", str(clip.path), "--map", "text", "--segmenter", "region"])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "needs the transformers package" in text and "pip install 'gsavl[zeroshot]'" in text
    assert "Traceback" not in result.output


def test_the_video_path_records_what_each_frame_heard(folders, tiny_clip, tmp_path) -> None:
    clip = tiny_clip(seconds=2.0)
    args = ["-q", "localize", str(clip.path), "--map", "text", "--segmenter", "region", "--every", "0.5"]
    result = runner.invoke(app, [*args, *_args(folders), "--timeline", str(tmp_path / "t.json")])
    assert result.exit_code == 0, result.output
    frames = json.loads((tmp_path / "t.json").read_text())["timeline"]
    assert len(frames) == 4 and all(
        len(f["heard"]) == 1 and f["heard"][0]["label"] in AVSBENCH_S4_LABELS for f in frames
    )


def test_the_built_in_label_sets_agree_with_each_other() -> None:
    """VGGSound's 309 classes are distinct, and every AVSBench S4 category (drawn from VGGSound) is one of them
    by its first name ('race_car' -> 'race car, auto racing')."""
    from gsavl_cli.model.zeroshot import prompt_text, read_labels

    vggsound = read_labels("vggsound")
    assert len(vggsound) == len(set(vggsound)) == 309
    first_names = {label.split(",")[0] for label in vggsound}
    assert {prompt_text(label) for label in read_labels("avsbench-s4")} <= first_names
