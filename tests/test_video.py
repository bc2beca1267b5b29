"""Whole videos through the Predictor: outputs, per-frame audio, temporal smoothing, mask archives.

The temporal test needs heatmaps that really follow the sound. An untrained localizer
does not localize and training one from scratch takes minutes, so the localizer here
is small and partly built by hand, then trained briefly (about a second):

- image side, set by hand: the identity-initialised ResNet trunk with its first
  BatchNorm shifted by -1 (in ImageNet-normalised units), so only saturated colours pass
  and each map cell holds the colour of its pixel; the 1x1 projection keeps the three
  colour channels. It "sees" colours and nothing else.
- audio side, trained: the VGGish trunk keeps its random weights; the projection is
  trained with the localizer's own MIL contrastive loss on synthetic scenes (a class
  sound with its object and one other object), so it learns which colour each sound
  belongs to.

Every frame of the video then has to get its own audio window for the mask to move to
the new object when the sound changes: that, the chunked streaming and the outputs are
what these tests check, not the quality of the localizer. The trunk samples the
top-left pixel of each 32x32 cell, so the maps are upsampled with align_corners=False
(cell centres) here, and a sliver at the right/bottom edge is never seen.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gsavl_cli import metrics
from gsavl_cli.commands.localize_video import (
    HeatmapSmoother,
    VideoSettings,
    ema_weight,
    frame_key,
    localize_video,
)
from gsavl_cli.data import features
from gsavl_cli.data.synthetic import (
    CLASSES,
    RenderedVideo,
    Sounding,
    class_sound,
    make_scene,
    render_clip,
    render_scene,
    render_video,
)
from gsavl_cli.errors import MediaError, UsageError
from gsavl_cli.io import media
from gsavl_cli.io.masks import mask_writer, read_masks, write_mask_pngs, write_masks
from gsavl_cli.model import build_localizer, config_from_preset, mil_contrastive_loss, save_checkpoint
from gsavl_cli.predictor import Predictor, SamplerChoice

SECONDS, EVERY, SWITCH = 10.0, 0.25, 5.0
IMAGE_SIZE = 224


def colour_localizer(classes: list[str], scenes: int = 12, steps: int = 200, seed: int = 0):
    """A localizer that sees colours (set by hand) and hears which colour sounds (trained)."""
    config = config_from_preset("gsavl", image_size=IMAGE_SIZE, audio_seconds=1.0, dim=8)
    torch.manual_seed(seed)
    model = build_localizer(config, pretrained=False, identity_image_init=True).eval()
    rng = np.random.default_rng(seed)
    frames, sounds = [], []
    for i in range(scenes):
        sounding = classes[i % len(classes)]
        other = str(rng.choice([c for c in classes if c != sounding]))
        frames.append(render_scene(rng, [sounding, other], 160, 120, 1.0, 1)[0][0])
        sounds.append(class_sound(sounding, 1.0, rng))
    transform = features.test_transform(IMAGE_SIZE)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny layers: more threads only add contention
    try:
        with torch.no_grad():
            model.image_trunk.bn1.bias.fill_(-1.0)
            model.image_proj.weight.zero_()
            model.image_proj.bias.zero_()
            for channel in range(3):
                model.image_proj.weight[channel, channel] = 1.0
            images = model.encode_image(torch.stack([transform(f) for f in frames]))
            heard = model.audio.trunk(features.vggish_examples_batch(np.stack(sounds))[:, :1])
        mean, std = heard.mean(0), heard.std(0).clamp_min(1e-12)  # random VGGish outputs are tiny
        head = nn.Linear(heard.shape[1], config.dim)
        optimiser = torch.optim.Adam(head.parameters(), lr=1e-2)
        for _ in range(steps):
            audio = F.normalize(head((heard - mean) / std), dim=1)
            loss = mil_contrastive_loss(model.similarity(images, audio), config.tau)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    finally:
        torch.set_num_threads(threads)
    with torch.no_grad():  # fold the standardisation into the model's own projection
        weight = head.weight / std
        model.audio.proj.weight.copy_(weight)
        model.audio.proj.bias.copy_(head.bias - weight @ mean)
    return model, config


@pytest.fixture(scope="module")
def colour_checkpoint(tmp_path_factory) -> Path:
    model, config = colour_localizer(CLASSES[:4])
    path = tmp_path_factory.mktemp("ckpt") / "colour.pt"
    save_checkpoint(path, model, config)
    return path


@pytest.fixture(scope="module")
def moving_clip(tmp_path_factory) -> RenderedVideo:
    """10 s: red circle sounds for 5 s and stops, then the green square; a blue triangle stays silent."""
    folder = tmp_path_factory.mktemp("video")
    return render_video(folder / "moving clip.mp4", seconds=SECONDS, fps=8, categories=CLASSES[:3], seed=4)


@pytest.fixture(scope="module")
def predictor(colour_checkpoint) -> Predictor:
    return Predictor.from_checkpoint(colour_checkpoint, segmenter="region", align_corners=False)


class _RecordingProgress:
    """A rich-like progress factory that records what it is told."""

    def __init__(self) -> None:
        self.updates: list[dict] = []
        self.total: int | None = None

    def __call__(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def add_task(self, description, total=None, **fields):
        self.total = total
        return 0

    def update(self, task, **fields):
        self.updates.append(fields)


@pytest.fixture(scope="module")
def localized(moving_clip, predictor, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    settings = VideoSettings(
        every=EVERY,
        map_name="av",
        sampler=SamplerChoice("naive"),
        video=out / "overlay.mp4",
        masks=out / "masks.npz",
        mask_pngs=out / "pngs",
        timeline=out / "timeline.json",
        chunk_size=12,
    )
    progress = _RecordingProgress()
    summary = localize_video(moving_clip.path, predictor, settings, progress=progress)
    return summary, settings, progress


def test_overlay_video_has_a_frame_per_sample_and_the_clips_audio(localized, moving_clip):
    summary, settings, progress = localized
    count = round(SECONDS / EVERY)
    assert summary["frames"] == count and summary["fps"] == 1 / EVERY
    info = media.probe(settings.video)
    assert (info.width, info.height, info.fps, info.has_audio) == (160, 120, 1 / EVERY, True)
    decoded = sum(len(chunk) for chunk in media.iter_frames(settings.video, chunk_size=7))
    assert decoded == count
    heard, original = media.read_audio(settings.video), media.read_audio(moving_clip.path)
    assert len(heard) == pytest.approx(len(original), abs=0.02 * 16000)
    n = min(len(heard), len(original))
    spectra = [np.abs(np.fft.rfft(a[:n])) for a in (heard, original)]
    assert float(spectra[0] @ spectra[1] / np.linalg.norm(spectra[0]) / np.linalg.norm(spectra[1])) > 0.95
    assert progress.total == count and sum(u.get("advance", 0) for u in progress.updates) == count
    assert all("frames/s" in u["rate"] for u in progress.updates if "rate" in u)


def test_masks_pngs_and_timeline_agree_frame_by_frame(localized):
    _summary, settings, _ = localized
    timeline = json.loads(settings.timeline.read_text())
    entries = timeline["timeline"]
    times = np.array([e["time"] for e in entries])
    np.testing.assert_allclose(times, np.arange(round(SECONDS / EVERY)) * EVERY)
    assert [e["index"] for e in entries] == list(range(len(entries)))
    assert timeline["frames"] == len(entries) and timeline["segmenter"] == "region" and timeline["smooth"] is None
    assert timeline["audio_window"] == 1.0
    with read_masks(settings.masks) as archive:
        assert len(archive) == len(entries) and archive.size == (120, 160)
        np.testing.assert_allclose(archive.times, times)
        masks = archive.all()
    assert [int(m.sum()) for m in masks] == [e["mask_area"] for e in entries]
    pngs = sorted(settings.mask_pngs.iterdir())
    assert len(pngs) == len(entries)
    for k in (0, 13, len(entries) - 1):
        np.testing.assert_array_equal(media.read_mask(pngs[k]), masks[k])
    for entry in entries:  # the region segmenter keeps its prompt inside the mask
        assert metrics.pointing_hit(entry["points"][0], masks[entry["index"]])


def test_the_mask_moves_to_the_object_that_starts_sounding(localized, moving_clip):
    """Pointing game per frame against the sounding object, away from the 1 s audio window around the switch."""
    _, settings, _ = localized
    entries = json.loads(settings.timeline.read_text())["timeline"]
    times = np.array([e["time"] for e in entries])
    objects = moving_clip.scene.object_masks(moving_clip.frame_times(times))  # [T,3,H,W]
    truth = moving_clip.truth(times)
    with read_masks(settings.masks) as archive:
        masks = archive.all()
    on = {
        k: np.array([metrics.pointing_hit(e["points"][0], objects[i, k]) for i, e in enumerate(entries)])
        for k in range(3)
    }
    hits = np.array([metrics.pointing_hit(e["points"][0], truth[i]) for i, e in enumerate(entries)])
    before, after = times < SWITCH - 0.5, times > SWITCH + 0.5
    assert hits[before].mean() >= 0.8 and hits[after].mean() >= 0.7, (hits[before].mean(), hits[after].mean())
    assert on[1][before].mean() <= 0.1 and on[0][after].mean() <= 0.1  # not on the silent one
    assert on[2].mean() <= 0.1  # the blue triangle never sounds
    overlap = (masks[:, None] & objects).sum(axis=(2, 3))  # [T,3] mask pixels on each object
    assert (overlap[before].argmax(1) == 0).mean() >= 0.9
    assert (overlap[after].argmax(1) == 1).mean() >= 0.8


def test_an_interrupted_run_leaves_no_video_archive_or_timeline(moving_clip, predictor, tmp_path):
    class Interrupt(_RecordingProgress):
        def update(self, task, **fields):
            raise KeyboardInterrupt

    settings = VideoSettings(
        every=2.0,
        map_name="av",
        video=tmp_path / "o.mp4",
        masks=tmp_path / "m.npz",
        timeline=tmp_path / "t.json",
        chunk_size=2,
    )
    with pytest.raises(KeyboardInterrupt):
        localize_video(moving_clip.path, predictor, settings, progress=Interrupt())
    assert list(tmp_path.iterdir()) == []


def test_bad_settings_and_clips_are_reported(moving_clip, predictor, tmp_path):
    with pytest.raises(UsageError, match="nothing to write"):
        localize_video(moving_clip.path, predictor, VideoSettings())
    with pytest.raises(UsageError, match="sampling interval"):
        localize_video(moving_clip.path, predictor, VideoSettings(every=0.0, timeline=tmp_path / "t.json"))
    with pytest.raises(UsageError, match="time constant"):
        localize_video(moving_clip.path, predictor, VideoSettings(smooth=-1.0, timeline=tmp_path / "t.json"))
    silent = render_clip(tmp_path / "silent.mp4", audio=False)
    with pytest.raises(MediaError, match="no audio stream"):
        localize_video(silent.path, predictor, VideoSettings(timeline=tmp_path / "t.json"))
    assert not (tmp_path / "t.json").exists()


def test_smoothing_is_an_ema_with_a_time_constant_in_seconds():
    assert ema_weight(0.5, 0.5) == pytest.approx(1 - math.exp(-1))
    a, b = torch.zeros(4, 4), torch.zeros(4, 4)
    a[0, 0], b[3, 3] = 1.0, 1.0
    for dt in (0.1, 0.25):  # the weight of the new map after 1 s is the same at any sampling rate
        smoother = HeatmapSmoother(0.5)
        smoother(a, 0.0)
        steps = np.arange(dt, 1.0 + 1e-9, dt)
        for t in steps:
            out = smoother(b, float(t))
        assert smoother._state[3, 3].item() == pytest.approx(1 - math.exp(-steps[-1] / 0.5), abs=1e-6)
        assert out.max().item() == pytest.approx(1.0) and out.min().item() == 0.0  # renormalised
    assert frame_key("clip", 1.25) != frame_key("clip", 1.5)


def test_smoothed_heatmaps_are_the_ones_sampled(localized, moving_clip, predictor, tmp_path):
    """With a time constant far longer than the clip the average stays the first frame's map."""
    settings = VideoSettings(
        every=2.5, map_name="av", sampler=SamplerChoice("naive"), smooth=1000.0, timeline=tmp_path / "smooth.json"
    )
    summary = localize_video(moving_clip.path, predictor, settings)
    timeline = json.loads(settings.timeline.read_text())
    assert summary["frames"] == 4 and timeline["smooth"] == 1000.0
    plain = json.loads(localized[1].timeline.read_text())["timeline"]
    assert {tuple(e["points"][0]) for e in timeline["timeline"]} == {tuple(plain[0]["points"][0])}
    assert {tuple(e["points"][0]) for e in plain[::10]} != {tuple(plain[0]["points"][0])}  # unsmoothed, it moves


