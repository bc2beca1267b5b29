"""Each layout on a miniature tree built in that exact layout, then through preprocess."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from gsavl_cli.commands.preprocess import make_settings, run_preprocess
from gsavl_cli.data import features
from gsavl_cli.datasets import detect_layout, discover, read_vggss_annotations, vggsound_key
from gsavl_cli.errors import UsageError
from gsavl_cli.io.media import write_png
from gsavl_cli.io.store import open_store

H, W = 24, 32


def _frame(value: int) -> np.ndarray:
    return np.full((H, W, 3), value, np.uint8)


def _mask(row0: int) -> np.ndarray:
    m = np.zeros((H, W, 3), np.uint8)
    m[row0 : row0 + 4, 2:10] = (0, 0, 128)  # a coloured label: non-black counts
    return m


def _wav(path: Path, seconds: float, freq: float = 440.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(16000 * seconds)) / 16000
    sf.write(path, 0.3 * np.sin(2 * np.pi * freq * t), 16000, subtype="PCM_16")


def make_ms3(root: Path) -> None:
    (root / "ms3_meta_data.csv").write_text("video_id,fold,split\nclipA,0,train\nclipB,0,test\n")
    data = root / "ms3_data"
    for name, split in (("clipA", "train"), ("clipB", "test")):
        _wav(data / "audio_wav" / split / f"{name}.wav", 5.0)
        for i in range(1, 6):
            write_png(data / "visual_frames" / name / f"{name}.mp4_{i}.png", _frame(10 * i))
            write_png(data / "gt_masks" / split / name / f"{name}_{i}.png", _mask(i))


def make_semantic(root: Path) -> None:
    (root / "metadata.csv").write_text(
        "vid,uid,s_min,s_sec,a_obj,split,label\n"
        "v1,u1,0,0,dog,train,v1s\n"
        "v2,u2,0,5,piano,test,v1m\n"
        "v3,u3,0,0,car,test,v2\n"
    )
    for label, uid, n in (("v1s", "u1", 5), ("v1m", "u2", 5), ("v2", "u3", 10)):
        clip = root / label / uid
        _wav(clip / "audio.wav", n * 1.0)
        for t in range(n):
            write_png(clip / "frames" / f"{t}.jpg", _frame(t))  # PNG bytes under .jpg decode fine
            if label != "v1s" or t == 0:
                write_png(clip / "labels_rgb" / f"{t}.png", _mask(t % 10))


def make_vggsound(root: Path) -> Path:
    for clip in ("abc_000030", "def_000010"):
        write_png(root / "frames" / f"{clip}.jpg", _frame(50))
        _wav(root / "audio" / f"{clip}.wav", 10.0)
    ann = root / "vggss.json"
    ann.write_text('[{"file": "abc_30", "class": "dog", "bbox": [[0.1, 0.2, 0.5, 1.3], [-0.2, 0.0, 0.3, 0.4]]}]')
    return ann


def test_ms3(tmp_path):
    make_ms3(tmp_path)
    assert detect_layout(tmp_path) == "avsbench-ms3"
    layout, clips = discover(tmp_path, split="test")
    assert layout == "avsbench-ms3" and [c.clip_id for c in clips] == ["clipB"]
    result = run_preprocess(clips, tmp_path / "ms3.h5", make_settings(layout))
    assert result.written == 1 and not result.failed
    item = open_store(tmp_path / "ms3.h5")["clipB"]
    assert item["frames"].shape == (5, H, W, 3) and item["frames"][2].mean() == 30
    assert item["masks"].shape == (5, H, W) and item["masks"][0].sum() == 4 * 8
    assert item["vggish"].shape == (5, 96, 64) and item["spectrogram"].shape == (257, 200)


def test_a_vggish_window_is_stored_as_it_is_not_padded_to_the_layout(tmp_path):
    """With --vggish-seconds the model hears that window: one 0.96 s example is stored once,
    not repeated to MS3's five (which made training run VGGish five times on the same input)."""
    make_ms3(tmp_path)
    layout, clips = discover(tmp_path, split="test")
    run_preprocess(clips, tmp_path / "w.h5", make_settings(layout, vggish_seconds=0.96))
    with open_store(tmp_path / "w.h5") as store:
        item = store.read("clipB", ("waveform", "vggish"))
    window = features.centre_window(item["waveform"], 16000, 0.96)
    np.testing.assert_allclose(item["vggish"], features.vggish_examples(window).numpy(), atol=1e-5)
    assert item["vggish"].shape == (1, 96, 64)


