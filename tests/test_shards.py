"""Sharded preprocess: 3 shards merged == one run (ids, every array, training and evaluation), resumable shards, submitit."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from gsavl_cli.cli import app
from gsavl_cli.commands.shards import select_shard, shard_of
from gsavl_cli.datasets import ClipSource
from gsavl_cli.io.store import open_store

runner = CliRunner()


def gsavl(*args: object, code: int = 0):
    result = runner.invoke(app, ["-q", *map(str, args)])
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    return result


@pytest.fixture(scope="module")
def single(synthetic_world, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("single") / "one.h5"
    gsavl("preprocess", synthetic_world.root, "-o", out, "--workers", "1", "--no-register")
    return out


def _shards(root: Path, folder: Path, count: int = 3) -> list[Path]:
    parts = [folder / f"part-{k}.h5" for k in range(count)]
    for k, part in enumerate(parts):
        gsavl("preprocess", root, "-o", part, "--shard", f"{k}/{count}", "--workers", "1")
    return parts


def _assert_same_store(a: Path, b: Path) -> None:
    with open_store(a) as x, open_store(b) as y:
        assert x.ids == y.ids and x.settings == y.settings
        for clip_id in x.ids:
            left, right = x[clip_id], y[clip_id]
            assert left.keys() == right.keys()
            for name in left:
                np.testing.assert_array_equal(left[name], right[name], err_msg=f"{clip_id}/{name}")
            assert x.meta(clip_id) == y.meta(clip_id)


def test_the_shard_of_a_clip_depends_only_on_its_id():
    ids = [f"clip_{i:04d}" for i in range(400)]
    shards = [shard_of(i, 4) for i in ids]
    assert shards == [shard_of(i, 4) for i in reversed(ids)][::-1]  # order-free
    assert all(60 < shards.count(k) < 140 for k in range(4))  # spread
    assert shard_of("clip_0000", 4) == int.from_bytes(hashlib.sha256(b"clip_0000").digest()[:8], "little") % 4
    clips = [ClipSource(clip_id=i) for i in ids]
    for k in range(4):  # a clip's shard does not depend on where it stands in the list
        wanted = {i for i, s in zip(ids, shards) if s == k}
        assert (
            {c.clip_id for c in select_shard(clips, k, 4)}
            == wanted
            == {c.clip_id for c in select_shard(clips[::-1], k, 4)}
        )


def test_three_shards_merged_equal_one_run_and_train_and_evaluate_alike(single, synthetic_world, tmp_path):
    parts = _shards(synthetic_world.root, tmp_path)
    with open_store(parts[0]) as p0, open_store(single) as whole:
        assert 0 < len(p0) < len(whole)
    merged = tmp_path / "merged.h5"
    summary = json.loads(gsavl("merge", merged, *parts, "--json").stdout)
    assert summary["clips"] == len(synthetic_world.clips) and summary["missing"] == {}
    _assert_same_store(single, merged)
    results = {}
    for name, store in (("single", single), ("merged", merged)):
        gsavl(
            "train",
            "--dataset",
            store,
            "--out",
            tmp_path / f"run-{name}",
            "--no-pretrained",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--max-steps",
            "2",
            "--workers",
            "0",
        )
        out = json.loads(
            gsavl(
                "eval",
                "--dataset",
                store,
                "--checkpoint",
                tmp_path / f"run-{name}" / "last.pt",
                "--segmenter",
                "region",
                "--map",
                "av",
                "--sampler",
                "prob",
                "--out",
                tmp_path / f"eval-{name}",
                "--json",
            ).stdout
        )
        results[name] = out["results"]
    assert results["single"] == results["merged"]


def test_a_killed_shard_is_refused_by_merge_and_completes_when_rerun(single, synthetic_world, tmp_path, monkeypatch):
    parts = [tmp_path / f"part-{k}.h5" for k in range(3)]
    for k in (0, 2):
        gsavl("preprocess", synthetic_world.root, "-o", parts[k], "--shard", f"{k}/3", "--workers", "1")
    original, written = h5py.Group.create_dataset, []

    def killed_at_the_second_clip(self, name, *a, **k):
        if name == "frames":
            written.append(name)
            if len(written) == 2:
                raise KeyboardInterrupt  # what Ctrl-C or a scheduler's SIGTERM does to the writer
        return original(self, name, *a, **k)

    monkeypatch.setattr(h5py.Group, "create_dataset", killed_at_the_second_clip)
    runner.invoke(
        app, ["-q", "preprocess", str(synthetic_world.root), "-o", str(parts[1]), "--shard", "1/3", "--workers", "1"]
    )
    monkeypatch.undo()
    refused = runner.invoke(app, ["merge", str(tmp_path / "m.h5"), *map(str, parts)])
    assert (
        refused.exit_code == 2 and "part-1.h5" in refused.output and "--shard 1/3" in " ".join(refused.output.split())
    )
    assert not (tmp_path / "m.h5").exists()
    gsavl("preprocess", synthetic_world.root, "-o", parts[1], "--shard", "1/3", "--workers", "1")
    gsavl("merge", tmp_path / "m.h5", *parts)
    _assert_same_store(single, tmp_path / "m.h5")


@pytest.mark.parametrize("which", ["twice", "missing", "foreign"])
def test_merge_refuses_overlapping_missing_or_foreign_parts(single, synthetic_world, tmp_path, which):
    parts = _shards(synthetic_world.root, tmp_path, count=2)
    given = {"twice": [parts[0], parts[0], parts[1]], "missing": [parts[0]], "foreign": [parts[0], single]}[which]
    result = runner.invoke(app, ["merge", str(tmp_path / "m.h5"), *map(str, given)])
    expected = {"twice": "given twice", "missing": "missing from the parts", "foreign": "is not a shard"}[which]
    assert result.exit_code == 2 and expected in " ".join(result.output.split()), result.output
    assert not (tmp_path / "m.h5").exists()


def test_the_local_executor_runs_every_shard_through_submitit_and_merges(single, synthetic_world, tmp_path):
    pytest.importorskip("submitit")
    out = tmp_path / "cluster.h5"
    summary = json.loads(
        gsavl(
            "preprocess",
            synthetic_world.root,
            "-o",
            out,
            "--executor",
            "local",
            "--shards",
            "2",
            "--no-register",
            "--json",
        ).stdout
    )
    assert summary["clips"] == len(synthetic_world.clips) and summary["parts"] == 2
    _assert_same_store(single, out)
    assert sorted(p.name for p in (tmp_path / "cluster.h5.parts").glob("part-*.h5")) == ["part-0.h5", "part-1.h5"]
