"""A dataset layout is one registered object: this file defines one, and preprocess -> train -> eval run on it.

The "pairs" layout below (`pairs.csv` listing `clip,split`, each clip a `clipN.mp4` with
its first frame's mask in `clipN.png`) is registered here, outside the package, with
choices no built-in layout makes (bilinear test resize *and* augmented training, a 0.96 s
audio window, its own named dataset and schedule). Nothing in gsavl_cli names it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from torchvision.transforms import v2
from typer.testing import CliRunner

from gsavl_cli.cli import app
from gsavl_cli.data import features
from gsavl_cli.data.synthetic import CLASSES, render_clip
from gsavl_cli.datasets import (
    ClipSource,
    Dataset,
    NamedDataset,
    detect_layout,
    discover,
    get_dataset,
    list_datasets,
    read_metadata_csv,
    register_dataset,
    store_dataset,
    unregister_dataset,
    wanted,
)
from gsavl_cli.errors import UsageError
from gsavl_cli.io.media import write_png
from gsavl_cli.io.store import open_store
from gsavl_cli.model import load_checkpoint

runner = CliRunner()
SPLITS = {"clip0": "train", "clip1": "train", "clip2": "test", "clip3": "test"}


class Pairs(Dataset):
    """`pairs.csv` (clip,split) + `{clip}.mp4` + `{clip}.png`, the mask of the clip's first frame."""

    name = "pairs"
    description = "video + first-frame mask pairs (a test layout)"
    test_interpolation = "bilinear"  # AVSBench's resize ...
    augment = True  # ... with VGGSound's augmentation: no built-in layout pairs them
    segmentation_epochs = 7
    vggish_seconds = 0.96
    store = "pairs"
    named = (NamedDataset("pairs", description, store="pairs", batch_size=2, epochs=1),)

    def detect(self, root: Path) -> bool:
        return (root / "pairs.csv").exists()

    def clips(self, source: Path, split: str = "all", **_: Any) -> list[ClipSource]:
        rows = read_metadata_csv(source / "pairs.csv", {"clip": (("clip",), 0), "split": (("split",), 1)})
        return [
            ClipSource(
                clip_id=row["clip"],
                video=source / f"{row['clip']}.mp4",
                mask_files={0: source / f"{row['clip']}.png"},
                split=row["split"],
            )
            for row in rows
            if wanted(row["split"], split)
        ]


@contextmanager
def registered(layout: Dataset) -> Iterator[Dataset]:
    """`layout` registered for the block only, so no other test sees it."""
    register_dataset(layout)
    try:
        yield layout
    finally:
        unregister_dataset(layout.name)


def gsavl(*args: object, code: int = 0):
    result = runner.invoke(app, ["-q", *map(str, args)])
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    return result


def make_pairs(root: Path) -> None:
    for i, clip in enumerate(SPLITS):
        rendered = render_clip(root / f"{clip}.mp4", seconds=1.0, category=CLASSES[i % len(CLASSES)], seed=i)
        write_png(root / f"{clip}.png", rendered.masks[0])
    (root / "pairs.csv").write_text("clip,split\n" + "".join(f"{c},{s}\n" for c, s in SPLITS.items()))


class PairsRun(NamedTuple):
    root: Path
    store: Path
    checkpoint: Path
    train_transforms: list[tuple[int, Any]]  # (size, transform) of every `train_transform` call during train


@pytest.fixture(scope="module")
def pairs_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PairsRun]:
    """The tree, `gsavl preprocess` (layout detected), `gsavl train --dataset pairs` (by name), in a private home."""
    base = tmp_path_factory.mktemp("pairs")
    root, store, run = base / "tree", base / "pairs.h5", base / "run"
    root.mkdir()
    make_pairs(root)
    layout, calls = Pairs(), []

    def train_transform(size: int = 224) -> Any:
        transform = Pairs.train_transform(layout, size)
        calls.append((size, transform))
        return transform

    layout.train_transform = train_transform  # a spy: what train asked the object for
    with pytest.MonkeyPatch.context() as patch, registered(layout):
        patch.setenv("GSAVL_HOME", str(base / "home"))
        gsavl("preprocess", root, "-o", store, "--workers", "1")
        gsavl("train", "--dataset", "pairs", "--out", run, "--no-pretrained", "--max-steps", "1", "--workers", "0")
        yield PairsRun(root, store, run / "last.pt", calls)


