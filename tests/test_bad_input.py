"""Bad input, command by command: one clear error naming the file (and clip), nothing lost, nothing half-written.

Each case builds its bad input in a fresh folder, hashes every file there, runs the
command, and checks: the exit code, that the failure went through the error handler
(SystemExit, one `error:` message, no traceback, no raw markup), the names the message
must carry, that every input is byte-identical afterwards, and that no partial file
was left behind.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from gsavl_cli.cli import app
from gsavl_cli.data.synthetic import render_clip
from gsavl_cli.io.store import find_damaged

runner = CliRunner()


@pytest.fixture(scope="module")
def made(synthetic_world, tmp_path_factory) -> dict[str, Path]:
    """Good inputs made once: a store with masks, a checkpoint trained on it, a clip, a folder of clips."""
    root = tmp_path_factory.mktemp("good")
    store = root / "world.h5"
    ok = runner.invoke(
        app, ["-q", "preprocess", str(synthetic_world.root), "-o", str(store), "--workers", "1", "--no-register"]
    )
    assert ok.exit_code == 0, ok.output
    ok = runner.invoke(
        app,
        [
            "-q",
            "train",
            "--dataset",
            str(store),
            "--out",
            str(root / "run"),
            "--no-pretrained",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--max-steps",
            "1",
            "--workers",
            "0",
        ],
    )
    assert ok.exit_code == 0, ok.output
    clip = render_clip(root / "clip.mp4", seed=1).path
    for i in range(3):
        render_clip(root / "videos" / f"c{i}.mp4", seed=10 + i)
    return {"store": store, "checkpoint": root / "run" / "last.pt", "clip": clip, "videos": root / "videos"}


def _copy(made: dict[str, Path], name: str, to: Path) -> Path:
    """A private copy (a hard link for the large, read-only checkpoint: the hash check still sees any write)."""
    source = made[name]
    target = to / source.name
    (shutil.copytree if source.is_dir() else os.link if name == "checkpoint" else shutil.copy)(source, target)
    return target


def _flip_frame(store: Path, clip: str) -> None:
    """Flips bytes in the middle of a clip's first frame PNG (its header stays intact)."""
    with h5py.File(store, "r+") as f:
        group = next(g for g in f["clips"].values() if g.attrs["id"] == clip)
        data = bytearray(group["frames"][0].tobytes())
        for i in range(60, len(data) - 20, 7):
            data[i] ^= 0x5A
        group["frames"][0] = np.frombuffer(bytes(data), np.uint8)


def _garble_array(store: Path, clip: str, name: str) -> None:
    """Random bytes in place of a float array (as a bad disk or copy gives)."""
    with h5py.File(store, "r+") as f:
        dataset = next(g for g in f["clips"].values() if g.attrs["id"] == clip)[name]
        raw = np.random.default_rng(0).integers(0, 256, dataset.size * dataset.dtype.itemsize, dtype=np.uint8)
        dataset[...] = raw.view(dataset.dtype).reshape(dataset.shape)


def _flip_on_disk(store: Path, clip: str, name: str) -> None:
    """Flips the compressed bytes of a chunked array in the file itself (h5py's reader then fails)."""
    with h5py.File(store, "r") as f:
        dataset = next(g for g in f["clips"].values() if g.attrs["id"] == clip)[name]
        chunk = dataset.id.get_chunk_info(0)
    with open(store, "r+b") as f:
        f.seek(chunk.byte_offset + 2)
        f.write(bytes(b ^ 0xFF for b in f.read(max(chunk.size - 4, 1))))


def _first_test_clip(store: Path) -> str:
    with h5py.File(store, "r") as f:
        return sorted(str(g.attrs["id"]) for g in f["clips"].values() if "masks" in g)[0]


class Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


@dataclass
class Case:
    id: str
    setup: Callable[[dict[str, Path], Path], list[str]]  # builds inputs in the folder, returns the command line
    code: int
    names: tuple[str, ...]  # what the message must name ("{store}", "{clip}": filled in from the setup)
    absent: tuple[str, ...] = ()  # outputs that must not exist afterwards


def _region(*args: str) -> list[str]:
    return [*args, "--segmenter", "region", "--map", "av"]


def _preprocess_onto_source(made, d):
    clip = _copy(made, "clip", d)
    return ["preprocess", str(clip), "-o", str(clip), "--overwrite"]


def _preprocess_video_into_source(made, d):
    videos = _copy(made, "videos", d)
    return ["preprocess", str(videos), "-o", str(videos / "out.mp4")]


def _preprocess_onto_notes(made, d):
    videos = _copy(made, "videos", d)
    (d / "notes.txt").write_text("my notes")
    return ["preprocess", str(videos), "-o", str(d / "notes.txt")]


def _train_out_is_data(made, d):
    store = _copy(made, "store", d)
    return ["train", "--dataset", str(store), "--out", str(store), "--no-pretrained"]


def _eval_out_is_data(made, d):
    store, ckpt = _copy(made, "store", d), _copy(made, "checkpoint", d)
    return _region("eval", "--dataset", str(store), "--checkpoint", str(ckpt), "--out", str(store))


