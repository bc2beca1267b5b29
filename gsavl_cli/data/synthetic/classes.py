"""The classes of the synthetic world: each a shape in a colour with its own sound."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gsavl_cli.errors import UsageError


@dataclass(frozen=True)
class SoundClass:
    """One class of the world: how it looks and how it sounds."""

    name: str
    shape: str
    colour: tuple[int, int, int]
    sound: str
    frequency: float


CLASS_SPECS: tuple[SoundClass, ...] = (
    SoundClass("red_circle", "circle", (220, 40, 40), "tone", 523.0),
    SoundClass("green_square", "square", (40, 190, 60), "chirp", 300.0),
    SoundClass("blue_triangle", "triangle", (50, 90, 235), "pulsed_noise", 0.0),
    SoundClass("yellow_diamond", "diamond", (235, 215, 40), "am_tone", 1200.0),
    SoundClass("magenta_ring", "ring", (215, 50, 205), "square_wave", 220.0),
    SoundClass("cyan_cross", "cross", (40, 215, 225), "pulsed_tone", 3000.0),
    SoundClass("orange_bar", "bar", (245, 140, 30), "fm_tone", 800.0),
    SoundClass("white_ellipse", "ellipse", (240, 240, 240), "chord", 660.0),
)
CLASSES: list[str] = [spec.name for spec in CLASS_SPECS]
_SPECS = {spec.name: spec for spec in CLASS_SPECS}

# Each shape maps offsets from the centre (dx, dy) and a radius r to an inside mask.
_SHAPES: dict[str, Callable[[np.ndarray, np.ndarray, float], np.ndarray]] = {
    "circle": lambda dx, dy, r: dx**2 + dy**2 <= r**2,
    "square": lambda dx, dy, r: np.maximum(abs(dx), abs(dy)) <= 0.85 * r,
    "triangle": lambda dx, dy, r: (dy <= 0.5 * r) & (abs(dx) <= (dy + r) * 0.577),
    "diamond": lambda dx, dy, r: abs(dx) + abs(dy) <= r,
    "ring": lambda dx, dy, r: (dx**2 + dy**2 <= r**2) & (dx**2 + dy**2 >= (0.55 * r) ** 2),
    "cross": lambda dx, dy, r: (np.maximum(abs(dx), abs(dy)) <= r) & (np.minimum(abs(dx), abs(dy)) <= 0.3 * r),
    "bar": lambda dx, dy, r: (abs(dx) <= r) & (abs(dy) <= 0.45 * r),
    "ellipse": lambda dx, dy, r: (dx / r) ** 2 + (dy / (0.6 * r)) ** 2 <= 1,
}


def class_spec(category: str) -> SoundClass:
    """The class named `category`; an unknown name is a UsageError listing the known ones."""
    if category not in _SPECS:
        raise UsageError(f"unknown synthetic class {category!r}", hint=f"choose from {', '.join(CLASSES)}")
    return _SPECS[category]


def class_mask(category: str, dx: np.ndarray, dy: np.ndarray, radius: float) -> np.ndarray:
    """Where an object of `category` with `radius` covers pixels at offsets (dx, dy) from its centre."""
    return _SHAPES[class_spec(category).shape](dx, dy, radius)
