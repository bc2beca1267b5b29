"""synthetic: the AVSBench-S4-layout world that every end-to-end test runs on."""

from __future__ import annotations

import csv
import wave

import numpy as np
import pytest
import torch
import torchaudio

from gsavl_cli.data import synthetic
from gsavl_cli.data.synthetic import CLASS_SPECS, CLASSES, WorldConfig, class_sound, encode, render_world
from gsavl_cli.errors import MediaError, UsageError
from gsavl_cli.io import media

TINY = dict(n_train=2, n_val=0, n_test=2, n_classes=3, width=64, height=48)


def _files(root):
    """Every PNG, WAV and CSV under root, by relative path (the mp4s embed encoder versions)."""
    paths = [p for p in sorted(root.rglob("*")) if p.suffix in (".png", ".wav", ".csv")]
    return {p.relative_to(root): p.read_bytes() for p in paths}


def test_same_seed_same_world_other_seed_other_world(tmp_path):
    first = render_world(tmp_path / "a", WorldConfig(**TINY, seed=3))
    render_world(tmp_path / "b", WorldConfig(**TINY, seed=3))
    render_world(tmp_path / "c", WorldConfig(**TINY, seed=4))
    a, b, c = (_files(tmp_path / d) for d in "abc")
    assert a == b and len(a) == 1 + 4 + 4 * 5 + 2 * 1 + 2 * 5  # csv, wavs, frames, train + test masks
    changed = [k for k in a if a[k] != c[k] and k.suffix == ".png"]
    assert len(changed) > len(a) // 2
    assert first[0].masks.shape == (5, 48, 64) and first[0].masks.dtype == np.bool_


def test_growing_a_split_keeps_existing_clips(tmp_path):
    small = render_world(tmp_path / "small", WorldConfig(**{**TINY, "n_test": 1}))
    large = render_world(tmp_path / "large", WorldConfig(**{**TINY, "n_test": 3}))
    np.testing.assert_array_equal(small[-1].frames, large[2].frames)