@pytest.fixture
def pairs_layout() -> Iterator[Dataset]:
    with registered(Pairs()) as layout:
        yield layout


def test_preprocess_train_eval_on_a_layout_the_package_does_not_know(pairs_run, pairs_layout, tmp_path):
    assert detect_layout(pairs_run.root) == "pairs"
    with open_store(pairs_run.store) as store:
        assert store.settings["layout"] == "pairs"
        assert store.settings["vggish_seconds"] == 0.96  # the object's audio window
        assert store.ids == sorted(SPLITS) and store.split_ids("test") == ["clip2", "clip3"]
        assert store.read("clip2", ("masks",))["masks"].shape == (1, 48, 64)
    log = [json.loads(line) for line in (pairs_run.checkpoint.parent / "metrics.jsonl").read_text().splitlines()]
    assert len(log) == 1  # the named dataset's schedule: 1 epoch (of batch 2)
    config = json.loads((pairs_run.checkpoint.parent / "config.json").read_text())
    assert (config["epochs"], config["batch_size"]) == (1, 2)
    summary = json.loads(
        gsavl(
            "eval",
            "--dataset",
            pairs_run.store,
            "--checkpoint",
            pairs_run.checkpoint,
            "--out",
            tmp_path / "eval",
            "--segmenter",
            "region",
            "--map",
            "av",
            "--json",
        ).stdout
    )
    assert summary["settings"]["n_clips"] == 2
    assert 0.0 <= summary["results"][0]["miou"] <= 1.0


def test_train_used_the_objects_augmentation_and_recorded_its_interpolation(pairs_run, pairs_layout):
    (size, transform), *rest = pairs_run.train_transforms
    assert not rest and size == 224
    assert any(isinstance(t, v2.RandomCrop) for t in transform.transforms)  # `augment = True`
    assert load_checkpoint(pairs_run.checkpoint).config.test_interpolation == "bilinear"
    assert store_dataset(pairs_run.store) is pairs_layout
    from gsavl_cli.commands.train_segmentation import default_epochs

    assert default_epochs(pairs_run.store) == 7


def test_eval_resizes_as_the_stores_layout_says(pairs_run, pairs_layout, monkeypatch, tmp_path):
    """The checkpoint recorded bilinear; eval follows the registered object, which now says bicubic."""
    seen = []
    original = features.test_transform

    def spy(size: int = 224, interpolation: Any = "bicubic") -> Any:
        seen.append(interpolation)
        return original(size, interpolation)

    monkeypatch.setattr(features, "test_transform", spy)
    monkeypatch.setattr(pairs_layout, "test_interpolation", "bicubic")
    gsavl(
        "eval",
        "--dataset",
        pairs_run.store,
        "--checkpoint",
        pairs_run.checkpoint,
        "--out",
        tmp_path / "eval",
        "--segmenter",
        "region",
        "--map",
        "av",
    )
    assert seen and set(seen) == {"bicubic"}


def test_the_layout_is_gone_after_its_tests_and_its_stores_say_so(pairs_run, tmp_path):
    assert "pairs" not in [d.name for d in list_datasets()]
    assert detect_layout(pairs_run.root) == "folder"
    with pytest.raises(UsageError, match="unknown dataset layout 'pairs'") as error:
        get_dataset("pairs")
    assert error.value.hint.startswith("registered layouts: folder, avsbench-s4, avsbench-ms3")
    with pytest.raises(UsageError, match="unknown dataset layout 'pairs'"):
        discover(pairs_run.root, "pairs")
    refused = gsavl("train", "--dataset", pairs_run.store, "--out", tmp_path / "r", "--no-pretrained", code=2)
    assert "unknown dataset layout 'pairs'" in refused.output


def test_registration_checks_the_object():
    class Nameless(Dataset):
        pass

    class Blurry(Pairs):
        test_interpolation = "nearest"

    with pytest.raises(ValueError, match="no name"):
        register_dataset(Nameless)
    with pytest.raises(ValueError, match="test_interpolation"):
        register_dataset(Blurry)

    class Impostor(Pairs):
        name = "folder"

    with pytest.raises(ValueError, match="already registered"):
        register_dataset(Impostor)
    assert type(get_dataset("folder")).__name__ == "Folder"
