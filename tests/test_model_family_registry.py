"""A model family is one registered object: this file defines one, and train -> save -> eval/localize run on it.

The "toy" family below (a strided conv for the image, a linear layer on the mean log-mel
example for the audio, their cosine map as the heatmap) is registered here, outside the
package, with its own configuration class, preset, training recipe and inference
adapter. Nothing in gsavl_cli names it: `gsavl train --model toy` trains it through the
shared loop (validating through the same Predictor as `eval`), the checkpoint names
its family, and `eval`, `localize` and `Predictor.from_checkpoint` rebuild it from the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from typer.testing import CliRunner

from gsavl_cli import validation
from gsavl_cli.cli import app
from gsavl_cli.commands.train import TrainConfig, train_ids
from gsavl_cli.data.clips import AudioVisualClips, collate
from gsavl_cli.datasets import store_dataset
from gsavl_cli.errors import UsageError
from gsavl_cli.io import media
from gsavl_cli.model import (
    PRESETS,
    ModelFamily,
    Recipe,
    family_for,
    get_family,
    list_families,
    load_checkpoint,
    mil_contrastive_loss,
    register_family,
    register_preset,
    unregister_family,
)
from gsavl_cli.predictor import Predictor
from gsavl_cli.training_health import tie_loss

runner = CliRunner()


@dataclass
class ToyConfig:
    """Everything that shapes a toy model (stored in its checkpoints)."""

    dim: int = 8
    image_size: int = 32
    tau: float = 0.07
    audio_encoder = "vggish"  # the front end the data pipeline must produce (a class attribute: not stored)

    @property
    def audio_window(self) -> float | None:
        """The whole clip's audio (no window recorded)."""
        return None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ToyConfig:
        return cls(**data)


