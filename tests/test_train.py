"""Training loop: exact resume, DDP on 2 gloo processes, early stopping, bad inputs.

DDP keeps parameters identical across ranks; BatchNorm running statistics stay per rank
(PyTorch's default), and rank 0's are the ones saved.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from gsavl_cli.commands.preprocess import make_settings
from gsavl_cli.commands.train import TrainConfig, train
from gsavl_cli.errors import UsageError
from gsavl_cli.model import config_from_preset, load_checkpoint


@pytest.fixture(scope="module")
def small_h5(s4_store) -> Path:
    return s4_store


def _cfg(data: Path, out: Path, **kw) -> TrainConfig:
    base = dict(
        data=data,
        out=out,
        model=config_from_preset("ezvsl", image_size=64),
        epochs=2,
        batch_size=4,
        workers=0,
        pretrained=False,
        max_steps=2,
        seed=7,
    )
    base.update(kw)
    return TrainConfig(**base)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path).model.state_dict()


def test_resume_continues_exactly(small_h5, tmp_path):
    straight = train(_cfg(small_h5, tmp_path / "a"))
    train(_cfg(small_h5, tmp_path / "b", epochs=1))
    resumed = train(_cfg(small_h5, tmp_path / "b", epochs=2, resume=True))
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    logs = [json.loads(line) for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [log["epoch"] for log in logs] == [1, 2]


def test_the_worker_count_does_not_change_the_run(small_h5, tmp_path):
    """`--workers` is a speed knob: 0 and 2 loader processes train bit-identical weights over 3 epochs.

    (torch's own shuffling draws the workers' base seed from the same generator once per
    iterator, so a persistent-worker loader and a 0-worker one diverge from epoch 2.)
    """
    runs = [train(_cfg(small_h5, tmp_path / f"w{w}", epochs=3, max_steps=None, workers=w)) for w in (0, 2)]
    a, b = (_weights(r) for r in runs)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_validation_best_and_patience(small_h5, tmp_path):
    out = tmp_path / "run"
    train(_cfg(small_h5, out, epochs=4, val=small_h5, val_split="test", patience=1))
    logs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(log["val"] is not None and 0 <= log["val"]["ciou"] <= 1 for log in logs)
    assert (out / "best.pt").exists() and logs[0]["best"]
    bests = [log["best"] for log in logs]
    # stops after the first epoch that did not improve
    assert len(logs) == 4 or (not bests[-1] and len(logs) < 4)
    best_epoch = max(i for i, b in enumerate(bests) if b) + 1
    assert load_checkpoint(out / "best.pt").extra["epoch"] == best_epoch


def test_resume_with_another_model_is_refused(small_h5, tmp_path):
    train(_cfg(small_h5, tmp_path / "r", epochs=1))
    with pytest.raises(UsageError, match="another model"):
        train(_cfg(small_h5, tmp_path / "r", model=config_from_preset("ezvsl", image_size=64, tau=0.1), resume=True))


def test_empty_split_is_refused(small_h5, tmp_path):
    with pytest.raises(UsageError, match="no clips in split"):
        train(_cfg(small_h5, tmp_path / "x", split="nonexistent"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, data: str, out: str) -> None:
    import os

    import gsavl_cli.commands.train as T

    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    original = T._train_epoch

    def record(model, *args, **kwargs):
        result = original(model, *args, **kwargs)
        params = {k: v.detach().clone() for k, v in model.module.named_parameters()}
        torch.save(params, Path(out) / f"rank{rank}.pt")
        return result

    T._train_epoch = record
    try:
        train(_cfg(Path(data), Path(out), epochs=1, max_steps=2))
    finally:
        torch.distributed.destroy_process_group()


def test_ddp_two_gloo_processes_end_identical(small_h5, tmp_path):
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(small_h5), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    for k in r0:
        torch.testing.assert_close(r0[k], r1[k], rtol=0, atol=0, msg=k)
    saved = _weights(tmp_path / "last.pt")
    assert all(torch.equal(saved[k], v) for k, v in r0.items())  # rank 0 saved the weights both ranks hold


@pytest.mark.parametrize("preset", ["gsavl", "ezvsl"])
def test_checkpoint_audio_window_gives_the_predictor_the_training_features(small_h5, tmp_path, preset):
    """The window recorded at training makes the Predictor compute, from the waveform, exactly
    the features training read from the store (EZ-VSL: the 3 s spectrogram, not the VGGish window)."""
    from gsavl_cli.data.audio_input import audio_input
    from gsavl_cli.io.store import open_store

    cfg = _cfg(small_h5, tmp_path / preset, model=config_from_preset(preset, image_size=64), epochs=1, max_steps=1)
    config = load_checkpoint(train(cfg)).config
    name = "vggish" if preset == "gsavl" else "spectrogram"
    with open_store(small_h5) as store:
        item = store.read(store.ids[0], ("waveform", name))
    torch.testing.assert_close(
        audio_input(item["waveform"], None, config), torch.from_numpy(item[name]), rtol=0, atol=1e-4
    )


def test_a_tied_contrastive_loss_is_flagged_and_the_cli_warns(tmp_path):
    """Identical clips: every audio scores every frame alike, the loss is exactly 2 ln B and
    stays there. The epoch log says so and `gsavl train` warns (the demo's failure mode)."""
    import math

    import numpy as np
    from typer.testing import CliRunner

    from gsavl_cli.cli import app
    from gsavl_cli.io.store import ClipRecord, StoreWriter

    frame = np.random.default_rng(0).integers(0, 255, (1, 64, 64, 3), dtype=np.uint8)
    data = tmp_path / "same.h5"
    with StoreWriter(data, make_settings("avsbench-s4")) as writer:  # no augmentation: the frames stay identical
        for i in range(4):
            writer.write(
                ClipRecord(
                    f"c{i}",
                    frame,
                    [0.0],
                    np.zeros(16000, np.float32),
                    vggish=np.zeros((1, 96, 64), np.float32),
                    spectrogram=np.zeros((257, 200), np.float32),
                    meta={"split": "train"},
                )
            )
    train(_cfg(data, tmp_path / "run", epochs=2))
    logs = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(log["tied"] and abs(log["loss"] - 2 * math.log(4)) < 1e-3 for log in logs)
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--dataset",
            str(data),
            "--out",
            str(tmp_path / "cli"),
            "--model",
            "ezvsl",
            "--image-size",
            "64",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--workers",
            "0",
            "--no-pretrained",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "stopped learning" in result.output


def test_a_learning_run_is_not_flagged_as_tied(small_h5, tmp_path):
    train(_cfg(small_h5, tmp_path / "run", epochs=2, max_steps=None, lr=1e-3))
    logs = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert not any(log["tied"] for log in logs), [log["loss"] for log in logs]


def _frozen_cfg(data: Path, out: Path, **kw) -> TrainConfig:
    """The demo's recipe in small: fixed stand-in trunks, trained projections."""
    model = config_from_preset(
        "gsavl", image_size=65, dim=16, beta=2.0, freeze_image=True, freeze_audio=True, standardize_audio=True
    )
    return _cfg(data, out, model=model, identity_init=True, max_steps=None, epochs=3, lr=1e-3, **kw)


def test_frozen_trunks_run_once_per_clip_and_train_exactly_as_without_the_cache(small_h5, tmp_path, monkeypatch):
    import gsavl_cli.commands.frozen_trunks as FT

    trunk_calls = []
    made = []
    original_cache_for = FT.trunk_cache_for

    def counting(model, *args):
        cache = original_cache_for(model, *args)
        made.append(cache)
        original = model.image_trunk.forward
        model.image_trunk.forward = lambda x: (trunk_calls.append(len(x)), original(x))[1]
        return cache

    monkeypatch.setattr(FT, "trunk_cache_for", counting)
    cached = train(_frozen_cfg(small_h5, tmp_path / "cached"))
    assert made[0] is not None and made[0].image and made[0].audio
    clips = len(made[0].images)
    assert sum(trunk_calls) == clips  # each clip through the image trunk once, over three epochs
    monkeypatch.setattr(FT, "trunk_cache_for", lambda *args: None)
    plain = train(_frozen_cfg(small_h5, tmp_path / "plain"))
    a, b = _weights(cached), _weights(plain)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    losses = [
        [json.loads(line)["loss"] for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        for run in ("cached", "plain")
    ]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


def test_trunk_cache_only_where_it_is_exact():
    from gsavl_cli.commands.frozen_trunks import trunk_cache_for
    from gsavl_cli.model import build_localizer

    def model(**kw):
        return build_localizer(config_from_preset("gsavl", dim=8, **kw), pretrained=False)

    both = model(freeze_image=True, freeze_audio=True)
    assert (c := trunk_cache_for(both, 10, False, 1)) is not None and c.image and c.audio
    assert (c := trunk_cache_for(both, 10, True, 1)) is not None and not c.image and c.audio  # augmented frames
    assert trunk_cache_for(both, 10, False, 2) is None  # DDP needs the wrapped forward
    assert trunk_cache_for(model(), 10, False, 1) is None  # trainable trunks
    assert (c := trunk_cache_for(both, 10**5, False, 1)) is not None and not c.image  # over the memory budget


def test_checkpoint_every_writes_last_pt_on_schedule_and_at_the_end(small_h5, tmp_path, monkeypatch):
    import gsavl_cli.commands.train as T

    written = []
    original = T.save_checkpoint

    def record(path, model, config, extra=None, **kw):
        written.append((Path(path).name, extra["epoch"]))
        return original(path, model, config, extra=extra, **kw)

    monkeypatch.setattr(T, "save_checkpoint", record)
    train(_cfg(small_h5, tmp_path / "run", epochs=5, checkpoint_every=2))
    assert [e for name, e in written if name == "last.pt"] == [2, 4, 5]
    assert load_checkpoint(tmp_path / "run" / "last.pt").extra["epoch"] == 5
    with pytest.raises(UsageError, match="checkpoint-every"):
        train(_cfg(small_h5, tmp_path / "bad", checkpoint_every=0))
