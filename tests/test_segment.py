"""Segmenters: SAM on a tiny random SAM (loading, shapes, embedding reuse, mask choice) and the region segmenter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor

from gsavl_cli import segment
from gsavl_cli.errors import UsageError, WeightsError
from gsavl_cli.samplers import Prompts, sample
from gsavl_cli.segment import RegionSegmenter, SamSegmenter, load_sam
from gsavl_cli.segment.tiny import build_tiny_sam

HEIGHT, WIDTH = 48, 80  # a non-square frame


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread, above all on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sam") / "tiny.pth"
    torch.save(build_tiny_sam(seed=1).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def sam(tiny_path: Path) -> torch.nn.Module:
    return load_sam("tiny", tiny_path)


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def heatmap() -> np.ndarray:
    rows, cols = np.mgrid[:HEIGHT, :WIDTH]
    heat = np.exp(-((cols - 50) ** 2 + (rows - 20) ** 2) / 60.0) + 0.05
    return (heat / heat.max()).astype(np.float32)


def _prompts(*xy: tuple[int, int]) -> Prompts:
    return Prompts(np.array(xy, np.float32), np.ones(len(xy), np.int64))


def _soft_iou(heat: np.ndarray, mask: np.ndarray) -> float:
    return float(np.minimum(heat, mask).sum() / np.maximum(heat, mask).sum())


def test_tiny_sam_round_trips_through_a_file(sam: torch.nn.Module) -> None:
    reference = build_tiny_sam(seed=1).state_dict()
    loaded = sam.state_dict()
    assert reference.keys() == loaded.keys()
    assert all(torch.equal(reference[k], loaded[k]) for k in reference)
    assert not sam.training and not any(p.requires_grad for p in sam.parameters())
    assert not torch.equal(
        build_tiny_sam(seed=2).state_dict()["mask_decoder.iou_token.weight"], loaded["mask_decoder.iou_token.weight"]
    )


def test_load_errors(tiny_path: Path, tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="is not a SAM vit_b checkpoint"):
        load_sam("vit_b", tiny_path)
    with pytest.raises(WeightsError, match="tiny SAM checkpoint not found"):
        load_sam("tiny", tmp_path / "missing.pth")
    with pytest.raises(WeightsError):
        load_sam("tiny")
    with pytest.raises(UsageError, match="unknown SAM architecture 'vit_x'") as err:
        load_sam("vit_x")
    assert "vit_h, vit_l, vit_b" in err.value.hint


@pytest.mark.parametrize("shape", [(HEIGHT, WIDTH), (70, 40)])
def test_masks_come_back_at_the_frames_size(sam: torch.nn.Module, shape: tuple[int, int]) -> None:
    segmenter = SamSegmenter(sam)
    image = np.full((*shape, 3), 128, np.uint8)
    (embedding,) = segmenter.embed([image])
    assert embedding.original_size == shape and max(embedding.input_size) == 64
    assert embedding.features.shape == (1, 32, 8, 8)
    heat = np.random.default_rng(0).random(shape).astype(np.float32)
    for choice in segment.MASK_CHOICES:
        result = segmenter.segment(embedding, _prompts((5, 7), (20, 3)), mask_choice=choice, heatmap=heat)
        assert result.mask.shape == shape and result.mask.dtype == bool
        assert result.candidates == (1 if choice == "single" else 3) and 0 <= result.choice_index < result.candidates
    assert torch.is_grad_enabled()  # inference_mode does not leak


def test_one_encoder_pass_serves_many_prompt_sets(sam: torch.nn.Module, frame: np.ndarray) -> None:
    segmenter = SamSegmenter(sam)
    passes = []
    handle = sam.image_encoder.register_forward_hook(lambda module, args, out: passes.append(out.shape[0]))
    try:
        (embedding,) = segmenter.embed([frame])
        for xy in [(10, 10), (40, 30), (70, 5)]:
            segmenter.segment(embedding, _prompts(xy))
        segmenter.segment_many(embedding, [_prompts((1, 1)), _prompts((2, 2), (3, 3))])
        assert passes == [1] and segmenter.encoder_calls == 1
        segmenter.embed([frame] * 5, batch_size=2)
        assert passes == [1, 2, 2, 1] and segmenter.encoder_calls == 6
    finally:
        handle.remove()


def test_batched_decoding_equals_one_at_a_time(sam: torch.nn.Module, frame: np.ndarray, heatmap: np.ndarray) -> None:
    segmenter = SamSegmenter(sam)
    (embedding,) = segmenter.embed([frame])
    sets = [_prompts((10, 10)), _prompts((40, 30), (45, 33)), _prompts((70, 5)), _prompts((1, 40), (2, 2))]
    batched = segmenter.segment_many(embedding, sets, mask_choice="heatmap", heatmap=heatmap)
    for prompts, result in zip(sets, batched):
        alone = segmenter.segment(embedding, prompts, mask_choice="heatmap", heatmap=heatmap)
        assert np.array_equal(alone.mask, result.mask) and alone.choice_index == result.choice_index
        assert alone.score == pytest.approx(result.score, abs=1e-5)


def test_mask_choice_against_segment_anythings_predictor(
    sam: torch.nn.Module, frame: np.ndarray, heatmap: np.ndarray
) -> None:
    segmenter = SamSegmenter(sam)
    (embedding,) = segmenter.embed([frame])
    predictor = SamPredictor(sam)
    predictor.set_image(frame)
    assert torch.allclose(predictor.features, embedding.features, atol=1e-5)
    for xy in [(10, 10), (40, 30), (70, 5), (60, 40)]:
        coords, labels = np.array([xy], np.float32), np.array([1])
        masks, ious, _ = predictor.predict(coords, labels, multimask_output=True)
        single, single_iou, _ = predictor.predict(coords, labels, multimask_output=False)
        by_score = segmenter.segment(embedding, _prompts(xy), mask_choice="score")
        assert by_score.choice_index == int(np.argmax(ious)) and by_score.score == pytest.approx(
            float(ious.max()), abs=1e-5
        )
        assert np.array_equal(by_score.mask, masks[by_score.choice_index])
        by_heat = segmenter.segment(embedding, _prompts(xy), mask_choice="heatmap", heatmap=heatmap)
        assert by_heat.choice_index == int(np.argmax([_soft_iou(heatmap, m) for m in masks]))
        assert np.array_equal(by_heat.mask, masks[by_heat.choice_index])
        paper = segmenter.segment(embedding, _prompts(xy))
        assert np.array_equal(paper.mask, single[0]) and paper.score == pytest.approx(float(single_iou[0]), abs=1e-5)


def test_mask_choice_errors(sam: torch.nn.Module, frame: np.ndarray) -> None:
    segmenter = SamSegmenter(sam)
    (embedding,) = segmenter.embed([frame])
    with pytest.raises(UsageError, match="unknown mask choice"):
        segmenter.segment(embedding, _prompts((1, 1)), mask_choice="best")
    with pytest.raises(UsageError, match="needs the heatmap"):
        segmenter.segment(embedding, _prompts((1, 1)), mask_choice="heatmap")
    with pytest.raises(UsageError, match="differ in size"):
        segmenter.segment(embedding, _prompts((1, 1)), mask_choice="heatmap", heatmap=np.zeros((10, 10)))
    with pytest.raises(UsageError, match=r"\[H,W,3\] uint8"):
        segmenter.embed([frame.astype(np.float32)])


def test_region_segmenter_follows_the_prompts() -> None:
    segmenter = RegionSegmenter()
    (embedding,) = segmenter.embed([np.zeros((6, 8, 3), np.uint8)])
    assert embedding.original_size == (6, 8) and segmenter.encoder_calls == 0 and segmenter.name == "region"
    heat = np.zeros((6, 8), np.float32)
    heat[1:3, 1:3] = 1.0  # a hot blob top-left
    heat[3:5, 5:8] = 0.8  # a second, separate warm blob bottom-right
    heat[5, 0] = 0.3  # cold
    left = segmenter.segment_many(embedding, [_prompts((1, 1))], heatmap=heat)[0].mask
    assert left.sum() == 4 and left[1:3, 1:3].all()  # only the connected region holding the prompt
    right = segmenter.segment_many(embedding, [_prompts((6, 4))], heatmap=heat)[0].mask
    assert right.sum() == 6 and right[3:5, 5:8].all()
    both = segmenter.segment_many(embedding, [_prompts((1, 1), (6, 4))], heatmap=heat)[0].mask
    assert both.sum() == 10
    cold = segmenter.segment_many(embedding, [_prompts((0, 5))], heatmap=heat)[0].mask  # below half the peak
    assert cold[5, 0] and cold.sum() == 1  # the level drops to the prompt's value; its region is itself
    negative = Prompts(np.array([[1, 1], [6, 4]]), np.array([1, 0]))
    assert segmenter.segment_many(embedding, [negative], heatmap=heat)[0].mask.sum() == 4


def test_every_positive_prompt_is_inside_the_region_mask() -> None:
    rng = np.random.default_rng(0)
    segmenter = RegionSegmenter()
    for trial in range(20):
        heat = rng.random((30, 40)).astype(np.float32) ** 4
        (embedding,) = segmenter.embed([np.zeros((30, 40, 3), np.uint8)])
        for name in ("naive", "grid", "prob", "peaks"):
            prompts = sample(name, heat, seed=trial, negatives=1)
            mask = segmenter.segment_many(embedding, [prompts], heatmap=heat)[0].mask
            for (x, y), label in zip(prompts.points, prompts.labels):
                assert label == 0 or mask[int(round(y)), int(round(x))], (trial, name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_matches_cpu_shapes(sam: torch.nn.Module, frame: np.ndarray, heatmap: np.ndarray) -> None:
    gpu = SamSegmenter(build_tiny_sam(seed=1), device="cuda")
    assert gpu.bf16
    (embedding,) = gpu.embed([frame])
    result = gpu.segment(embedding, _prompts((40, 20)), mask_choice="heatmap", heatmap=heatmap)
    assert result.mask.shape == (HEIGHT, WIDTH) and np.isfinite(result.score)
    fp32 = SamSegmenter(build_tiny_sam(seed=1), device="cuda", bf16=False)
    cpu = SamSegmenter(build_tiny_sam(seed=1))
    (e_gpu,), (e_cpu,) = fp32.embed([frame]), cpu.embed([frame])
    assert torch.allclose(e_gpu.features.cpu(), e_cpu.features, atol=1e-3)