class ToyLocalizer(nn.Module):
    """Image cells [B,dim,h,w] and a sound vector [B,dim]; their cosine per cell is the heatmap."""

    def __init__(self, config: ToyConfig) -> None:
        super().__init__()
        self.config = config
        self.image = nn.Conv2d(3, config.dim, kernel_size=8, stride=8)
        self.sound = nn.Linear(96 * 64, config.dim)

    def forward(self, images: torch.Tensor, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, ...]:
        valid = (torch.arange(audio.shape[1], device=audio.device)[None] < lengths[:, None]).float()
        mean = (audio.flatten(2) * valid[..., None]).sum(1) / lengths[:, None].clamp(min=1)
        return F.normalize(self.image(images), dim=1), F.normalize(self.sound(mean), dim=1)

    def heatmap(self, images: torch.Tensor, audio: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        cells, sound = self(images, audio, lengths)
        return torch.einsum("bchw,bc->bhw", cells, sound)


def toy_step(
    model: nn.Module, batch: dict[str, torch.Tensor], device: str, autocast: torch.autocast
) -> tuple[torch.Tensor, int]:
    """Every audio against every image, max over cells: the MIL contrastive loss."""
    cells, sound = model(batch["images"].to(device), batch["audio"].to(device), batch["lengths"].to(device))
    similarity = torch.einsum("vchw,ac->avhw", cells, sound)
    return mil_contrastive_loss(similarity, model.config.tau), len(cells)


class ToyFamily(ModelFamily):
    name = "toy"
    config_class = ToyConfig
    outputs = ("av",)
    default_segmenter = "region"  # no SAM weights offline

    def build(self, config: ToyConfig) -> nn.Module:
        return ToyLocalizer(config)

    def recipe(self, cfg: TrainConfig, world: int) -> Recipe:
        cfg.lr = 1e-3 if cfg.lr is None else cfg.lr
        ids = train_ids(cfg.data, cfg.split, cfg.subset, cfg.exclude)
        transform = store_dataset(cfg.data).test_transform(cfg.model.image_size)
        dataset = AudioVisualClips(cfg.data, ids, cfg.model.audio_encoder, transform)
        model = ToyLocalizer(cfg.model).to(cfg.device)
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        val, device = cfg.val, cfg.device
        val_ids = validation.validation_ids(val, cfg.val_split) if val is not None else []
        validate = (lambda m: validation.heatmap_metrics(m, val, val_ids, device)) if val_ids else None
        return Recipe(dataset, collate, model, optimizer, toy_step, validate, "ciou", chance_loss=tie_loss)

    def predict(
        self, model: nn.Module, images: torch.Tensor, audio: torch.Tensor, lengths: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        return {"av": model.heatmap(images, audio, lengths)}


@contextmanager
def registered() -> Iterator[ModelFamily]:
    """The toy family and its preset `toy`, for the block only, so no other test sees them."""
    family = ToyFamily()
    register_family(family)
    register_preset("toy")(ToyConfig)
    try:
        yield family
    finally:
        unregister_family(family.name)
        PRESETS.pop("toy", None)


def gsavl(*args: object, code: int = 0):
    result = runner.invoke(app, ["-q", *map(str, args)])
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    return result


class ToyRun(NamedTuple):
    store: Path
    checkpoint: Path
    epochs: list[dict[str, Any]]


@pytest.fixture(scope="module")
def toy_run(s4_store: Path, tmp_path_factory: pytest.TempPathFactory) -> ToyRun:
    """`gsavl train --model toy` for one epoch on the synthetic S4 store, validating on its test split."""
    run = tmp_path_factory.mktemp("toy") / "run"
    with registered():
        trained = gsavl(
            "train",
            "--dataset",
            s4_store,
            "--model",
            "toy",
            "--out",
            run,
            "--epochs",
            1,
            "--batch-size",
            4,
            "--workers",
            0,
            "--val",
            s4_store,
            "--val-split",
            "test",
            "--json",
        )
    printed = json.loads(trained.stdout)
    return ToyRun(s4_store, Path(printed["checkpoint"]), printed["epochs"])


@pytest.fixture
def toy_family() -> Iterator[ModelFamily]:
    with registered() as family:
        yield family


def test_train_saves_a_checkpoint_that_names_the_family(toy_run, toy_family):
    (epoch,) = toy_run.epochs
    assert epoch["best"] and 0.0 <= epoch["val"]["ciou"] <= 1.0  # validated through the Predictor
    assert toy_run.checkpoint.name == "best.pt"
    loaded = load_checkpoint(toy_run.checkpoint)
    assert loaded.family == "toy" and isinstance(loaded.model, ToyLocalizer) and loaded.config == ToyConfig()
    assert family_for(loaded.config) is toy_family and get_family("toy") is toy_family
    config = json.loads((toy_run.checkpoint.parent / "config.json").read_text())
    assert config["lr"] == 1e-3 and config["model"] == ToyConfig().to_dict()  # the recipe's default


def test_eval_and_localize_rebuild_it_from_the_checkpoint(toy_run, toy_family, synthetic_world, tmp_path):
    summary = json.loads(
        gsavl(
            "eval",
            "--dataset",
            toy_run.store,
            "--checkpoint",
            toy_run.checkpoint,
            "--map",
            "av",
            "--sampler",
            "prob",
            "--out",
            tmp_path / "eval",
            "--json",
        ).stdout
    )
    assert summary["settings"]["segmenter"] == "region"  # the family's default segmenter
    assert [(r["map"], r["sampler"], r["segmenter"]) for r in summary["results"]] == [
        ("av", None, None),
        ("av", "prob", "region"),
    ]
    assert all(0.0 <= r["miou"] <= 1.0 for r in summary["results"])
    clip = next(c for c in synthetic_world.clips if c.split == "test")
    shown = json.loads(
        gsavl(
            "localize",
            clip.video,
            "--checkpoint",
            toy_run.checkpoint,
            "--map",
            "av",
            "-o",
            tmp_path / "m.png",
            "--json",
        ).stdout
    )
    assert (shown["segmenter"], shown["sampler"], shown["map"]) == ("region", "prob", "av")
    predictor = Predictor.from_checkpoint(toy_run.checkpoint)
    assert predictor.family is toy_family and isinstance(predictor.model, ToyLocalizer)
    predictor.set_clip(media.read_frames(clip.video, [0.0])[0], media.read_audio(clip.video), key=clip.video.stem)
    found = predictor.predict("av", "prob", seed=123)
    np.testing.assert_array_equal(found.mask, media.read_image(tmp_path / "m.png", mode="GRAY") > 0)
    np.testing.assert_allclose(found.points, np.array(shown["points"]), atol=0.01)


def test_a_segmenter_the_family_cannot_feed_is_refused(toy_run, toy_family, synthetic_world, tmp_path):
    clip = next(c for c in synthetic_world.clips if c.split == "test")
    refused = gsavl(
        "localize",
        clip.video,
        "--checkpoint",
        toy_run.checkpoint,
        "--segmenter",
        "model",
        "-o",
        tmp_path / "m.png",
        code=2,
    )
    assert "a toy model has no mask head of its own" in " ".join(refused.output.split())


def test_the_family_is_gone_after_its_tests_and_its_checkpoints_say_so(toy_run):
    assert "toy" not in [f.name for f in list_families()]
    with pytest.raises(UsageError, match="unknown model family 'toy'"):
        load_checkpoint(toy_run.checkpoint)
    with pytest.raises(UsageError, match="no model family is registered for ToyConfig"):
        family_for(ToyConfig())


def test_registration_checks_the_object():
    class Nameless(ModelFamily):
        config_class = ToyConfig

    class Configless(ToyFamily):
        config_class = object

    class Impostor(ToyFamily):
        name = "localizer"

    with pytest.raises(ValueError, match="no name"):
        register_family(Nameless)
    with pytest.raises(ValueError, match="to_dict and from_dict"):
        register_family(Configless)
    with pytest.raises(ValueError, match="already registered"):
        register_family(Impostor)
    assert type(get_family("localizer")).__name__ == "LocalizerFamily"
