"""The sampler registry: the paper's samplers on hand-built heatmaps, options, errors, plugins."""

from __future__ import annotations

import importlib.metadata
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from gsavl_cli import samplers
from gsavl_cli.errors import GsavlError, UsageError
from gsavl_cli.samplers import Prompts, make_generator, sample


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A private copy of the registry, so runtime registrations do not leak into other tests."""
    monkeypatch.setattr(samplers, "_REGISTRY", dict(samplers._REGISTRY))


def _xy(prompts: Prompts) -> list[tuple[int, int]]:
    return [(int(x), int(y)) for x, y in prompts.points]


def _gaussian(height: int, width: int, centres: list[tuple[int, int, float]], sigma: float = 5.0) -> np.ndarray:
    rows, cols = np.mgrid[:height, :width]
    return sum(a * np.exp(-((cols - x) ** 2 + (rows - y) ** 2) / (2 * sigma**2)) for x, y, a in centres)


def test_prompts_types_len_and_concat() -> None:
    a = Prompts(np.array([[1, 2]]), np.array([1]))
    b = Prompts(torch.tensor([[3.0, 4.0], [5.0, 6.0]]), torch.tensor([0, 0]))
    both = a.concat(b)
    assert both.points.dtype == np.float32 and both.labels.dtype == np.int64
    assert len(both) == 3 and both.points.tolist() == [[1, 2], [3, 4], [5, 6]] and both.labels.tolist() == [1, 0, 0]


def test_naive_is_the_argmax_as_x_y() -> None:
    heat = np.zeros((10, 12), np.float32)
    heat[3, 5] = 1.0
    heat[7, 1] = 0.9
    prompts = sample("naive", heat)
    assert _xy(prompts) == [(5, 3)] and prompts.labels.tolist() == [1]


def test_naive_ties_go_to_the_first_pixel_in_row_major_order() -> None:
    heat = np.zeros((10, 12), np.float32)
    for row, col in [(4, 1), (2, 9), (2, 7), (8, 0)]:
        heat[row, col] = 1.0
    assert _xy(sample("naive", heat)) == [(7, 2)]


def test_grid_takes_the_best_neighbour_at_dist() -> None:
    heat = np.zeros((50, 50), np.float32)
    heat[25, 25] = 1.0
    heat[35, 15] = 0.7  # dy=+10, dx=-10: the best neighbour at the default dist
    heat[15, 25] = 0.5
    heat[30, 20] = 0.9  # 5 px away: only a neighbour with dist=5
    assert _xy(sample("grid", heat)) == [(25, 25), (15, 35)]
    assert _xy(sample("grid", heat, dist=5)) == [(25, 25), (20, 30)]
    assert _xy(sample("grid", heat, dist="5")) == [(25, 25), (20, 30)]  # CLI strings are converted


def test_grid_clamps_neighbours_to_the_image_in_a_corner() -> None:
    heat = np.zeros((30, 30), np.float32)
    heat[0, 0] = 1.0
    heat[0, 10] = 0.8  # (dx=+10, dy=-10) clamped to row 0
    heat[10, 10] = 0.5
    assert _xy(sample("grid", heat)) == [(0, 0), (10, 0)]
    heat[29, 29], heat[0, 0] = 2.0, 0.0  # bottom-right corner: (dx=-10, dy=+10) clamps to (19, 29)
    heat[29, 19] = 1.5
    assert _xy(sample("grid", heat)) == [(29, 29), (19, 29)]


def _grid_reference(heat: np.ndarray, dist: int) -> list[tuple[int, int]]:
    """The grid rule written out from its description (docs/results.md, "Conventions"), in plain Python.

    Peak = first maximum in row-major order. Candidate columns x-d, x, x+d and rows
    y-d, y, y+d, each clamped to the image; columns outer, rows inner; a candidate at
    the peak's position is skipped; a candidate replaces the best only if strictly
    larger (the best starts empty, so the first candidate always counts).
    """
    height, width = heat.shape
    flat_best = 0
    for i, value in enumerate(heat.ravel().tolist()):
        if value > heat.ravel()[flat_best]:
            flat_best = i
    row, col = divmod(flat_best, width)
    columns = [max(0, col - dist), col, min(width - 1, col + dist)]
    rows = [max(0, row - dist), row, min(height - 1, row + dist)]
    best = None
    for c in columns:
        for r in rows:
            if (r, c) == (row, col):
                continue
            if best is None or heat[r, c] > heat[best]:
                best = (r, c)
    return [(col, row)] + ([] if best is None else [(best[1], best[0])])


@pytest.mark.parametrize("seed", range(6))
def test_grid_matches_a_plain_python_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    heat = rng.random((23, 31)).astype(np.float32)
    corner = [(0, 0), (0, 30), (22, 0), (22, 30), (1, 15), (11, 29)][seed]
    heat[corner] = 2.0
    dist = int(rng.integers(1, 15))
    assert _xy(sample("grid", heat, dist=dist)) == _grid_reference(heat, dist)


@pytest.mark.parametrize("seed", range(8))
def test_grid_matches_the_reference_on_quantised_maps_full_of_ties(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    height, width = [(7, 7), (10, 10), (1, 5), (5, 1), (3, 40), (12, 9), (2, 2), (30, 30)][seed]
    heat = rng.integers(0, 3, (height, width)).astype(np.float32) / 2  # values 0, 0.5, 1: many ties
    for dist in (1, 2, 5, 10):
        assert _xy(sample("grid", heat, dist=dist)) == _grid_reference(heat, dist), dist


def test_grid_ties_go_to_the_first_candidate_in_column_outer_order() -> None:
    heat = np.zeros((30, 30), np.float32)
    heat[15, 15] = 1.0  # peak (x=15, y=15)
    heat[10, 15] = 0.5  # (dx=0, dy=-5): first in row-major order, but later in the scan
    heat[20, 10] = 0.5  # (dx=-5, dy=+5): the scan reaches dx=-5 first
    assert _xy(sample("grid", heat, dist=5)) == [(15, 15), (10, 20)]
    heat[15, 10] = 0.5  # (dx=-5, dy=0) comes before (dx=-5, dy=+5)
    assert _xy(sample("grid", heat, dist=5)) == [(15, 15), (10, 15)]
    heat[10, 10] = 0.5  # (dx=-5, dy=-5) is the very first candidate
    assert _xy(sample("grid", heat, dist=5)) == [(15, 15), (10, 10)]


def test_grid_a_neighbour_equal_to_the_peak_counts() -> None:
    heat = np.zeros((30, 30), np.float32)
    heat[5, 5] = heat[15, 5] = 1.0  # argmax is (x=5, y=5), the first in row-major order
    heat[5, 15] = 0.9
    assert _xy(sample("grid", heat)) == [(5, 5), (5, 15)]


def test_grid_clamping_onto_the_peak_is_skipped_and_duplicates_keep_the_first() -> None:
    # 1x5: every row clamps to 0; columns clamp to 0, 2, 4 with the peak at x=2.
    row = np.array([[0.3, 0.0, 1.0, 0.0, 0.3]], np.float32)
    assert _xy(sample("grid", row)) == [(2, 0), (0, 0)]  # tie: x=0 is scanned before x=4
    row[0, 4] = 0.4
    assert _xy(sample("grid", row)) == [(2, 0), (4, 0)]
    column = row.T.copy()  # 5x1: the same along y
    assert _xy(sample("grid", column)) == [(0, 2), (0, 4)]
    # 7x7, dist 10: the candidates are the corners and edge midpoints of the image
    heat = np.zeros((7, 7), np.float32)
    heat[3, 3] = 1.0
    heat[6, 0] = heat[0, 6] = 0.2  # (x=0, y=6) is scanned before (x=6, y=0)
    assert _xy(sample("grid", heat)) == [(3, 3), (0, 6)]
    heat[3, 6] = 0.3  # (x=6, y=3), an edge midpoint
    assert _xy(sample("grid", heat)) == [(3, 3), (6, 3)]


def test_grid_with_no_positive_neighbour_takes_the_first_maximum() -> None:
    # The original crashed here (best started at 0, nothing was larger); gsavl takes
    # the first maximum in scan order, which is what it returns in every other case.
    heat = np.zeros((10, 10), np.float32)
    heat[0, 0] = 1.0  # corner peak: candidates (0,5)=(x,y) (5,0) (5,5) after clamping
    assert _xy(sample("grid", heat, dist=5)) == [(0, 0), (0, 5)]
    heat = -np.ones((10, 10), np.float32)
    heat[5, 5] = 0.0
    heat[0, 5] = -0.5  # (x=5, y=0): the largest (least negative) neighbour
    assert _xy(sample("grid", heat, dist=5)) == [(5, 5), (5, 0)]


def test_grid_on_a_single_pixel_gives_one_point() -> None:
    assert _xy(sample("grid", np.ones((1, 1), np.float32))) == [(0, 0)]


def test_prob_is_reproducible_by_seed_and_does_not_touch_the_global_rng() -> None:
    heat = np.random.default_rng(0).random((100, 100)).astype(np.float32)
    state = torch.get_rng_state()
    first = sample("prob", heat, seed=3, n=50)
    assert torch.equal(torch.get_rng_state(), state)
    assert np.array_equal(first.points, sample("prob", heat, seed=3, n=50).points)
    assert np.array_equal(first.points, sample("prob", heat, generator=make_generator(3), n=50).points)
    assert not np.array_equal(first.points, sample("prob", heat, seed=4, n=50).points)
    assert len(sample("prob", heat)) == 3  # the paper's N


def test_prob_points_lie_in_the_top_percent() -> None:
    heat = np.random.default_rng(1).random((100, 100)).astype(np.float32)
    top = set(np.argsort(heat.ravel())[-100:].tolist())  # 1% of 10,000 pixels, distinct values
    prompts = sample("prob", heat, seed=0, n=500)
    drawn = {int(y) * 100 + int(x) for x, y in prompts.points}
    assert drawn <= top and len(drawn) > 50


def test_prob_draws_in_proportion_to_value() -> None:
    heat = np.zeros((10, 20), np.float32)  # 200 pixels: top 1% = 2 candidates
    heat[2, 3], heat[7, 11] = 0.75, 0.25
    draws = 4000
    prompts = sample("prob", heat, seed=0, n=draws)
    hits = int(np.sum((prompts.points[:, 0] == 3) & (prompts.points[:, 1] == 2)))
    assert hits + int(np.sum((prompts.points[:, 0] == 11) & (prompts.points[:, 1] == 7))) == draws
    expected = np.array([0.75, 0.25]) * draws
    chi2 = float((((np.array([hits, draws - hits]) - expected) ** 2) / expected).sum())
    assert chi2 < 15.0  # 1 degree of freedom: p < 1e-4 for a correct sampler


def _prob_reference(heat: np.ndarray, seed: int, n: int, p: float = 0.01) -> list[tuple[int, int]]:
    """The prob rule from its description: a stable ascending argsort of the flattened
    map, its last `size - int((1 - p) * size)` entries in that order, weights = values,
    N draws with replacement from the same seeded torch generator gsavl uses."""
    flat = heat.ravel()
    order = np.argsort(flat, kind="stable")
    candidates = order[int((1 - p) * flat.size) :]
    weights = torch.tensor(flat[candidates], dtype=torch.float64)
    draws = torch.multinomial(weights, n, replacement=True, generator=make_generator(seed)).numpy()
    width = heat.shape[1]
    return [(int(i % width), int(i // width)) for i in candidates[draws]]


@pytest.mark.parametrize(
    ("shape", "levels"),
    [
        ((7, 7), 3),
        ((10, 10), 2),
        ((1, 5), 2),
        ((5, 1), 4),
        ((20, 30), 3),
        ((33, 41), 5),
        ((224, 224), 7),
        ((60, 90), 0),
    ],
)
def test_prob_matches_the_reference_on_maps_with_and_without_ties(shape: tuple[int, int], levels: int) -> None:
    rng = np.random.default_rng(sum(shape) + levels)
    heat = rng.random(shape).astype(np.float32)
    if levels:  # quantised: large ties at the cut-off
        heat = np.round(heat * levels).astype(np.float32) / levels + 0.01
    for seed in (0, 1, 2):
        assert _xy(sample("prob", heat, seed=seed, n=7)) == _prob_reference(heat, seed, 7)


def test_prob_candidate_count_is_the_originals() -> None:
    # The number of distinct candidates is visible through many draws on a map whose top
    # values are equal: 224x224 -> 50176 - int(0.99 * 50176) = 502 candidates.
    heat = np.zeros((224, 224), np.float32)
    heat.ravel()[-1000:] = 1.0  # a plateau of 1000 pixels at the end of the image
    drawn = {tuple(pt) for pt in sample("prob", heat, seed=0, n=20000).points.astype(int).tolist()}
    expected = {(i % 224, i // 224) for i in range(224 * 224 - 502, 224 * 224)}  # the last 502 of the plateau
    assert drawn == expected
    with_ties = {tuple(pt) for pt in sample("prob", heat, seed=0, n=20000, ties=True).points.astype(int).tolist()}
    assert len(with_ties) > 900 and with_ties <= {(i % 224, i // 224) for i in range(224 * 224 - 1000, 224 * 224)}


def test_prob_plateau_keeps_the_highest_row_major_indices() -> None:
    heat = np.zeros((20, 30), np.float32)  # 600 px -> 600 - int(594.0) = 6 candidates
    heat[2, 3] = 1.0  # above the plateau: always a candidate
    heat[5, 0:10] = 0.5  # a 10-pixel plateau at the cut-off: the last 5 (x = 5..9) are kept
    expected = {(3, 2)} | {(x, 5) for x in range(5, 10)}
    drawn = {tuple(pt) for pt in sample("prob", heat, seed=1, n=3000).points.astype(int).tolist()}
    assert drawn == expected
    drawn = {tuple(pt) for pt in sample("prob", heat, seed=1, n=3000, ties=True).points.astype(int).tolist()}
    assert drawn == {(3, 2)} | {(x, 5) for x in range(10)}


def test_prob_on_small_and_flat_maps() -> None:
    # 7x7, 10x10 and 1x5 all give 1 candidate (int(0.99 * 100) = 99): the maximum, the
    # LAST one in row-major order when tied (unlike `naive`, which takes the first).
    for shape in [(7, 7), (10, 10), (1, 5)]:
        heat = np.zeros(shape, np.float32)
        heat.flat[0] = heat.flat[2] = 1.0
        assert _xy(sample("prob", heat, seed=0)) == [(2 % shape[1], 2 // shape[1])] * 3
        assert _xy(sample("naive", heat)) == [(0, 0)]
    flat = np.zeros((8, 8), np.float32)
    assert set(_xy(sample("prob", flat, seed=0, n=50))) == {(7, 7)}
    # with ties kept, a flat (all-zero) map is sampled uniformly over all 64 pixels
    assert len(set(_xy(sample("prob", flat, seed=0, n=400, ties=True)))) > 50


def test_prob_agrees_with_numpys_default_argsort_when_there_are_no_ties() -> None:
    # With distinct values the original's unstable `np.argsort` gives the same candidates.
    heat = np.random.default_rng(7).random((64, 48)).astype(np.float32)
    assert len(np.unique(heat)) == heat.size
    original = np.argsort(heat.ravel())[int(0.99 * heat.size) :]
    stable = np.argsort(heat.ravel(), kind="stable")[int(0.99 * heat.size) :]
    assert np.array_equal(original, stable)
    width = heat.shape[1]
    drawn = {int(y) * width + int(x) for x, y in sample("prob", heat, seed=0, n=2000).points}
    assert drawn == set(original.tolist())


def test_peaks_finds_both_blob_centres_strongest_first() -> None:
    heat = _gaussian(64, 96, [(20, 20, 1.0), (70, 40, 0.8)])
    heat /= heat.max()
    assert _xy(sample("peaks", heat)) == [(20, 20), (70, 40)]
    assert _xy(sample("peaks", heat, k=1)) == [(20, 20)]
    assert _xy(sample("peaks", heat, min_value=0.9)) == [(20, 20)]  # the second source is too weak
    assert _xy(sample("peaks", np.zeros((5, 5), np.float32), k=1)) == [(0, 0)]  # a flat map still gives a point


def test_peaks_suppresses_a_plateau_to_one_point() -> None:
    heat = np.zeros((40, 40), np.float32)
    heat[10:14, 10:14] = 1.0
    heat[30, 30] = 0.7
    assert _xy(sample("peaks", heat, k=3, radius=3)) == [(10, 10), (30, 30)]


def test_negatives_come_after_positives_from_the_coldest_region() -> None:
    heat = np.tile(np.linspace(0, 1, 50, dtype=np.float32), (40, 1))  # hot on the right
    prompts = sample("naive", heat, negatives=5, seed=1)
    assert prompts.labels.tolist() == [1, 0, 0, 0, 0, 0]
    assert _xy(prompts)[0] == (49, 0)
    negative_x = prompts.points[1:, 0]
    assert (negative_x < 5).all()  # the coldest 10% of a left-to-right ramp: columns 0..4
    assert len({tuple(p) for p in prompts.points[1:].tolist()}) == 5  # without replacement


def test_unknown_sampler_lists_the_available_ones() -> None:
    with pytest.raises(UsageError, match="unknown sampler 'x'") as err:
        sample("x", np.ones((4, 4)))
    assert err.value.hint == "available: grid, naive, peaks, prob"


def test_unknown_or_bad_option_lists_the_samplers_options() -> None:
    with pytest.raises(UsageError, match="no option foo") as err:
        sample("grid", np.ones((4, 4)), foo=1)
    assert "dist=10" in err.value.hint
    with pytest.raises(UsageError, match="not a valid float"):
        sample("prob", np.ones((4, 4)), p="lots")
    with pytest.raises(UsageError, match="must be in"):
        sample("prob", np.ones((4, 4)), p=2.0)
    with pytest.raises(UsageError, match=r"\[H,W\]"):
        sample("naive", np.ones((2, 4, 4)))


def test_builtin_samplers_describe_themselves() -> None:
    infos = {info.name: info for info in samplers.list_samplers()}
    assert infos["prob"].params == {"p": 0.01, "n": 3, "ties": False}
    assert infos["grid"].params == {"dist": 10}
    assert infos["peaks"].params == {"k": 2, "radius": 0, "min_value": 0.5}
    assert infos["naive"].params == {} and infos["naive"].description.startswith("The heatmap's argmax")


def test_a_sampler_registered_at_runtime_is_listed_and_used(registry: None) -> None:
    @samplers.register_sampler("centre")
    def centre(heatmap: torch.Tensor, generator: torch.Generator, shift: int = 0) -> Prompts:
        """The image centre, moved right by `shift`.

        More text that is not the description.
        """
        height, width = heatmap.shape
        return Prompts(np.array([[width // 2 + shift, height // 2]]), np.array([1]))

    info = samplers.get_sampler("centre")
    assert info.params == {"shift": 0} and info.description == "The image centre, moved right by `shift`."
    assert "centre" in [i.name for i in samplers.list_samplers()]
    assert _xy(sample("centre", np.zeros((10, 20)), shift=3)) == [(13, 5)]
    with pytest.raises(ValueError, match="already registered"):
        samplers.register_sampler("centre")(lambda heatmap, generator: None)


def test_a_sampler_from_an_entry_point_is_listed(registry: None, monkeypatch: pytest.MonkeyPatch) -> None:
    def corner(heatmap: torch.Tensor, generator: torch.Generator) -> Prompts:
        """Always the top-left pixel."""
        return Prompts(np.zeros((1, 2)), np.ones(1))

    calls = []

    def fake_entry_points(group: str) -> list:
        calls.append(group)
        return [SimpleNamespace(name="corner", value="plugin:corner", load=lambda: corner)]

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    monkeypatch.setattr(samplers, "_plugins_loaded", False)
    names = [info.name for info in samplers.list_samplers()]
    assert names == ["corner", "grid", "naive", "peaks", "prob"]
    assert samplers.get_sampler("corner").description == "Always the top-left pixel."
    assert _xy(sample("corner", np.ones((4, 4)))) == [(0, 0)]
    assert calls == ["gsavl.samplers"]  # loaded once, lazily


def test_a_broken_plugin_is_named(registry: None, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> None:
        raise ImportError("no module named 'missing'")

    monkeypatch.setattr(
        importlib.metadata, "entry_points", lambda group: [SimpleNamespace(name="bad", value="bad:fn", load=broken)]
    )
    monkeypatch.setattr(samplers, "_plugins_loaded", False)
    with pytest.raises(GsavlError, match="sampler plugin 'bad'"):
        samplers.list_samplers()
    shadow = SimpleNamespace(name="prob", value="other:prob", load=lambda: lambda heatmap, generator: None)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [shadow])
    with pytest.raises(GsavlError, match="already registered"):
        samplers.list_samplers()


def test_a_sampler_returning_points_outside_the_map_is_caught(registry: None) -> None:
    samplers.register_sampler("outside")(lambda heatmap, generator: Prompts(np.array([[99, 0]]), np.array([1])))
    with pytest.raises(GsavlError, match="outside"):
        sample("outside", np.ones((4, 4)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["naive", "grid", "prob", "peaks"])
def test_cuda_heatmaps_give_the_cpu_points(name: str) -> None:
    heat = torch.as_tensor(_gaussian(60, 80, [(20, 30, 1.0), (60, 10, 0.7)]), dtype=torch.float32)
    heat = heat / heat.max()
    cpu = sample(name, heat, seed=5, negatives=2)
    gpu = sample(name, heat.cuda(), seed=5, negatives=2)
    assert np.array_equal(cpu.points, gpu.points) and np.array_equal(cpu.labels, gpu.labels)
