"""SSL2AVS: deformable attention against a hand-written reference, shapes, checkpoints, training."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from gsavl_cli.commands.preprocess import make_settings
from gsavl_cli.commands.train import TrainConfig, train
from gsavl_cli.errors import UsageError
from gsavl_cli.io.store import ClipRecord, StoreWriter
from gsavl_cli.model import config_from_preset, load_checkpoint, save_checkpoint
from gsavl_cli.model.ssl2avs import SSL2AVSConfig, build_ssl2avs
from gsavl_cli.model.ssl2avs.deform_attn import MSDeformAttn, ms_deform_attn
from gsavl_cli.model.ssl2avs.losses import dice_loss

# The smallest useful model: every part present, seconds to train on a CPU.
MICRO = dict(image_size=64, embed_dim=32, num_queries=8, encoder_layers=1, decoder_layers=1, ffn_dim=64, num_heads=4)


def micro(**overrides) -> SSL2AVSConfig:
    return config_from_preset("ssl2avs-tiny", **{**MICRO, **overrides})


# ------------------------------------------------------------------ deformable attention


def _bilinear(plane: torch.Tensor, x: float, y: float) -> torch.Tensor:
    """plane [h,w,D] sampled at continuous pixel coordinates (x, y), pixel centres at integers, zeros outside."""
    h, w, _ = plane.shape
    x0, y0 = math.floor(x), math.floor(y)
    out = torch.zeros(plane.shape[-1], dtype=plane.dtype)
    for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
        for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
            if 0 <= yy < h and 0 <= xx < w:
                out += wy * wx * plane[yy, xx]
    return out


def _reference(value, shapes, locations, weights) -> torch.Tensor:
    """Deformable attention with explicit loops: location (u, v) in [0,1] is pixel (u*w - 0.5, v*h - 0.5)."""
    batch, _, heads, depth = value.shape
    _, queries, _, _levels, points, _ = locations.shape
    starts = np.cumsum([0] + [h * w for h, w in shapes])
    out = torch.zeros(batch, queries, heads, depth, dtype=value.dtype)
    for b in range(batch):
        for q in range(queries):
            for m in range(heads):
                for lv, (h, w) in enumerate(shapes):
                    plane = value[b, starts[lv] : starts[lv + 1], m].reshape(h, w, depth)
                    for p in range(points):
                        u, v = locations[b, q, m, lv, p].tolist()
                        out[b, q, m] += weights[b, q, m, lv, p] * _bilinear(plane, u * w - 0.5, v * h - 0.5)
    return out.reshape(batch, queries, heads * depth)


def test_deformable_attention_equals_slow_reference():
    gen = torch.Generator().manual_seed(0)
    shapes = [(3, 4), (2, 2), (1, 3)]
    batch, heads, depth, queries, points = 2, 2, 3, 4, 3
    value = torch.randn(batch, sum(h * w for h, w in shapes), heads, depth, generator=gen, dtype=torch.float64)
    # some points fall outside the maps: those must read zeros
    locations = (
        torch.rand(batch, queries, heads, len(shapes), points, 2, generator=gen, dtype=torch.float64) * 1.4 - 0.2
    )
    weights = torch.rand(batch, queries, heads, len(shapes), points, generator=gen, dtype=torch.float64)
    weights = weights / weights.sum((-2, -1), keepdim=True)
    got = ms_deform_attn(value, shapes, locations, weights)
    torch.testing.assert_close(got, _reference(value, shapes, locations, weights), rtol=1e-10, atol=1e-10)


def test_deformable_attention_module_reads_the_reference_cell_when_offsets_are_zero():
    torch.manual_seed(0)
    attn = MSDeformAttn(dim=8, levels=1, heads=2, points=2)
    torch.nn.init.zeros_(attn.offsets.bias)  # no learned offsets: every point sits on the reference
    torch.nn.init.eye_(attn.value_proj.weight), torch.nn.init.zeros_(attn.value_proj.bias)
    torch.nn.init.eye_(attn.output_proj.weight), torch.nn.init.zeros_(attn.output_proj.bias)
    shapes = [(3, 5)]
    value = torch.randn(1, 15, 8)
    cell = 7  # row 1, column 2: centre ((2 + 0.5) / 5, (1 + 0.5) / 3)
    reference = torch.tensor([[[2.5 / 5, 1.5 / 3]]])
    out = attn(torch.randn(1, 1, 8), reference, value, shapes)
    torch.testing.assert_close(out[0, 0], value[0, cell])


# ------------------------------------------------------------------ model


def test_forward_and_predict_shapes():
    torch.manual_seed(0)
    model = build_ssl2avs(micro(), pretrained=False)
    images, audio = torch.randn(3, 3, 64, 64), torch.randn(3, 96, 64)
    out = model(images, audio)
    assert out["mask_logits"].shape == (3, 1, 64, 64)
    assert len(out["intermediate"]) == 1 and out["intermediate"][0].shape == (3, 1, 64, 64)
    heat = out["localization"]["heatmap"]
    assert heat.shape == (3, 2, 2) and heat.min() >= 0 and heat.max() <= 1
    pred = model.predict(images, audio[:, None].expand(3, 2, 96, 64))  # [B,T,96,64]: embeddings averaged over T
    assert pred["mask_logits"].shape == (3, 64, 64) and pred["heatmap"].shape == (3, 2, 2)
    assert model.training  # predict restores the mode


@pytest.mark.parametrize("name, backbone_channels", [("ssl2avs-r50", 2048), ("ssl2avs-pvt", 512)])
def test_presets_build_the_papers_backbones(name, backbone_channels):
    config = config_from_preset(name)
    assert (config.embed_dim, config.num_queries, config.encoder_layers, config.decoder_layers, config.ffn_dim) == (
        256,
        300,
        6,
        6,
        2048,
    )
    assert (config.lambda_contrastive, config.lambda_localization, config.lambda_intermediate, config.tau) == (
        0.01,
        0.1,
        0.1,
        0.03,
    )
    with torch.device("meta"):  # no memory, no weights: the structure only
        model = build_ssl2avs(config, pretrained=False)
    assert model.localization.visual_proj.in_channels == backbone_channels


def test_frozen_audio_trunk_gets_no_gradient_and_stays_in_eval_mode():
    model = build_ssl2avs(micro(freeze_audio=True), pretrained=False).train()
    assert not model.audio.trunk.training
    assert not any(p.requires_grad for p in model.audio.trunk.parameters())
    assert all(p.requires_grad for p in model.audio.proj.parameters())


def test_config_round_trip_and_bad_settings():
    config = micro(fusion="a2v", activation="sigmoid")
    assert SSL2AVSConfig.from_dict(config.to_dict()) == config
    with pytest.raises(UsageError, match="unknown SSL2AVS settings"):
        SSL2AVSConfig.from_dict({**config.to_dict(), "colour": "red"})
    with pytest.raises(UsageError, match="unknown fusion"):
        micro(fusion="sideways")
    with pytest.raises(UsageError, match="remove_maxpool"):
        config_from_preset("ssl2avs-pvt", remove_maxpool=True)


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    config = micro(activation="act")
    model = build_ssl2avs(config, pretrained=False).eval()
    save_checkpoint(tmp_path / "m.pt", model, config, extra={"epoch": 3})
    loaded = load_checkpoint(tmp_path / "m.pt")
    assert loaded.family == "ssl2avs" and loaded.config == config and loaded.extra["epoch"] == 3
    images, audio = torch.randn(2, 3, 64, 64), torch.randn(2, 96, 64)
    a, b = model.predict(images, audio), loaded.model.eval().predict(images, audio)
    torch.testing.assert_close(a["mask_logits"], b["mask_logits"], rtol=0, atol=0)
    torch.testing.assert_close(a["heatmap"], b["heatmap"], rtol=0, atol=0)


def test_dice_loss_matches_hand_computation():
    logits = torch.tensor([[[[0.0, 2.0], [-1.0, 1.0]]]])
    target = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])
    p = torch.sigmoid(logits).flatten()
    expected = 1 - 2 * (p * target.flatten()).sum() / ((p * p).sum() + 0.001 + 2 + 0.001)
    torch.testing.assert_close(dice_loss(logits, target), expected)


# ------------------------------------------------------------------ training


@pytest.fixture(scope="module")
def s4_h5(s4_store) -> Path:
    return s4_store


def _cfg(data: Path, out: Path, **kw) -> TrainConfig:
    base = dict(
        data=data,
        out=out,
        model=micro(),
        epochs=2,
        batch_size=4,
        workers=0,
        pretrained=False,
        seed=3,
        frames="annotated",
    )
    return TrainConfig(**{**base, **kw})


def test_augmentation_flips_and_crops_frames_and_masks_together(s4_h5):
    """Pinned: the flip and crop of `augment` as first written (slicing + bilinear interpolate, masks rounded)."""
    from gsavl_cli.data.clips import SegmentationClips
    from gsavl_cli.io.store import open_store

    ids = list(open_store(s4_h5))[:3]
    plain, augmented = SegmentationClips(s4_h5, ids, 32), SegmentationClips(s4_h5, ids, 32, augment=True)

    def reference(images, masks, size=32):
        if torch.rand(()) < 0.5:
            images, masks = images.flip(-1), masks.flip(-1)
        side = int(size * (0.7 + 0.3 * float(torch.rand(()))))
        top, left = (int(torch.randint(0, size - side + 1, ())) for _ in range(2))
        crop = (slice(None), slice(None), slice(top, top + side), slice(left, left + side))
        resize = dict(size=(size, size), mode="bilinear", align_corners=False)
        images = torch.nn.functional.interpolate(images[crop], **resize)
        return images, torch.nn.functional.interpolate(masks[:, None][crop], **resize)[:, 0].round()

    flipped = set()
    for seed in range(8):
        torch.manual_seed(seed)
        got = augmented[seed % len(ids)]
        torch.manual_seed(seed)
        flipped.add(bool(torch.rand(()) < 0.5))
        torch.manual_seed(seed)
        base = plain[seed % len(ids)]
        images, masks = reference(base["images"], base["masks"])
        assert torch.equal(got["images"], images) and torch.equal(got["masks"], masks)
    assert flipped == {True, False}


def test_training_refuses_a_store_without_masks(tmp_path):
    rng = np.random.default_rng(0)
    with StoreWriter(tmp_path / "nomask.h5", make_settings("folder")) as writer:
        for i in range(2):
            writer.write(
                ClipRecord(
                    f"c{i}",
                    rng.integers(0, 255, (1, 32, 32, 3), dtype=np.uint8),
                    [0.0],
                    np.zeros(16000, np.float32),
                    vggish=np.zeros((1, 96, 64), np.float32),
                    meta={"split": "train"},
                )
            )
    with pytest.raises(UsageError, match="no ground-truth masks") as info:
        train(_cfg(tmp_path / "nomask.h5", tmp_path / "run"))
    assert "\n" not in str(info.value)


def test_short_training_lowers_the_loss_and_writes_checkpoints(s4_h5, tmp_path):
    out = tmp_path / "run"
    best = train(_cfg(s4_h5, out, epochs=4, lr=2e-3))
    logs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [log["epoch"] for log in logs] == [1, 2, 3, 4]
    assert logs[-1]["loss"] < logs[0]["loss"]
    assert all(0 <= log["val"]["miou"] <= 1 and log["val"]["frames"] == 10 for log in logs)  # the 2 val clips x 5 masks
    assert (out / "last.pt").exists() and best == out / "best.pt" and best.exists()
    loaded = load_checkpoint(best)
    assert loaded.family == "ssl2avs" and loaded.extra["val"]["miou"] == max(log["val"]["miou"] for log in logs)
    config = json.loads((out / "config.json").read_text())
    assert config["lr"] == 2e-3 and config["model"]["backbone"] == "tiny"


def test_resume_continues_exactly(s4_h5, tmp_path):
    train(_cfg(s4_h5, tmp_path / "a", max_steps=1))
    train(_cfg(s4_h5, tmp_path / "b", epochs=1, max_steps=1))
    train(_cfg(s4_h5, tmp_path / "b", resume=True, max_steps=1))
    a, b = (load_checkpoint(tmp_path / run / "last.pt").model.state_dict() for run in ("a", "b"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_cli_trains_an_ssl2avs_preset(s4_h5, tmp_path):
    from typer.testing import CliRunner

    from gsavl_cli.cli import app

    runner = CliRunner()
    args = [
        "--device",
        "cpu",
        "train",
        "--dataset",
        str(s4_h5),
        "--model",
        "ssl2avs-tiny",
        "--no-pretrained",
        "--image-size",
        "64",
        "--epochs",
        "1",
        "--max-steps",
        "1",
        "--workers",
        "0",
        "--frames",
        "annotated",
        "--out",
        str(tmp_path / "cli"),
        "--json",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "cli" / "config.json").read_text())
    assert config["lr"] == 2e-5 and config["batch_size"] == 4 and config["epochs"] == 1  # the ssl2avs defaults
    assert config["model"]["image_size"] == 64 and load_checkpoint(tmp_path / "cli" / "last.pt").family == "ssl2avs"
    refused = runner.invoke(
        app, ["train", "--dataset", str(s4_h5), "--model", "ssl2avs-tiny", "--similarity", "dot", "--no-pretrained"]
    )
    assert refused.exit_code == 2 and "--similarity" in refused.output and isinstance(refused.exception, SystemExit)


def test_eval_and_localize_use_the_models_own_mask_through_the_predictor(s4_h5, synthetic_world, tmp_path):
    from typer.testing import CliRunner

    from gsavl_cli import Predictor
    from gsavl_cli.cli import app
    from gsavl_cli.io import media

    best = train(_cfg(s4_h5, tmp_path / "run", epochs=1, max_steps=1))
    runner = CliRunner()
    # no --segmenter: a SSL2AVS checkpoint is scored with its own masks (offline, no SAM weights anywhere)
    result = runner.invoke(
        app,
        [
            "-q",
            "eval",
            "--dataset",
            str(s4_h5),
            "--checkpoint",
            str(best),
            "--map",
            "av",
            "--frames",
            "all",
            "--out",
            str(tmp_path / "e"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["settings"]["segmenter"] == "model"
    own = next(r for r in summary["results"] if r["sampler"] == "model")
    assert own["segmenter"] == "model" and own["n"] == 4 * 5 and 0 <= own["avsbench_miou"] <= 1
    assert [r["sampler"] for r in summary["results"]] == [None, "model"]
    clip = next(c for c in synthetic_world.clips if c.split == "test")
    result = runner.invoke(
        app,
        [
            "-q",
            "localize",
            str(clip.video),
            "--checkpoint",
            str(best),
            "--map",
            "av",
            "-o",
            str(tmp_path / "m.png"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["segmenter"] == "model"
    written = media.read_image(tmp_path / "m.png", mode="GRAY") > 0
    predictor = Predictor.from_checkpoint(best, segmenter="model")
    predictor.set_clip(media.read_frames(clip.video, [0.0])[0], media.read_audio(clip.video), key=clip.video.stem)
    np.testing.assert_array_equal(predictor.predict("av").mask, written)
    refused = runner.invoke(
        app,
        ["localize", str(clip.video), "--checkpoint", str(best), "--segmenter", "model", "--map", "av", "--every", "1"],
    )
    assert refused.exit_code == 2 and isinstance(refused.exception, SystemExit) and "nothing to write" in refused.output


def test_negative_audio_items_hear_silence_noise_or_another_category_and_target_nothing(s4_h5):
    """AVSBench-Robust's balanced training: a share of the items hear negative audio, with an empty mask."""
    from gsavl_cli.data.clips import SegmentationClips
    from gsavl_cli.data.features import vggish_examples
    from gsavl_cli.io.store import open_store

    store = open_store(s4_h5)
    ids = store.split_ids("train")
    own = {i: store.read(i, ("vggish",))["vggish"] for i in ids}
    category = {i: store.meta(i)["category"] for i in ids}
    plain = SegmentationClips(s4_h5, ids, 32, "annotated")
    mixed = SegmentationClips(s4_h5, ids, 32, "annotated", negatives=0.5)
    silence = vggish_examples(np.zeros(16000, np.float32)).numpy()
    kinds = []
    for seed in range(40):
        torch.manual_seed(seed)
        index = seed % len(ids)
        item, reference = mixed[index], plain[index]
        audio = item["audio"].numpy()
        if bool(item["heard"]):
            assert np.array_equal(audio, reference["audio"].numpy())
            assert torch.equal(item["masks"], reference["masks"]) and item["masks"].sum() > 0
            kinds.append("own")
            continue
        assert item["masks"].sum() == 0 and bool(item["labelled"].all())  # still scored: the target is empty
        donors = [j for j in ids if np.array_equal(own[j][: len(audio)], audio)]
        if donors:
            assert all(category[j] != category[ids[index]] for j in donors)
            kinds.append("offscreen")
        elif np.array_equal(audio, silence[: len(audio)]):
            kinds.append("silence")
        else:
            assert audio.std() > 0.1  # white noise's log-mel: not a constant plane
            kinds.append("noise")
    assert set(kinds) == {"own", "offscreen", "silence", "noise"}
    assert 0.3 <= kinds.count("own") / len(kinds) <= 0.7