# --------------------------------------------------------------------------- the synthetic video world
def test_moving_scene_ground_truth_follows_the_timeline():
    scene = make_scene(seconds=4.0, timeline=(Sounding(0, 0.0, 1.0), Sounding(2, 2.0, 4.0)), seed=1)
    times = np.array([0.5, 1.5, 3.0])
    objects, truth = scene.object_masks(times), scene.truth(times)
    np.testing.assert_array_equal(truth[0], objects[0, 0])
    assert not truth[1].any()  # silence between the two sounds
    np.testing.assert_array_equal(truth[2], objects[2, 2])
    assert not (objects[:, 0] & objects[:, 1]).any()  # lanes: objects never overlap
    moved = np.abs(scene.centres([0.0]) - scene.centres([1.0]))[0, :, 0]
    assert (moved > 0.1 * scene.width).all()  # every object moves
    frames = scene.frames(times)
    assert frames.shape == (3, scene.height, scene.width, 3)
    colour = np.array([220, 40, 40])  # red_circle, object 0
    assert np.abs(frames[0][objects[0, 0]].mean(0) - colour).max() < 10


def test_rendered_video_matches_the_scene_and_its_audio_follows_the_timeline(moving_clip):
    times = np.array([0.0, 2.5, 7.5])
    decoded = media.read_frames(moving_clip.path, times)
    assert np.abs(decoded.astype(float) - moving_clip.scene.frames(moving_clip.frame_times(times))).mean() < 8
    audio = media.read_audio(moving_clip.path)
    assert len(audio) == pytest.approx(SECONDS * 16000, abs=160)

    def tone_share(x: np.ndarray) -> float:  # energy near the red circle's 523 Hz tone
        power, freqs = np.abs(np.fft.rfft(x)) ** 2, np.fft.rfftfreq(len(x), 1 / 16000)
        return float(power[np.abs(freqs - 523) < 15].sum() / power.sum())

    assert tone_share(audio[16000 : 4 * 16000]) > 0.8  # the red circle sounds
    assert tone_share(audio[6 * 16000 : 9 * 16000]) < 0.05  # then the green square's chirp


