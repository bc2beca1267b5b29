"""A segmenter is one registered factory: this file defines two, and the Predictor and `eval` use them by name.

`disc` follows prompts (a disc around each positive point); `whole` takes none (the
whole frame, as a model's own mask head would give one mask per frame), so `eval`
scores it once per frame under its own name, as it does the built-in `model`
segmenter. Nothing in gsavl_cli names either.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gsavl_cli.commands.evaluate import EvalSettings, run_evaluation
from gsavl_cli.console import progress
from gsavl_cli.errors import UsageError
from gsavl_cli.model import build_localizer, config_from_preset, save_checkpoint
from gsavl_cli.predictor import Predictor, SamplerChoice
from gsavl_cli.samplers import Prompts
from gsavl_cli.segment import (
    SEGMENTERS,
    ImageEmbedding,
    SegmentResult,
    make_segmenter,
    register_segmenter,
    unregister_segmenter,
)


class DiscSegmenter:
    """A disc of `radius` pixels around each positive prompt; no weights, no encoder."""

    name = "disc"
    prompted = True
    needs: tuple[str, ...] = ()

    def __init__(self, radius: float = 5.0) -> None:
        self.radius = radius
        self.encoder_calls = 0

    def embed(self, images: list[np.ndarray], batch_size: int = 4) -> list[ImageEmbedding]:
        return [ImageEmbedding(None, im.shape[:2], im.shape[:2]) for im in images]

    def segment_many(
        self, embedding: ImageEmbedding, prompt_sets: list[Prompts], *, mask_choice: str = "single", heatmap: Any = None
    ) -> list[SegmentResult]:
        ys, xs = np.mgrid[: embedding.original_size[0], : embedding.original_size[1]]
        results = []
        for prompts in prompt_sets:
            mask = np.zeros(embedding.original_size, bool)
            for x, y in prompts.points[prompts.labels == 1]:
                mask |= (xs - x) ** 2 + (ys - y) ** 2 <= self.radius**2
            results.append(SegmentResult(mask, 1.0, candidates=1, choice_index=0))
        return results


class WholeFrame(DiscSegmenter):
    """The whole frame, whatever the prompts: a segmenter that takes none."""

    name = "whole"
    prompted = False

    def segment_many(self, embedding, prompt_sets, *, mask_choice="single", heatmap=None):
        return [SegmentResult(np.ones(embedding.original_size, bool), 1.0, 1, 0) for _ in prompt_sets]


@contextmanager
def registered() -> Iterator[None]:
    register_segmenter("disc", lambda device, **_: DiscSegmenter())
    register_segmenter("whole", lambda device, **_: WholeFrame())
    try:
        yield
    finally:
        unregister_segmenter("disc")
        unregister_segmenter("whole")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = config_from_preset("gsavl", image_size=64, dim=16)
    path = tmp_path_factory.mktemp("seg") / "random.pt"
    save_checkpoint(path, build_localizer(config, pretrained=False), config)
    return path


def test_the_predictor_builds_a_registered_segmenter_by_name(checkpoint, tiny_clip):
    clip = tiny_clip(seconds=1.0)
    with registered():
        predictor = Predictor.from_checkpoint(checkpoint, segmenter="disc")
        assert isinstance(predictor.segmenter, DiscSegmenter) and "disc" in SEGMENTERS
        predictor.set_clip(clip.frames[0], clip.waveform, key="c")
        found = predictor.predict("av", "grid", seed=0)
    assert (found.segmenter, found.sampler) == ("disc", "grid")
    (x, y), radius = found.points[0], predictor.segmenter.radius
    assert found.mask[int(round(y)), int(round(x))] and found.mask.sum() <= np.pi * (radius + 1) ** 2
    with pytest.raises(UsageError, match="unknown segmenter 'disc'"):
        make_segmenter("disc")


def test_eval_scores_a_segmenter_that_takes_no_prompts_once_per_frame(checkpoint, s4_store, tmp_path):
    def run(segmenter: str) -> list[dict[str, Any]]:
        settings = EvalSettings(
            data=s4_store,
            checkpoint=checkpoint,
            out=tmp_path / segmenter,
            maps=("av", "obj"),
            samplers=[SamplerChoice("naive"), SamplerChoice("grid")],
            segmenter=segmenter,
            pretrained_prior=False,
            batch_size=2,
        )
        return run_evaluation(settings, progress=progress)["results"]

    with registered():
        prompted, unprompted = run("disc"), run("whole")
    assert [(r["map"], r["sampler"], r["segmenter"]) for r in prompted] == [
        ("av", None, None),
        ("av", "naive", "disc"),
        ("av", "grid", "disc"),
        ("obj", None, None),
        ("obj", "naive", "disc"),
        ("obj", "grid", "disc"),
    ]
    assert [(r["map"], r["sampler"], r["segmenter"]) for r in unprompted] == [
        ("av", None, None),
        ("av", "whole", "whole"),  # one mask per frame, named after what made it
        ("obj", None, None),
    ]