def test_layout_matches_avsbench_s4(synthetic_world):
    root, config, clips = synthetic_world
    with open(root / "s4_meta_data.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["name", "start", "category", "split"]
    assert [(r[0], r[2], r[3]) for r in rows[1:]] == [(c.name, c.category, c.split) for c in clips]
    assert [c.split for c in clips].count("train") == config.n_train
    assert [c.split for c in clips].count("val") == config.n_val
    data = root / "s4_data"
    for clip in clips:
        where = f"{clip.split}/{clip.category}/{clip.name}"
        assert clip.video == data / "raw_videos" / f"{where}.mp4" and clip.video.is_file()
        assert clip.audio == data / "audio_wav" / f"{where}.wav"
        frames = sorted(p.name for p in (data / "visual_frames" / where).iterdir())
        masks = sorted(p.name for p in (data / "gt_masks" / where).iterdir())
        assert frames == [f"{clip.name}_{i}.png" for i in range(1, 6)]
        assert masks == ([f"{clip.name}_1.png"] if clip.split == "train" else frames)
    assert not list(root.rglob(".*"))  # no temporary files left behind


def test_classes_are_balanced(synthetic_world):
    test_classes = [c.category for c in synthetic_world.clips if c.split == "test"]
    assert test_classes == CLASSES[:4]


def test_wav_is_16k_mono_pcm16(synthetic_world):
    with wave.open(str(synthetic_world.clips[0].audio)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 16000)
        assert wav.getnframes() == 5 * 16000


def test_masks_are_the_sounding_object(synthetic_world):
    for clip in synthetic_world.clips:
        colour = np.array(next(s.colour for s in CLASS_SPECS if s.name == clip.category))
        for frame, mask in zip(clip.frames, clip.masks):
            assert 0.01 < mask.mean() < 0.25
            inside = np.abs(frame[mask].astype(float) - colour).mean()
            outside = np.abs(frame[~mask].astype(float) - colour).mean()
            assert inside < 15 < outside


def test_pngs_are_the_video_frames_at_whole_seconds(synthetic_world):
    root = synthetic_world.root / "s4_data"
    clip = next(c for c in synthetic_world.clips if c.split == "test")
    where = f"{clip.split}/{clip.category}/{clip.name}"
    decoded = media.read_frames(clip.video, [0, 1, 2, 3, 4])
    for i in range(5):
        png = media.read_image(root / "visual_frames" / where / f"{clip.name}_{i + 1}.png")
        np.testing.assert_array_equal(png, clip.frames[i])
        mask = media.read_mask(root / "gt_masks" / where / f"{clip.name}_{i + 1}.png")
        np.testing.assert_array_equal(mask, clip.masks[i])
        assert np.abs(decoded[i].astype(float) - png).mean() < 8


def _spectrum(waveform: np.ndarray) -> torch.Tensor:
    """Unit-norm mean mel spectrum: roughly what the VGGish front end sees."""
    mel = torchaudio.transforms.MelSpectrogram(16000, n_fft=512, hop_length=160, n_mels=64, f_min=125, f_max=7500)
    profile = mel(torch.from_numpy(waveform)).mean(dim=1)
    return profile / profile.norm()


def test_each_class_sounds_different():
    rngs = [np.random.default_rng(seed) for seed in (0, 1)]
    spectra = [[_spectrum(class_sound(c, 2.0, rng)) for rng in rngs] for c in CLASSES]
    similarity = torch.tensor([[float(a[0] @ b[1]) for b in spectra] for a in spectra])
    off_diagonal = similarity[~torch.eye(len(CLASSES), dtype=torch.bool)]
    assert off_diagonal.max() < 0.8
    assert (similarity.argmax(dim=1) == torch.arange(len(CLASSES))).all()  # each sound finds its class


def test_video_audio_is_the_wav(synthetic_world):
    clip = synthetic_world.clips[1]
    from_video = media.read_audio(clip.video)
    from_wav = media.read_audio(clip.audio)
    assert len(from_video) == len(from_wav) == 80000
    assert float(_spectrum(from_video) @ _spectrum(from_wav)) > 0.99


def test_render_clip_streams(tiny_clip):
    both = tiny_clip("both.mp4", seconds=1.0, category="blue_triangle", n_objects=3)
    assert both.frames.shape == (8, 48, 64, 3) and both.masks.shape == (8, 48, 64)
    assert both.waveform.shape == (16000,) and both.category == "blue_triangle"
    silent = tiny_clip("silent.mp4", audio=False)
    assert silent.waveform is None and not media.probe(silent.path).has_audio
    sound = tiny_clip("sound.m4a", video=False)
    assert sound.frames is None and not media.probe(sound.path).has_video


@pytest.mark.parametrize(
    "options",
    [
        dict(width=63),
        dict(height=8),
        dict(n_classes=len(CLASSES) + 1),
        dict(n_classes=1),
        dict(seconds=4.0),
        dict(n_test=-1),
        dict(object_scale=(0.3, 0.2)),
        dict(object_scale=(0.2, 0.6)),
        dict(objects=(0, 2)),
        dict(objects=(3, 2)),
        dict(background="stripes"),
    ],
)
def test_bad_configs_are_usage_errors(tmp_path, options):
    with pytest.raises(UsageError):
        render_world(tmp_path, WorldConfig(**{**TINY, **options}))


def test_unknown_class_lists_the_known_ones(tiny_clip):
    with pytest.raises(UsageError) as caught:
        tiny_clip(category="purple_blob")
    assert "red_circle" in caught.value.hint


def test_failed_encode_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(encode, "codecs", lambda: ({"c:v": "no_such_codec"}, {}))
    path = tmp_path / "out.mp4"
    with pytest.raises(MediaError, match="cannot write out.mp4"):
        synthetic.write_video(path, np.zeros((4, 16, 16, 3), np.uint8), 8)
    assert list(tmp_path.iterdir()) == []


def test_world_options_shape_the_scenes(tmp_path):
    big = render_world(
        tmp_path / "big",
        WorldConfig(**{**TINY, "n_test": 4}, object_scale=(0.3, 0.34), objects=(1, 1), background="plain"),
    )
    small = render_world(tmp_path / "small", WorldConfig(**{**TINY, "n_test": 4}))
    assert np.mean([c.masks[0].mean() for c in big]) > 2 * np.mean([c.masks[0].mean() for c in small])
    backgrounds = [c.frames[0][~c.masks[0]].astype(float) for c in big]
    for background in backgrounds:  # one object: everything else is the plain colour with grain
        assert (
            np.abs(background.mean(axis=0) - synthetic.PLAIN_BACKGROUND).max() < 3 and background.std(axis=0).max() < 10
        )
    textured = [c.frames[0][~c.masks[0]].astype(float) for c in small]
    assert min(b.std(axis=0).mean() for b in textured) > max(b.std(axis=0).mean() for b in backgrounds)


def test_ms3_world_reads_back_through_the_ms3_layout(tmp_path):
    from gsavl_cli.commands.preprocess import make_settings, run_preprocess
    from gsavl_cli.datasets import discover
    from gsavl_cli.io.store import open_store

    clips = render_world(tmp_path, WorldConfig(**{**TINY, "n_train": 4}, seed=1), layout="avsbench-ms3")
    layout, sources = discover(tmp_path)
    assert layout == "avsbench-ms3" and [s.clip_id for s in sources] == [c.name for c in clips]
    result = run_preprocess(sources, tmp_path / "ms3.h5", make_settings(layout))
    assert result.written == len(clips) and not result.failed
    colours = {spec.name: np.array(spec.colour, float) for spec in CLASS_SPECS}
    with open_store(tmp_path / "ms3.h5") as store:
        for clip in clips:
            np.testing.assert_array_equal(store[clip.name]["masks"], clip.masks)  # all 5 frames, every split
            first, second = clip.category.split("+")
            assert first != second
            frame, mask = clip.frames[0].astype(float), clip.masks[0]
            near = {name: np.abs(frame - colour).mean(axis=-1) < 20 for name, colour in colours.items()}
            assert (near[first] & mask).sum() > 10 and (near[second] & mask).sum() > 10  # both sounding objects
            assert (mask <= near[first] | near[second]).mean() > 0.98  # and nothing else in the mask
            silent = [n for n in CLASSES[:3] if n not in (first, second)]
            assert not any((near[n] & mask).any() for n in silent)
    assert {c.category.split("+")[0] for c in clips} == set(CLASSES[:3])  # classes stay balanced


def test_ms3_sound_is_the_mix_of_both_classes(tmp_path):
    clip = render_world(
        tmp_path, WorldConfig(**{**TINY, "n_train": 1, "n_test": 0, "n_classes": 8}), layout="avsbench-ms3"
    )[0]
    heard = _spectrum(media.read_audio(clip.audio))
    rng = np.random.default_rng(0)
    match = {c: float(heard @ _spectrum(class_sound(c, 2.0, rng))) for c in CLASSES}
    assert sorted(match, key=match.get)[-2:] == sorted(clip.category.split("+"), key=match.get)


def test_unknown_world_layout(tmp_path):
    with pytest.raises(UsageError, match="unknown synthetic world layout"):
        render_world(tmp_path, WorldConfig(**TINY), layout="avsbench-s5")