def test_semantic_subsets_and_masks(tmp_path):
    make_semantic(tmp_path)
    assert detect_layout(tmp_path) == "avsbench-semantic"
    _, clips = discover(tmp_path, subsets=("v1s", "v2"))
    assert sorted(c.clip_id for c in clips) == ["v1s/u1", "v2/u3"]
    result = run_preprocess(clips, tmp_path / "sem.h5", make_settings("avsbench-semantic"))
    assert result.written == 2, result.failed
    with open_store(tmp_path / "sem.h5") as store:
        assert store["v1s/u1"]["masks"].shape == (1, H, W)
        assert store["v2/u3"]["frames"].shape == (10, H, W, 3)
        assert store["v2/u3"]["vggish"].shape[0] == 10
    with pytest.raises(UsageError, match="subset"):
        discover(tmp_path, subsets=("v9",))


def test_vggsound_annotations_and_id_forms(tmp_path):
    ann = make_vggsound(tmp_path)
    assert vggsound_key("abc_000030") == vggsound_key("abc_30") == "abc_30"
    boxes = read_vggss_annotations(ann)["abc_30"]["boxes"]
    assert boxes == [[0.1, 0.2, 0.5, 1.0], [0.0, 0.0, 0.3, 0.4]]  # clipped to [0,1]
    layout, test = discover(tmp_path, split="test")
    assert layout == "vggsound" and [c.clip_id for c in test] == ["abc_000030"]
    _, train = discover(tmp_path, split="train")
    assert [c.clip_id for c in train] == ["def_000010"]
    result = run_preprocess(test, tmp_path / "vs.h5", make_settings(layout))
    item = open_store(tmp_path / "vs.h5")["abc_000030"]
    assert result.written == 1
    np.testing.assert_allclose(item["boxes"], boxes, atol=1e-7)
    assert item["vggish"].shape == (3, 96, 64)  # the centred 3 s of a 10 s clip


def test_subset_file_filters(tmp_path):
    make_vggsound(tmp_path)
    listing = tmp_path / "subset.txt"
    listing.write_text("def_10\n")
    _, clips = discover(tmp_path, subset=listing)
    assert [c.clip_id for c in clips] == ["def_000010"]


def test_published_subset_list_comes_from_the_cache(tmp_path, monkeypatch):
    make_vggsound(tmp_path / "v")
    monkeypatch.setenv("GSAVL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GSAVL_OFFLINE", "1")
    with pytest.raises(UsageError, match="ezvsl_vggss_10k.txt"):
        discover(tmp_path / "v", subset="vggss_10k")  # offline and not cached: names the file
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "ezvsl_vggss_10k.txt").write_text("abc_000030\nzzz_000001\n")
    _, clips = discover(tmp_path / "v", subset="vggss_10k")
    assert [c.clip_id for c in clips] == ["abc_000030"]


def test_bad_sources(tmp_path):
    with pytest.raises(UsageError, match="no such"):
        discover(tmp_path / "nope")
    with pytest.raises(UsageError, match="layout"):
        discover(tmp_path, layout="kinetics")
    with pytest.raises(UsageError, match="split"):
        discover(tmp_path, split="dev")
    with pytest.raises(UsageError, match="metadata"):
        discover(tmp_path, layout="avsbench-s4")