def _eval_cache_is_checkpoint(made, d):
    store, ckpt = _copy(made, "store", d), _copy(made, "checkpoint", d)
    return _region(
        "eval", "--dataset", str(store), "--checkpoint", str(ckpt), "--out", str(d / "e"), "--save-heatmaps", str(ckpt)
    )


def _localize_onto_clip(made, d):
    clip, ckpt = _copy(made, "clip", d), _copy(made, "checkpoint", d)
    return _region("localize", str(clip), "--checkpoint", str(ckpt), "-o", str(clip))


def _localize_onto_checkpoint(made, d):
    clip, ckpt = _copy(made, "clip", d), _copy(made, "checkpoint", d)
    return _region("localize", str(clip), "--checkpoint", str(ckpt), "--overlay", str(ckpt))


def _localize_video_into_folder(made, d):
    videos, ckpt = _copy(made, "videos", d), _copy(made, "checkpoint", d)
    return _region(
        "localize",
        str(videos / "c0.mp4"),
        str(videos),
        "--checkpoint",
        str(ckpt),
        "--out-dir",
        str(d / "o"),
        "--video",
        str(videos / "overlay.mp4"),
    )


def _media_case(make: Callable[[Path], None], name: str):
    def setup(made, d):
        ckpt = _copy(made, "checkpoint", d)
        make(d / name)
        return _region("localize", str(d / name), "--checkpoint", str(ckpt), "-o", str(d / "mask.png"))

    return setup


def _truncated(path: Path) -> None:
    data = render_clip(path.with_name("full.mp4"), seed=3).path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _localize_under_a_file(made, d):
    clip, ckpt = _copy(made, "clip", d), _copy(made, "checkpoint", d)
    (d / "notes.txt").write_text("a file, not a folder")
    return _region("localize", str(clip), "--checkpoint", str(ckpt), "-o", str(d / "notes.txt" / "mask.png"))


def _bad_checkpoint(content: Callable[[], bytes]):
    def setup(made, d):
        clip = _copy(made, "clip", d)
        (d / "model.pt").write_bytes(content())
        return _region("localize", str(clip), "--checkpoint", str(d / "model.pt"), "-o", str(d / "mask.png"))

    return setup


def _damaged_store(damage: Callable[[Path, str], None], command: str):
    def setup(made, d):
        store, ckpt = _copy(made, "store", d), _copy(made, "checkpoint", d)
        clip = _first_test_clip(store)
        damage(store, clip)
        (d / "clip-id").write_text(clip)
        if command == "train":
            return [
                "train",
                "--dataset",
                str(store),
                "--split",
                "all",
                "--out",
                str(d / "run"),
                "--no-pretrained",
                "--epochs",
                "1",
                "--batch-size",
                "16",
                "--max-steps",
                "1",
                "--workers",
                "0",
            ]
        return _region("eval", "--dataset", str(store), "--checkpoint", str(ckpt), "--out", str(d / "e"))

    return setup


CASES = [
    Case("preprocess -o onto the source video", _preprocess_onto_source, 2, ("clip.mp4", "-o")),
    Case(
        "preprocess -o a video inside the source folder",
        _preprocess_video_into_source,
        2,
        ("out.mp4",),
        ("videos/out.mp4",),
    ),
    Case("preprocess -o an existing non-HDF5 file", _preprocess_onto_notes, 2, ("notes.txt",)),
    Case("train --out the data file", _train_out_is_data, 2, ("--out", "world.h5")),
    Case("eval --out the data file", _eval_out_is_data, 2, ("--out", "world.h5")),
    Case(
        "eval --save-heatmaps onto the checkpoint",
        _eval_cache_is_checkpoint,
        2,
        ("--save-heatmaps", "last.pt"),
        ("e/metrics.json",),
    ),
    Case("localize -o onto the clip", _localize_onto_clip, 2, ("-o", "clip.mp4")),
    Case("localize --overlay onto the checkpoint", _localize_onto_checkpoint, 2, ("--overlay", "last.pt")),
    Case("localize --video inside an input folder", _localize_video_into_folder, 2, ("--video", "overlay.mp4"), ("o",)),
    Case(
        "localize a zero-byte video",
        _media_case(lambda p: p.write_bytes(b""), "empty.mp4"),
        2,
        ("empty.mp4",),
        ("mask.png",),
    ),
    Case("localize a truncated video", _media_case(_truncated, "cut.mp4"), 2, ("cut.mp4",), ("mask.png",)),
    Case(
        "localize a video with no audio",
        _media_case(lambda p: render_clip(p, audio=False), "mute.mp4"),
        2,
        ("mute.mp4",),
        ("mask.png",),
    ),
    Case(
        "localize an audio-only file",
        _media_case(lambda p: render_clip(p, video=False), "sound.m4a"),
        2,
        ("sound.m4a",),
        ("mask.png",),
    ),
    Case("localize -o under a regular file", _localize_under_a_file, 1, ("notes.txt",)),
    Case(
        "localize a random-bytes checkpoint", _bad_checkpoint(lambda: os.urandom(4096)), 2, ("model.pt",), ("mask.png",)
    ),
    Case(
        "localize a pickle payload checkpoint",
        _bad_checkpoint(lambda: pickle.dumps(Evil())),
        2,
        ("model.pt",),
        ("mask.png", "pwned"),
    ),
    Case(
        "train on a store with a damaged frame",
        _damaged_store(_flip_frame, "train"),
        2,
        ("{store}", "{clip}", "frame 0"),
    ),
    Case(
        "eval on a store with a damaged frame",
        _damaged_store(_flip_frame, "eval"),
        2,
        ("{store}", "{clip}", "frame 0"),
        ("e/metrics.json",),
    ),
    Case(
        "eval on a store with a garbled waveform",
        _damaged_store(lambda s, c: _garble_array(s, c, "waveform"), "eval"),
        2,
        ("{store}", "{clip}", "waveform"),
        ("e/metrics.json",),
    ),
    Case(
        "train on a store with garbled log-mel features",
        _damaged_store(lambda s, c: _garble_array(s, c, "vggish"), "train"),
        2,
        ("{store}", "{clip}", "vggish"),
    ),
    Case(
        "eval on a store with damaged mask bytes",
        _damaged_store(lambda s, c: _flip_on_disk(s, c, "masks"), "eval"),
        2,
        ("{store}", "{clip}", "masks"),
        ("e/metrics.json",),
    ),
]