# --------------------------------------------------------------------------- mask archives
def test_mask_archive_round_trip_in_chunks(tmp_path):
    rng = np.random.default_rng(0)
    masks = rng.random((11, 7, 13)) > 0.6
    times = np.arange(11) * 0.5
    with mask_writer(tmp_path / "m.npz", (7, 13)) as out:
        out.add(masks[:4], times[:4])
        out.add(masks[4:4], times[4:4])
        out.add(masks[4:], times[4:])
        assert len(out) == 11
    with read_masks(tmp_path / "m.npz") as archive:
        assert len(archive) == 11 and archive.size == (7, 13)
        np.testing.assert_array_equal(archive.times, times)
        np.testing.assert_array_equal(archive.all(), masks)
        for k in (0, 3, 4, 10, -1):
            np.testing.assert_array_equal(archive[k], masks[k])
        with pytest.raises(IndexError):
            archive[11]
    raw = np.load(tmp_path / "m.npz")  # plain numpy can read it too
    packed = np.concatenate([raw["bits_000000"], raw["bits_000001"]])
    np.testing.assert_array_equal(np.unpackbits(packed, axis=1, count=7 * 13).reshape(11, 7, 13).astype(bool), masks)


def test_mask_archive_is_atomic_and_checked(tmp_path):
    with pytest.raises(RuntimeError), mask_writer(tmp_path / "m.npz", (4, 4)) as out:
        out.add(np.ones((2, 4, 4), bool), [0.0, 1.0])
        raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(UsageError, match="masks must be"), mask_writer(tmp_path / "m.npz", (4, 4)) as out:
        out.add(np.ones((2, 3, 4), bool), [0.0, 1.0])
    with pytest.raises(UsageError, match="2 masks but 1 times"):
        write_masks(tmp_path / "m.npz", np.ones((2, 4, 4), bool), [0.0])
    assert list(tmp_path.iterdir()) == []
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(UsageError, match="not a gsavl-masks"):
        read_masks(tmp_path / "other.npz")
    paths = write_mask_pngs(tmp_path / "pngs", np.eye(4, dtype=bool)[None].repeat(2, 0), first_index=5)
    assert [p.name for p in paths] == ["mask_000005.png", "mask_000006.png"]
    np.testing.assert_array_equal(media.read_mask(paths[1]), np.eye(4, dtype=bool))


