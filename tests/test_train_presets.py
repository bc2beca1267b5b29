"""What `gsavl train --dataset --model` resolves to before the loop: preset, schedule, run folder, subset."""

from __future__ import annotations

from pathlib import Path

import pytest

from gsavl_cli.commands.train_presets import default_run_folder, default_subset, resolve_preset
from gsavl_cli.datasets import LOCALIZER_BATCH, LOCALIZER_EPOCHS, train_preset
from gsavl_cli.errors import UsageError, WeightsError


def test_a_localizer_preset_takes_the_options_given_and_the_named_datasets_schedule():
    preset = resolve_preset("x.h5", Path("x.h5"), "ezvsl", {"beta": 0.5, "tau": None})
    assert preset.family.name == "localizer"
    assert preset.model.beta == 0.5 and preset.model.audio_encoder == "resnet18"  # tau: None keeps the preset's
    assert (preset.batch_size, preset.epochs) == (LOCALIZER_BATCH, LOCALIZER_EPOCHS)
    named = resolve_preset("vggsound10k", Path("v.h5"), "gsavl", {})
    assert (named.batch_size, named.epochs) == train_preset("vggsound10k")


def test_an_ssl2avs_preset_refuses_the_localizers_options():
    with pytest.raises(UsageError, match="--beta, --freeze-image"):
        resolve_preset("x.h5", Path("x.h5"), "ssl2avs-tiny", {"beta": 0.1, "freeze_image": True, "tau": None})
    with pytest.raises(UsageError, match="model preset"):
        resolve_preset("x.h5", Path("x.h5"), "nope", {})


def test_the_run_folder_is_named_after_the_file_or_the_dataset(tmp_path):
    assert default_run_folder("data/s4.h5", Path("data/s4.h5")) == Path("runs/s4")
    assert default_run_folder("vggsound10k", tmp_path / "videos.h5") == Path("runs/vggsound10k")


def test_a_named_datasets_subset_is_its_published_list(tmp_path, monkeypatch):
    monkeypatch.setenv("GSAVL_CACHE", str(tmp_path))
    monkeypatch.setenv("GSAVL_OFFLINE", "1")
    assert default_subset("s4.h5") is None and default_subset("vggss") is None
    with pytest.raises(WeightsError):  # offline with nothing cached: the CLI says so and trains on every clip
        default_subset("vggsound10k", progress=False)