def _fingerprint(path: Path) -> str:
    """sha256 of the content; for the 1 GB checkpoint, size + modification time (any write moves them)."""
    stat = path.stat()
    if stat.st_size > 50_000_000:
        return f"{stat.st_size}:{stat.st_mtime_ns}"
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): _fingerprint(p) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_clear_error_and_costs_nothing(case: Case, made, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = case.setup(made, tmp_path)
    before = _hashes(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == case.code, (result.exit_code, result.output)
    assert isinstance(result.exception, SystemExit), result.exception  # went through the handler, not a crash
    text = result.output
    assert text.count("error:") == 1 and "internal error" not in text, text
    assert "[bold" not in text and "[/]" not in text and "[dim]" not in text, text  # markup rendered, never raw
    flat = "".join(text.split())  # rich wraps long lines anywhere
    fills = {
        "{store}": str(tmp_path / "world.h5"),
        "{clip}": (tmp_path / "clip-id").read_text() if (tmp_path / "clip-id").exists() else "",
    }
    for name in case.names:
        assert "".join(fills.get(name, name).split()) in flat, (name, text)
    after = _hashes(tmp_path)
    assert {k: v for k, v in after.items() if k in before} == before, "an input changed"
    assert not [k for k in after if ".partial" in k], after
    for name in case.absent:
        assert not (tmp_path / name).exists(), name


def test_inspect_verify_lists_every_damaged_clip_and_skip_bad_goes_on(made, tmp_path):
    store = _copy(made, "store", tmp_path)
    clips = sorted(find_damaged(store).keys() | {_first_test_clip(store)})
    _flip_frame(store, clips[0])
    with h5py.File(store, "r") as f:
        other = sorted(str(g.attrs["id"]) for g in f["clips"].values())[-1]
    _garble_array(store, other, "waveform")
    assert set(find_damaged(store)) == {clips[0], other}
    listed = runner.invoke(app, ["inspect", str(store), "--verify", "--json"])
    assert listed.exit_code == 1 and isinstance(listed.exception, SystemExit)
    import json

    damaged = json.loads(listed.stdout)["damaged"]
    assert {d["id"] for d in damaged} == {clips[0], other} and any("frame 0" in d["reason"] for d in damaged)
    trained = runner.invoke(
        app,
        [
            "train",
            "--dataset",
            str(store),
            "--split",
            "all",
            "--out",
            str(tmp_path / "run"),
            "--no-pretrained",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--max-steps",
            "1",
            "--workers",
            "0",
            "--skip-bad",
        ],
    )
    assert trained.exit_code == 0, trained.output
    flat = " ".join(trained.output.split())
    assert f"skipping damaged clip {clips[0]}" in flat and f"skipping damaged clip {other}" in flat


def test_an_own_mask_model_needs_no_object_prior_unless_a_map_asks(made, tmp_path):
    """The SSL2AVS default (its own mask, av map) runs with an empty weight cache; --map avobj names itself."""
    from gsavl_cli.commands.train import TrainConfig, train
    from gsavl_cli.model import config_from_preset

    best = train(
        TrainConfig(
            data=made["store"],
            out=tmp_path / "seg",
            model=config_from_preset("ssl2avs-tiny", image_size=64),
            epochs=1,
            batch_size=2,
            max_steps=1,
            workers=0,
            pretrained=False,
            frames="annotated",
        )
    )
    ok = runner.invoke(
        app, ["-q", "localize", str(made["clip"]), "--checkpoint", str(best), "-o", str(tmp_path / "m.png")]
    )
    assert ok.exit_code == 0, ok.output
    asked = runner.invoke(
        app, ["localize", str(made["clip"]), "--checkpoint", str(best), "--map", "avobj", "-o", str(tmp_path / "n.png")]
    )
    assert asked.exit_code == 2 and "--map avobj" in " ".join(asked.output.split()), asked.output