def test_negative_audio_clips_count_in_the_mask_loss_only():
    """A negative clip's empty target is learned by the mask terms; the localization and contrastive terms skip it."""
    model = build_ssl2avs(micro(), pretrained=False).eval()
    images, audio = torch.randn(3, 3, 64, 64), torch.randn(3, 1, 96, 64)
    masks = torch.zeros(3, 1, 64, 64)
    masks[:, :, 16:48, 16:48] = 1
    labelled = torch.ones(3, 1, dtype=torch.bool)
    out = model(images, audio)
    _, everyone = model.training_loss(out, masks, labelled)
    heard = torch.tensor([True, True, False])
    target = masks.clone()
    target[2] = 0
    _, with_negative = model.training_loss(out, target, labelled, heard)
    kept = {
        "mask_logits": out["mask_logits"][:2],
        "intermediate": [m[:2] for m in out["intermediate"]],
        "localization": {n: t[:2] for n, t in out["localization"].items()},
    }
    _, two = model.training_loss(kept, masks[[0, 1]], labelled[[0, 1]])
    torch.testing.assert_close(with_negative["loss_localization"], two["loss_localization"])
    torch.testing.assert_close(with_negative["loss_contrastive"], two["loss_contrastive"])
    assert not torch.allclose(with_negative["loss_mask"], everyone["loss_mask"])  # the empty target is scored


def test_negative_audio_is_refused_for_the_localizer(s4_h5, tmp_path):
    with pytest.raises(UsageError, match="not available for the localizer"):
        train(_cfg(s4_h5, tmp_path / "run", model=config_from_preset("ezvsl", image_size=64), negative_audio=0.5))
