"""The sampler registry: a heatmap becomes point prompts for SAM (the GSAVL paper; the original's tie rules: docs/results.md).

A sampler is a function `fn(heatmap, generator, **params) -> Prompts` registered by
name with `@register_sampler(name)`, the way timm registers models. The first line of
its docstring is its description and its keyword parameters with defaults are its
options, so the CLI can list and validate them without a separate schema. Third-party
packages add samplers through the `gsavl.samplers` entry-point group.

Heavy work (argmax, top-k, pooling) runs on the heatmap's device; random draws run on
the generator's device (CPU by default), so a seed gives the same points on CPU and GPU.
No sampler touches a global random state.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from gsavl_cli.errors import GsavlError, UsageError

ENTRY_POINT_GROUP = "gsavl.samplers"
NEGATIVE_FRACTION = 0.1
"""Negative prompts are drawn uniformly from this coldest fraction of the heatmap."""

SamplerFn = Callable[..., "Prompts"]


@dataclass
class Prompts:
    """Point prompts in heatmap pixels.

    `points` [K,2] float32 as (x=column, y=row); `labels` [K] int64, 1 positive, 0 negative.
    """

    points: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        self.points = _to_numpy(self.points).astype(np.float32).reshape(-1, 2)
        self.labels = _to_numpy(self.labels).astype(np.int64).reshape(-1)
        if len(self.points) != len(self.labels):
            raise ValueError(f"{len(self.points)} points but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def concat(self, *others: Prompts) -> Prompts:
        """These prompts followed by `others`' (order is kept: positives first stays first)."""
        parts = (self, *others)
        return Prompts(np.concatenate([p.points for p in parts]), np.concatenate([p.labels for p in parts]))


@dataclass(frozen=True)
class SamplerInfo:
    """A registered sampler: its options are `params` (name -> default)."""

    name: str
    fn: SamplerFn
    params: dict[str, Any]
    description: str


_REGISTRY: dict[str, SamplerInfo] = {}
_plugins_loaded = False


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _describe(fn: SamplerFn, name: str) -> SamplerInfo:
    params: dict[str, Any] = {}
    for param in list(inspect.signature(fn).parameters.values())[2:]:
        if param.kind is param.VAR_KEYWORD:
            continue
        if param.default is param.empty:
            raise TypeError(f"sampler '{name}': option '{param.name}' needs a default value")
        params[param.name] = param.default
    doc = inspect.getdoc(fn) or ""
    return SamplerInfo(name, fn, params, doc.splitlines()[0] if doc else "")


def register_sampler(name: str) -> Callable[[SamplerFn], SamplerFn]:
    """Decorator that registers `fn(heatmap, generator, **options) -> Prompts` under `name`."""

    def decorate(fn: SamplerFn) -> SamplerFn:
        if name in _REGISTRY and _REGISTRY[name].fn is not fn:
            raise ValueError(f"a sampler named '{name}' is already registered")
        _REGISTRY[name] = _describe(fn, name)
        return fn

    return decorate


def _load_plugins() -> None:
    """Import the `gsavl.samplers` entry points once.

    An entry point may be a module whose import registers samplers, or a sampler
    function, which is registered under the entry point's name.
    """
    global _plugins_loaded
    if _plugins_loaded:
        return
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            already = any(info.fn is obj for info in _REGISTRY.values())
            if callable(obj) and not inspect.isclass(obj) and not already:
                register_sampler(ep.name)(obj)
        except Exception as exc:  # a plugin can fail in any way on import or registration
            raise GsavlError(
                f"sampler plugin '{ep.name}' ({ep.value}) failed to load: {exc}",
                hint="fix or uninstall the package that provides it",
            ) from exc
    _plugins_loaded = True