def test_missing_pieces_fail_with_reason(tmp_path):
    make_ms3(tmp_path)
    (tmp_path / "ms3_data" / "audio_wav" / "test" / "clipB.wav").unlink()
    _, clips = discover(tmp_path, split="test")
    result = run_preprocess(clips, tmp_path / "o.h5", make_settings("avsbench-ms3"))
    assert result.written == 0 and len(result.failed) == 1
    assert "clipB" in result.failed[0].reason or "clipB" in result.failed[0].source
    assert open_store(tmp_path / "o.h5").ids == []


def test_interrupted_preprocess_resumes(tmp_path):
    """Ctrl-C after the first clip keeps it; the same call again writes only the rest."""
    make_ms3(tmp_path)
    layout, clips = discover(tmp_path)
    out = tmp_path / "o.h5"

    def interrupt(src, ok):
        raise KeyboardInterrupt

    first = run_preprocess(clips, out, make_settings(layout), on_clip=interrupt)
    assert first.interrupted and first.written == 1
    assert open_store(out).ids == [clips[0].clip_id]
    second = run_preprocess(clips, out, make_settings(layout))
    assert (second.written, second.skipped, second.interrupted) == (1, 1, False)
    assert open_store(out).ids == sorted(c.clip_id for c in clips)


def test_training_data_without_the_needed_features_is_refused(tmp_path):
    import h5py

    from gsavl_cli.data.clips import AudioVisualClips
    from gsavl_cli.data.features import test_transform

    make_ms3(tmp_path)
    layout, clips = discover(tmp_path)
    out = tmp_path / "o.h5"
    run_preprocess(clips, out, make_settings(layout))
    with h5py.File(out, "r+") as f:
        for group in f["clips"].values():
            del group["vggish"]
    with pytest.raises(UsageError, match="no vggish arrays"):
        AudioVisualClips(out, open_store(out).ids, "vggish", test_transform(64))


def test_very_short_clip_and_odd_sample_rate(tmp_path):
    """0.3 s of audio still gives one log-mel example and a full spectrogram (tiled);
    11.025 kHz audio is resampled to 16 kHz by ffmpeg."""
    from gsavl_cli.data.synthetic import write_video

    frames = np.full((3, 32, 48, 3), 90, np.uint8)
    t = np.arange(int(0.3 * 11025)) / 11025
    write_video(
        tmp_path / "short clip.mkv",
        frames,
        10,
        (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32),
        sample_rate=11025,
    )
    long_t = np.arange(2 * 11025) / 11025
    write_video(
        tmp_path / "odd rate.mp4",
        np.repeat(frames, 7, axis=0),
        10,
        (0.3 * np.sin(2 * np.pi * 300 * long_t)).astype(np.float32),
        sample_rate=11025,
    )
    layout, clips = discover(tmp_path)
    result = run_preprocess(clips, tmp_path / "o.h5", make_settings(layout))
    assert result.written == 2, result.failed
    with open_store(tmp_path / "o.h5") as store:
        short, odd = store["short clip"], store["odd rate"]
    assert short["vggish"].shape == (1, 96, 64) and short["spectrogram"].shape == (257, 200)
    assert abs(len(short["waveform"]) - 0.3 * 16000) < 0.05 * 16000
    assert odd["vggish"].shape == (2, 96, 64) and abs(len(odd["waveform"]) - 2 * 16000) < 0.05 * 16000


def _mixed_folder(root: Path) -> None:
    """One video, in a subfolder; and things the walk must skip, each for its own reason."""
    from gsavl_cli.data.synthetic import write_video

    write_video(root / "sub" / "clip.mp4", np.full((4, 16, 16, 3), 90, np.uint8), 4, np.zeros(16000, np.float32))
    (root / "voice.m4a").write_bytes(b"\0" * 16)
    (root / "notes.txt").write_text("not a clip")
    (root / ".partial.mp4").write_bytes(b"\0" * 16)  # what an interrupted atomic write leaves
    (root / ".cache").mkdir()
    (root / ".cache" / "inside.mp4").write_bytes(b"\0" * 16)
    (root / "gone.mp4").symlink_to(root / "no-such-file.mp4")