def test_eval_with_shuffled_audio_scores_clearly_lower(colour_checkpoint, tmp_path):
    """`eval --audio shuffled`: a localizer that listens (its audio head trained above) loses its aim."""
    import json as _json

    from typer.testing import CliRunner

    from gsavl_cli.cli import app
    from gsavl_cli.commands.preprocess import make_settings, run_preprocess
    from gsavl_cli.data.synthetic import WorldConfig, render_world
    from gsavl_cli.datasets import discover

    render_world(tmp_path / "world", WorldConfig(n_train=0, n_val=0, n_test=12, n_classes=4, seed=7))
    layout, clips = discover(tmp_path / "world", "avsbench-s4", "test")
    run_preprocess(clips, tmp_path / "w.h5", make_settings(layout), workers=1)
    scores = {}
    for audio in ("normal", "shuffled", "silent"):
        result = CliRunner().invoke(
            app,
            [
                "-q",
                "eval",
                "--dataset",
                str(tmp_path / "w.h5"),
                "--checkpoint",
                str(colour_checkpoint),
                "--segmenter",
                "region",
                "--map",
                "av",
                "--sampler",
                "naive",
                "--no-align-corners",
                "--audio",
                audio,
                "--out",
                str(tmp_path / audio),
                "--json",
            ],
        )
        assert result.exit_code == 0, result.output
        heat = next(r for r in _json.loads(result.stdout)["results"] if r["sampler"] is None)
        scores[audio] = heat["pointing_game"]
    print("pointing game by audio:", scores)
    assert scores["normal"] >= 0.6, scores
    assert scores["shuffled"] <= scores["normal"] - 0.3, scores