def list_samplers() -> list[SamplerInfo]:
    """All registered samplers (built-in and plugins), sorted by name."""
    _load_plugins()
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def get_sampler(name: str) -> SamplerInfo:
    """The sampler registered as `name`; UsageError listing the available ones otherwise."""
    _load_plugins()
    if name not in _REGISTRY:
        raise UsageError(f"unknown sampler '{name}'", hint=f"available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def make_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A random generator seeded with `seed`; samplers draw only from generators like this."""
    return torch.Generator(device=device).manual_seed(int(seed))


def as_heatmap(heatmap: Any) -> torch.Tensor:
    """A float32 [H,W] tensor from a NumPy array or tensor; UsageError for wrong shapes or NaN."""
    heat = torch.as_tensor(heatmap)
    if heat.ndim != 2 or heat.numel() == 0:
        raise UsageError(f"a heatmap must be a non-empty [H,W] map, got shape {tuple(heat.shape)}")
    heat = heat.float()
    if not bool(torch.isfinite(heat).all()):
        raise UsageError("the heatmap contains NaN or infinite values", hint="normalise the heatmap to [0,1] first")
    return heat


def _coerce(name: str, key: str, value: Any, default: Any) -> Any:
    """Convert an option to its default's type (so CLI strings like '0.05' work)."""
    kind = type(default)
    try:
        if kind is bool and isinstance(value, str):
            if value.lower() not in {"true", "false", "1", "0", "yes", "no"}:
                raise ValueError(value)
            return value.lower() in {"true", "1", "yes"}
        if kind is int and not isinstance(value, str) and float(value) != int(value):
            raise ValueError(value)
        return kind(value) if kind in (bool, int, float, str) else value
    except (TypeError, ValueError):
        raise UsageError(
            f"sampler '{name}': option {key}={value!r} is not a valid {kind.__name__}",
            hint=f"the default is {key}={default!r}",
        ) from None


def _check_params(info: SamplerInfo, params: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(params) - set(info.params))
    if unknown:
        takes = ", ".join(f"{k}={v!r}" for k, v in info.params.items()) or "no options"
        raise UsageError(f"sampler '{info.name}' has no option {', '.join(unknown)}", hint=f"it takes: {takes}")
    return {k: _coerce(info.name, k, v, info.params[k]) for k, v in params.items()}


def _check_output(name: str, prompts: Any, shape: tuple[int, int]) -> Prompts:
    if not isinstance(prompts, Prompts):
        raise GsavlError(f"sampler '{name}' returned {type(prompts).__name__}, not Prompts")
    height, width = shape
    pts = prompts.points
    inside = (pts[:, 0] >= 0) & (pts[:, 0] <= width - 1) & (pts[:, 1] >= 0) & (pts[:, 1] <= height - 1)
    if len(prompts) == 0 or not inside.all():
        raise GsavlError(f"sampler '{name}' returned no points or points outside the {width}x{height} heatmap")
    return prompts


def sample(
    name: str,
    heatmap: Any,
    *,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    negatives: int = 0,
    negative_fraction: float = NEGATIVE_FRACTION,
    **params: Any,
) -> Prompts:
    """Prompts from the sampler `name`: its positives first, then `negatives` negative points.

    Pass a `generator` or a `seed` (neither means seed 0: results are always
    reproducible). Options are checked against the sampler's and converted to the
    types of their defaults.
    """
    if generator is not None and seed is not None:
        raise ValueError("pass a generator or a seed, not both")
    info = get_sampler(name)
    options = _check_params(info, params)
    if negatives < 0:
        raise UsageError(f"negatives must be >= 0, got {negatives}")
    heat = as_heatmap(heatmap)
    gen = generator if generator is not None else make_generator(0 if seed is None else seed)
    prompts = _check_output(name, info.fn(heat, gen, **options), tuple(heat.shape))
    if negatives:
        prompts = prompts.concat(negative_points(heat, negatives, gen, negative_fraction))
    return prompts


def _xy(flat_index: torch.Tensor, width: int) -> torch.Tensor:
    """Flat row-major indices [K] -> (x, y) pixel coordinates [K,2]."""
    return torch.stack([flat_index % width, flat_index // width], dim=-1)


def _points(xy: torch.Tensor, label: int = 1) -> Prompts:
    xy = xy.reshape(-1, 2)
    return Prompts(xy.cpu().numpy(), np.full(len(xy), label, dtype=np.int64))


def _top_indices(flat: torch.Tensor, k: int) -> torch.Tensor:
    """Flat indices (row-major) of the k largest values, plus every pixel tied with the k-th.

    Keeping all ties makes the set independent of pixel order (a saturated plateau is
    taken whole rather than its first rows).
    """
    cutoff = torch.topk(flat, k, sorted=False).values.min()
    return torch.nonzero(flat >= cutoff).squeeze(1)


def _fraction_count(fraction: float, total: int, what: str) -> int:
    if not 0.0 < fraction <= 1.0:
        raise UsageError(f"{what} must be in (0, 1], got {fraction}")
    return max(1, round(fraction * total))


def negative_points(
    heatmap: torch.Tensor, count: int, generator: torch.Generator, fraction: float = NEGATIVE_FRACTION
) -> Prompts:
    """`count` negative points (label 0), uniform without replacement over the coldest pixels.

    The cold region is the `fraction` of pixels with the lowest values, ties included.
    """
    flat = heatmap.flatten()
    cold = _top_indices(-flat, _fraction_count(fraction, flat.numel(), "negative_fraction"))
    order = torch.randperm(cold.numel(), generator=generator, device=generator.device)
    picks = order.repeat(-(-count // cold.numel()))[:count].to(cold.device)
    return _points(_xy(cold[picks], heatmap.shape[1]), label=0)


@register_sampler("naive")
def naive(heatmap: torch.Tensor, generator: torch.Generator) -> Prompts:
    """The heatmap's argmax (1 point; ties go to the first pixel in row-major order)."""
    return _points(_xy(torch.argmax(heatmap.flatten()), heatmap.shape[1]))


@register_sampler("grid")
def grid(heatmap: torch.Tensor, generator: torch.Generator, dist: int = 10) -> Prompts:
    """The argmax plus the best of its 8 neighbours `dist` pixels away, clamped to the image (2 points).

    The original's rule (docs/results.md, "Conventions"): the candidates' columns are x-d, x, x+d and
    their rows y-d, y, y+d, each clamped to the image; they are scanned column outer,
    row inner (for dx in (-d, 0, d): for dy in (-d, 0, d)); a candidate whose clamped
    position is the peak itself is skipped; the first strictly larger value wins, so
    ties go to the earliest candidate in that scan, and a neighbour equal to the peak's
    value counts like any other. The original started from "best so far = 0" and
    crashed when no neighbour was > 0; here the first maximum in scan order is taken
    then too (identical whenever the original returned). A 1x1 map gives the peak alone.
    """
    if dist < 1:
        raise UsageError(f"grid: dist must be >= 1, got {dist}")
    height, width = heatmap.shape
    peak = _xy(torch.argmax(heatmap.flatten()), width)
    steps = torch.tensor([-dist, 0, dist], device=heatmap.device)
    offsets = torch.cartesian_prod(steps, steps)  # (dx, dy): dx outer, dy inner, the original's scan
    hi = torch.tensor([width - 1, height - 1], device=heatmap.device)
    candidates = torch.minimum(torch.clamp(peak + offsets, min=0), hi)
    candidates = candidates[(candidates != peak).any(dim=1)]  # clamping can land on the peak: skipped
    if len(candidates) == 0:
        return _points(peak)
    values = heatmap[candidates[:, 1], candidates[:, 0]]
    first_best = torch.nonzero(values == values.max())[0, 0]  # the earliest maximum in scan order
    return _points(torch.stack([peak, candidates[first_best]]))


def _top_count(p: float, total: int) -> int:
    """The original's candidate count, `total - int((1 - p) * total)`, at least 1.

    With p = 0.01 this is exactly the original's `argsort(...)[int(0.99 * n):]`: 502 of
    224 x 224 pixels, 1 of a 10 x 10 map (int(99.0) = 99).
    """
    if not 0.0 < p <= 1.0:
        raise UsageError(f"prob: p must be in (0, 1], got {p}")
    return max(1, total - int((1.0 - p) * total))


def _top_stable(flat: torch.Tensor, k: int) -> torch.Tensor:
    """The last k entries of a STABLE ascending argsort, `np.argsort(flat, kind="stable")[-k:]`.

    Ascending by value; equal values keep row-major order, so at the cut-off the tied
    pixels with the HIGHEST flat indices are kept. Found by top-k plus the ties at the
    k-th value rather than a full sort (frames can have millions of pixels).
    """
    kth = torch.topk(flat, k).values[-1]
    above = torch.nonzero(flat > kth).squeeze(1)
    tied = torch.nonzero(flat == kth).squeeze(1)
    chosen = torch.cat([above, tied[tied.numel() - (k - above.numel()) :]])
    chosen = torch.sort(chosen).values  # row-major order, so the stable value sort breaks ties by index
    return chosen[torch.sort(flat[chosen], stable=True).indices]


@register_sampler("prob")
def prob(heatmap: torch.Tensor, generator: torch.Generator, p: float = 0.01, n: int = 3, ties: bool = False) -> Prompts:
    """N points drawn with replacement from the top-p pixels, with probability proportional to value.

    The candidates are the original's: the last `H*W - int((1 - p) * H*W)` entries of an
    ascending argsort of the flattened map, in that order. The original used NumPy's
    default, unstable sort, whose order among equal values is an implementation detail;
    here the sort is stable, so at the cut-off the tied pixels with the highest
    row-major indices are the ones kept. `ties=True` keeps every pixel tied with the
    cut-off value instead (a plateau is taken whole; candidates in row-major order).
    Draws come from the seeded `generator` (the original: NumPy's global RNG). Negative
    values weigh 0; an all-zero candidate set is sampled uniformly.
    """
    if n < 1:
        raise UsageError(f"prob: n must be >= 1, got {n}")
    flat = heatmap.flatten()
    k = _top_count(p, flat.numel())
    candidates = _top_indices(flat, k) if ties else _top_stable(flat, k)
    weights = flat[candidates].clamp(min=0).to(generator.device, torch.float64)
    if not bool(weights.sum() > 0):
        weights = torch.ones_like(weights)
    draws = torch.multinomial(weights, n, replacement=True, generator=generator)
    return _points(_xy(candidates[draws.to(candidates.device)], heatmap.shape[1]))


@register_sampler("peaks")
def peaks(
    heatmap: torch.Tensor, generator: torch.Generator, k: int = 2, radius: int = 0, min_value: float = 0.5
) -> Prompts:
    """Up to K local maxima, strongest first, for several sources (at least 1 point).

    Peaks survive non-maximum suppression in a (2r+1)^2 window (r = `radius`, 0 means 5%
    of the shorter side), reach `min_value` x the global max, and lie more than r pixels
    (Chebyshev) from every stronger chosen peak, so a plateau yields one point.
    """
    if k < 1 or radius < 0 or not 0.0 <= min_value <= 1.0:
        raise UsageError(f"peaks: need k >= 1, radius >= 0, 0 <= min_value <= 1; got {k}, {radius}, {min_value}")
    height, width = heatmap.shape
    r = radius or max(1, round(0.05 * min(height, width)))
    pooled = F.max_pool2d(heatmap[None, None], kernel_size=2 * r + 1, stride=1, padding=r)[0, 0]
    is_peak = ((heatmap == pooled) & (heatmap >= min_value * heatmap.max())).flatten()
    is_peak[torch.argmax(heatmap.flatten())] = True  # the global maximum always counts
    index = torch.nonzero(is_peak).squeeze(1)
    xy, values = _xy(index, width), heatmap.flatten()[index]
    alive = torch.ones_like(values, dtype=torch.bool)
    chosen = []
    for _ in range(k):
        if not bool(alive.any()):
            break
        best = torch.argmax(torch.where(alive, values, -torch.inf))
        chosen.append(best)
        alive &= (xy - xy[best]).abs().amax(dim=1) > r
    return _points(xy[torch.stack(chosen)])
