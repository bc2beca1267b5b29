"""`eval` under torchrun: clips split across ranks, results merged = the single-process run."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from gsavl_cli.commands.evaluate import EvalSettings, run_evaluation
from gsavl_cli.commands.preprocess import make_settings, run_preprocess
from gsavl_cli.console import progress
from gsavl_cli.datasets import discover
from gsavl_cli.model import build_localizer, config_from_preset, save_checkpoint
from gsavl_cli.predictor import SamplerChoice


@pytest.fixture(scope="module")
def setup(synthetic_world, tmp_path_factory):
    root = tmp_path_factory.mktemp("sharded")
    layout, clips = discover(synthetic_world.root, "avsbench-s4", "test")
    run_preprocess(clips, root / "test.h5", make_settings(layout))
    config = config_from_preset("ezvsl", image_size=64)
    torch.manual_seed(0)
    save_checkpoint(root / "m.pt", build_localizer(config, pretrained=False), config)
    return root


def _run(data: Path, ckpt: Path, out: Path) -> dict:
    settings = EvalSettings(
        data=data,
        checkpoint=ckpt,
        out=out,
        maps=("av",),
        samplers=[SamplerChoice("naive"), SamplerChoice("prob")],
        segmenter="region",
        batch_size=2,
        seed=5,
    )
    return run_evaluation(settings, progress=progress)


def _worker(rank: int, world: int, port: int, root: str) -> None:
    import os

    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    try:
        _run(Path(root) / "test.h5", Path(root) / "m.pt", Path(root) / "sharded")
    finally:
        torch.distributed.destroy_process_group()


def test_sharded_eval_equals_single_process(setup):
    single = _run(setup / "test.h5", setup / "m.pt", setup / "single")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(2, port, str(setup)), nprocs=2, join=True)
    merged = json.loads((setup / "sharded" / "metrics.json").read_text())
    assert merged["settings"]["world_size"] == 2 and merged["settings"]["n_clips"] == single["settings"]["n_clips"] == 4
    key = lambda r: (r["map"], r["sampler"] or "")  # noqa: E731
    for a, b in zip(sorted(single["results"], key=key), sorted(merged["results"], key=key)):
        assert key(a) == key(b) and a["n"] == b["n"] == 4
        for metric in ("miou", "ciou", "pointing_game"):
            assert a[metric] == pytest.approx(b[metric], abs=1e-9), (key(a), metric)
    rows = (setup / "sharded" / "per_sample.csv").read_text().splitlines()
    assert len(rows) == 1 + 4 * 3  # header + 4 clips x (heatmap, naive, prob)
