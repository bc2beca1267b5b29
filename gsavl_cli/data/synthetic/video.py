"""Longer synthetic clips for temporal behaviour: moving objects and a sound timeline.

The objects and sounds are those of the synthetic world (same shapes, colours and class
sounds). Each object moves in its own horizontal lane, bouncing off the frame's
edges, so objects never overlap and every object's mask is exact at any time. A
timeline says which object sounds when: by default the first object sounds for the
first half of the clip and stops, then the second one starts. `MovingScene.truth`
gives the sounding object's mask at any time (empty while nothing sounds), so tests
and benchmarks can score every frame of a localized video. Clips are rendered and
encoded a chunk of frames at a time, so long ones fit in memory.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gsavl_cli.data.synthetic.classes import CLASSES, class_mask, class_spec
from gsavl_cli.data.synthetic.config import check_size
from gsavl_cli.data.synthetic.encode import clip_writer
from gsavl_cli.data.synthetic.scene import background_image, reflect
from gsavl_cli.data.synthetic.sound import SAMPLE_RATE, class_sound
from gsavl_cli.errors import UsageError

_FADE_SECONDS = 0.01  # short ramps so that a sound starting or stopping does not click


@dataclass(frozen=True)
class Sounding:
    """Object `obj` (index into the scene's objects) sounds from `start` to `end` seconds."""

    obj: int
    start: float
    end: float


def default_timeline(seconds: float) -> tuple[Sounding, ...]:
    """The first object sounds for the first half, then stops; the second sounds for the rest."""
    return (Sounding(0, 0.0, seconds / 2), Sounding(1, seconds / 2, seconds))


@dataclass(frozen=True)
class MovingScene:
    """Objects moving in lanes over a still background, and who sounds when."""

    width: int
    height: int
    categories: tuple[str, ...]
    radii: np.ndarray  # [K] pixels
    start: np.ndarray  # [K,2] (x, y) centres at t = 0
    velocity: np.ndarray  # [K,2] pixels per second
    timeline: tuple[Sounding, ...]
    background: np.ndarray  # [H,W,3] float
    shade: np.ndarray  # [H,W,1] float, the objects' texture

    def _lane(self, k: int) -> tuple[float, float]:
        lane = self.height / len(self.categories)
        return k * lane, (k + 1) * lane

    def centres(self, times: Sequence[float] | np.ndarray) -> np.ndarray:
        """Object centres [T,K,2] (x, y) at `times` (s), bouncing inside the frame and their lanes."""
        t = np.asarray(times, dtype=np.float64).reshape(-1, 1)
        path = self.start[None] + self.velocity[None] * t[..., None]
        top = np.array([self._lane(k)[0] for k in range(len(self.radii))]) + self.radii
        bottom = np.array([self._lane(k)[1] for k in range(len(self.radii))]) - self.radii
        x = reflect(path[..., 0], self.radii[None], self.width - self.radii[None])
        y = reflect(path[..., 1], top[None], bottom[None])
        return np.stack([x, y], axis=-1)

    def object_masks(self, times: Sequence[float] | np.ndarray) -> np.ndarray:
        """Each object's mask [T,K,H,W] bool at `times` (objects never overlap)."""
        centres = self.centres(times)
        ys, xs = np.mgrid[0 : self.height, 0 : self.width].astype(np.float64)
        masks = np.zeros((len(centres), len(self.categories), self.height, self.width), dtype=bool)
        for k, category in enumerate(self.categories):
            dx = xs[None] - centres[:, k, 0, None, None]
            dy = ys[None] - centres[:, k, 1, None, None]
            masks[:, k] = class_mask(category, dx, dy, self.radii[k])
        return masks

    def sounding(self, time: float) -> int | None:
        """The object sounding at `time` (s), or None during silence."""
        for span in self.timeline:
            if span.start <= time < span.end:
                return span.obj
        return None

    def truth(
        self, times: Sequence[float] | np.ndarray, shown: Sequence[float] | np.ndarray | None = None
    ) -> np.ndarray:
        """Ground truth [T,H,W] bool: the mask of the object sounding at each time.

        `shown` are the times of the frames on screen (default `times`): the object that
        sounds at `times[i]`, where it is drawn in the frame shown then.
        """
        times = np.asarray(times, dtype=np.float64).reshape(-1)
        masks = self.object_masks(times if shown is None else shown)
        truth = np.zeros((len(times), self.height, self.width), dtype=bool)
        for i, t in enumerate(times):
            obj = self.sounding(float(t))
            if obj is not None:
                truth[i] = masks[i, obj]
        return truth

    def frames(self, times: Sequence[float] | np.ndarray) -> np.ndarray:
        """Rendered frames [T,H,W,3] uint8 at `times`."""
        masks = self.object_masks(times)
        image = np.repeat(self.background[None], len(masks), axis=0)
        for k, category in enumerate(self.categories):
            colour = np.asarray(class_spec(category).colour, dtype=np.float64) + self.shade
            image = np.where(masks[:, k, ..., None], colour, image)
        return np.clip(image, 0, 255).round().astype(np.uint8)

    def waveform(self, seconds: float, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
        """Mono audio [N] in [-1,1]: each timeline span plays its object's class sound, faded in and out."""
        total = round(seconds * sample_rate)
        audio = rng.normal(0, 0.005, total)
        fade = max(1, round(_FADE_SECONDS * sample_rate))
        for span in self.timeline:
            begin, end = round(span.start * sample_rate), min(round(span.end * sample_rate), total)
            if end <= begin:
                continue
            sound = class_sound(self.categories[span.obj], (end - begin) / sample_rate, rng, sample_rate)[: end - begin]
            ramp = np.minimum(1.0, np.minimum(np.arange(len(sound)) + 1, np.arange(len(sound))[::-1] + 1) / fade)
            audio[begin : begin + len(sound)] += sound * ramp
        return np.clip(audio, -1, 1).astype(np.float32)


@dataclass(frozen=True)
class RenderedVideo:
    """What `render_video` wrote: the scene (ground truth at any time), the rate and the audio."""

    path: Path
    scene: MovingScene
    fps: int
    seconds: float
    waveform: np.ndarray

    def frame_times(self, times: Sequence[float] | np.ndarray) -> np.ndarray:
        """The time of the frame on screen at each of `times` (the last one not after it)."""
        t = np.asarray(times, dtype=np.float64)
        return np.floor(t * self.fps + 1e-6) / self.fps

    def truth(self, times: Sequence[float] | np.ndarray) -> np.ndarray:
        """[T,H,W] bool: the sounding object at `times`, as drawn in the frames then on screen."""
        return self.scene.truth(times, self.frame_times(times))


def make_scene(
    *,
    width: int = 160,
    height: int = 120,
    categories: Sequence[str] = tuple(CLASSES[:3]),
    timeline: Sequence[Sounding] | None = None,
    seconds: float = 10.0,
    speed: float = 0.3,
    seed: int = 0,
) -> MovingScene:
    """A scene of `categories` (one lane each) moving at about `speed` x width per second."""
    check_size(width, height, 1)
    if len(categories) < 1 or len(set(categories)) != len(categories):
        raise UsageError("a moving scene needs one or more distinct classes", hint=f"choose from {', '.join(CLASSES)}")
    for category in categories:
        class_spec(category)
    timeline = tuple(default_timeline(seconds) if timeline is None else timeline)
    for span in timeline:
        if not 0 <= span.obj < len(categories) or span.end <= span.start:
            raise UsageError(f"bad timeline entry {span}", hint=f"objects are 0..{len(categories) - 1}; end > start")
    rng = np.random.default_rng(seed)
    lane = height / len(categories)
    radii = np.minimum(rng.uniform(0.13, 0.2, len(categories)) * min(width, height), 0.45 * lane)
    x = rng.uniform(radii, width - radii)
    y = (np.arange(len(categories)) + 0.5) * lane + rng.uniform(-0.05, 0.05, len(categories)) * lane
    direction = rng.choice([-1.0, 1.0], len(categories))
    vx = direction * speed * width * rng.uniform(0.8, 1.2, len(categories))
    vy = rng.uniform(-0.05, 0.05, len(categories)) * height
    return MovingScene(
        width,
        height,
        tuple(categories),
        radii,
        np.stack([x, y], axis=1),
        np.stack([vx, vy], axis=1),
        timeline,
        background_image(rng, height, width),
        rng.normal(0, 8, (height, width, 1)),
    )


def render_video(
    path: str | os.PathLike,
    *,
    seconds: float = 10.0,
    width: int = 160,
    height: int = 120,
    fps: int = 8,
    categories: Sequence[str] = tuple(CLASSES[:3]),
    timeline: Sequence[Sounding] | None = None,
    speed: float = 0.3,
    seed: int = 0,
    chunk_size: int = 32,
) -> RenderedVideo:
    """Render a moving scene with its sound timeline to a video file, `chunk_size` frames at a time."""
    check_size(width, height, fps)
    if seconds <= 0:
        raise UsageError(f"a clip must last more than 0 s, got {seconds}")
    scene = make_scene(
        width=width, height=height, categories=categories, timeline=timeline, seconds=seconds, speed=speed, seed=seed
    )
    waveform = scene.waveform(seconds, np.random.default_rng([seed, 1]))
    path = Path(path)
    with clip_writer(path, fps, (width, height), waveform) as out:
        count = round(seconds * fps)
        for begin in range(0, count, chunk_size):
            out.write(scene.frames(np.arange(begin, min(begin + chunk_size, count)) / fps))
    return RenderedVideo(path, scene, fps, seconds, waveform)
