"""Shared fixtures: a small synthetic world rendered once, and a tiny-clip factory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

from gsavl_cli.data.synthetic import RenderedClip, SyntheticClip, WorldConfig, render_clip, render_world


@pytest.fixture(autouse=True, scope="session")
def _private_homes(tmp_path_factory: pytest.TempPathFactory):
    """No test reads or writes the user's gsavl home or weight cache, and none can download."""
    patch = pytest.MonkeyPatch()
    patch.setenv("GSAVL_HOME", str(tmp_path_factory.mktemp("gsavl-home")))
    patch.delenv("GSAVL_DATA", raising=False)
    patch.setenv("GSAVL_CACHE", str(tmp_path_factory.mktemp("weights-cache")))
    patch.setenv("GSAVL_OFFLINE", "1")
    yield
    patch.undo()


class World(NamedTuple):
    root: Path
    config: WorldConfig
    clips: list[SyntheticClip]


@pytest.fixture(scope="session")
def synthetic_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """A small AVSBench-S4-layout world (8 train, 2 val, 4 test clips), rendered once per session."""
    root = tmp_path_factory.mktemp("world")
    config = WorldConfig(n_train=8, n_val=2, n_test=4, n_classes=4, seed=0)
    return World(root, config, render_world(root, config))


@pytest.fixture(scope="session")
def s4_store(synthetic_world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic world preprocessed as AVSBench S4, one log-mel example per clip (fast to train on)."""
    from gsavl_cli.commands.preprocess import make_settings, run_preprocess
    from gsavl_cli.datasets import discover

    out = tmp_path_factory.mktemp("s4") / "s4.h5"
    layout, clips = discover(synthetic_world.root, "avsbench-s4")
    run_preprocess(clips, out, make_settings(layout, vggish_seconds=0.96))
    return out


@pytest.fixture
def tiny_clip(tmp_path: Path) -> Callable[..., RenderedClip]:
    """Factory: `tiny_clip("name.mp4", seconds=1.0, audio=False, ...)` renders into tmp_path."""

    def make(name: str = "clip.mp4", **options) -> RenderedClip:
        return render_clip(tmp_path / name, **options)

    return make