def test_folder_walk_reports_what_it_ignores(tmp_path):
    _mixed_folder(tmp_path)
    ignored = []
    layout, clips = discover(tmp_path, ignored=ignored)
    assert layout == "folder" and [c.clip_id for c in clips] == ["sub/clip"]
    reasons = {item.source.relative_to(tmp_path).as_posix(): item.reason for item in ignored}
    assert reasons == {
        ".cache": "hidden folder",
        ".partial.mp4": "hidden file",
        "gone.mp4": "unreadable: broken link",
        "notes.txt": "not a video (.txt)",
        "voice.m4a": "audio only (.m4a): a clip needs a video stream",
    }
    assert discover(tmp_path)[1] == clips  # without the list, the same clips
    result = run_preprocess(clips, tmp_path / "o.h5", make_settings(layout), ignored=ignored)
    summary = result.to_json()
    assert summary["written"] == 1 and not summary["failed"]
    assert [i["source"] for i in summary["ignored"]] == [str(tmp_path / name) for name in sorted(reasons)]
    assert summary["ignored"][3] == {"source": str(tmp_path / "notes.txt"), "reason": "not a video (.txt)"}


def test_dataset_layouts_ignore_nothing(tmp_path):
    make_ms3(tmp_path)
    (tmp_path / "README.txt").write_text("not part of the layout")
    ignored = []
    discover(tmp_path, ignored=ignored)
    assert ignored == []  # a dataset layout reads its metadata; it does not walk folders


def test_each_layouts_protocol_lives_on_its_object(tmp_path):
    """The facts the commands ask the registered objects for, as the original protocols have them."""
    from gsavl_cli.datasets import get_dataset, list_datasets, named_datasets, store_name, train_preset

    assert [d.name for d in list_datasets()] == [
        "folder",
        "avsbench-s4",
        "avsbench-ms3",
        "avsbench-semantic",
        "vggsound",
    ]
    assert {d.name: d.segmentation_epochs for d in list_datasets()} == {
        "folder": 30,
        "avsbench-s4": 30,
        "avsbench-ms3": 60,
        "avsbench-semantic": 30,
        "vggsound": 30,
    }
    assert {d.name: make_settings(d.name)["vggish_seconds"] for d in list_datasets()} == {
        "folder": None,
        "avsbench-s4": None,
        "avsbench-ms3": None,
        "avsbench-semantic": None,
        "vggsound": 3.0,
    }
    assert make_settings("vggsound", vggish_seconds=0.96)["vggish_seconds"] == 0.96
    assert {n.name: (n.store, n.subset) for n in named_datasets().values()} == {
        "avsbench-s4": ("avsbench-s4", None),
        "avsbench-ms3": ("avsbench-ms3", None),
        "avsbench-semantic": ("avsbench-semantic", None),
        "vggsound10k": ("vggsound", "vggss_10k"),
        "vggsound144k": ("vggsound", "vggss_144k"),
        "vggss": ("vggsound", None),
    }
    assert train_preset("avsbench-s4") == (32, 10)
    assert train_preset("vggsound10k") == train_preset("x.h5") == (128, 20)
    (tmp_path / "my videos").mkdir()
    assert store_name("folder", tmp_path / "my videos") == "my videos"
    (tmp_path / "clip.mp4").write_bytes(b"")
    assert store_name("folder", tmp_path / "clip.mp4") == "clip"
    assert store_name("avsbench-ms3", tmp_path / "my videos") == "avsbench-ms3"
    assert store_name("vggsound", tmp_path, "vggss_10k") == "vggsound10k"
    assert store_name("vggsound", tmp_path, "mine.txt") == "vggsound"
    with pytest.raises(UsageError, match="unknown dataset layout 'kinetics'"):
        make_settings("kinetics")
    assert get_dataset("avsbench-semantic").subsets == ("v1s", "v1m", "v2")
