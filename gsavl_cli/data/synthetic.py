"""A tiny synthetic audio-visual world: coloured shapes, exactly one of them sounding.

Each class is a shape in a colour with its own sound (tone, chirp, pulsed noise, ...).
A clip shows 2-3 objects of different classes on a textured background and plays the
sound of one of them; that object's pixel mask is the ground truth. Clips are rendered
to real video files with ffmpeg in the AVSBench-S4 layout, so the real loaders,
preprocessing, training and evaluation all run on it end to end. Everything is
deterministic given the seed.
"""

from __future__ import annotations

import csv
import io
import os
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gsavl_cli.errors import UsageError
from gsavl_cli.io.files import temp_sibling, write_atomic
from gsavl_cli.io.media import encoder_options, video_writer, write_png

SAMPLE_RATE = 16000
KEYFRAMES = 5  # AVSBench S4: one frame per second of a 5 s clip
SPLITS = ("train", "val", "test")
_VIDEO_AUDIO_RATE = 44100  # what real videos carry; readers must resample to 16 kHz


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


BACKGROUNDS = ("texture", "plain")
"""texture: a smooth random texture per clip; plain: one flat colour (with fine grain) for every clip."""

PLAIN_BACKGROUND = (90, 75, 105)
"""A muted violet-grey. Through the identity-initialised trunk (which sees each pixel's
colour, both signs) it is far from every class colour: cosine at most 0.46, against 0.63
(green) for a neutral grey of 85, so the background does not light up with the object."""


@dataclass
class WorldConfig:
    """Size and content of a synthetic world.

    `object_scale` is the range of object radii as a fraction of the frame's shorter
    side (AVSBench's sounding objects cover about 20-40 % of the frame: 0.3-0.4 gives
    that); `objects` the inclusive range of objects per clip, the sounding one
    included (1 means no silent distractor).
    """

    n_train: int = 24
    n_val: int = 0
    n_test: int = 8
    n_classes: int = 4
    width: int = 160
    height: int = 120
    seconds: float = 5.0
    fps: int = 8
    seed: int = 0
    object_scale: tuple[float, float] = (0.13, 0.2)
    objects: tuple[int, int] = (2, 3)
    background: str = "texture"


@dataclass(frozen=True)
class SyntheticClip:
    """One rendered clip of a world, with its ground truth at t = 0, 1, 2, 3, 4 s."""

    name: str
    split: str
    category: str
    video: Path
    audio: Path
    frames: np.ndarray  # [5,H,W,3] uint8, the video's frames at the key times
    masks: np.ndarray  # [5,H,W] bool, the sounding object


@dataclass(frozen=True)
class RenderedClip:
    """What `render_clip` wrote: the arrays behind the file (None for a missing stream)."""

    path: Path
    category: str
    fps: int
    sample_rate: int
    frames: np.ndarray | None  # [T,H,W,3] uint8
    masks: np.ndarray | None  # [T,H,W] bool, the sounding object
    waveform: np.ndarray | None  # [N] float32 in [-1,1]


# --------------------------------------------------------------------------- shapes
# Each shape maps offsets from the centre (dx, dy) and a radius r to an inside mask.
_SHAPES: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "circle": lambda dx, dy, r: dx**2 + dy**2 <= r**2,
    "square": lambda dx, dy, r: np.maximum(abs(dx), abs(dy)) <= 0.85 * r,
    "triangle": lambda dx, dy, r: (dy <= 0.5 * r) & (abs(dx) <= (dy + r) * 0.577),
    "diamond": lambda dx, dy, r: abs(dx) + abs(dy) <= r,
    "ring": lambda dx, dy, r: (dx**2 + dy**2 <= r**2) & (dx**2 + dy**2 >= (0.55 * r) ** 2),
    "cross": lambda dx, dy, r: (np.maximum(abs(dx), abs(dy)) <= r) & (np.minimum(abs(dx), abs(dy)) <= 0.3 * r),
    "bar": lambda dx, dy, r: (abs(dx) <= r) & (abs(dy) <= 0.45 * r),
    "ellipse": lambda dx, dy, r: (dx / r) ** 2 + (dy / (0.6 * r)) ** 2 <= 1,
}


# --------------------------------------------------------------------------- sounds
def _pulses(t: np.ndarray, rate: float) -> np.ndarray:
    return (np.mod(t * rate, 1.0) < 0.5).astype(np.float32)


# Each sound maps times t (s), the class frequency f and a generator to a waveform in [-1,1].
_SOUNDS: dict[str, Callable[[np.ndarray, float, np.random.Generator], np.ndarray]] = {
    "tone": lambda t, f, rng: np.sin(2 * np.pi * f * t),
    "chirp": lambda t, f, rng: np.sin(2 * np.pi * (f * np.mod(t, 1.0) + 1050.0 * np.mod(t, 1.0) ** 2)),
    "pulsed_noise": lambda t, f, rng: rng.uniform(-1, 1, t.shape) * _pulses(t, 4.0),
    "am_tone": lambda t, f, rng: np.sin(2 * np.pi * f * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 6.0 * t)),
    "square_wave": lambda t, f, rng: 0.6 * np.sign(np.sin(2 * np.pi * f * t)),
    "pulsed_tone": lambda t, f, rng: np.sin(2 * np.pi * f * t) * _pulses(t, 2.0),
    "fm_tone": lambda t, f, rng: np.sin(2 * np.pi * f * t + 40.0 * np.sin(2 * np.pi * 5.0 * t)),
    "chord": lambda t, f, rng: 0.5 * (np.sin(2 * np.pi * f * t) + np.sin(2 * np.pi * 1.5 * f * t)),
}


def class_sound(category: str, seconds: float, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The sound of a class: its signal with a random level and pitch jitter, plus a little noise."""
    spec = _spec(category)
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    frequency = spec.frequency * rng.uniform(0.99, 1.01)
    signal = _SOUNDS[spec.sound](t + rng.uniform(0, 1), frequency, rng)
    noisy = rng.uniform(0.4, 0.7) * signal + rng.normal(0, 0.01, t.shape)
    return np.clip(noisy, -1, 1).astype(np.float32)


# --------------------------------------------------------------------------- scenes
def _spec(category: str) -> SoundClass:
    if category not in _SPECS:
        raise UsageError(f"unknown synthetic class {category!r}", hint=f"choose from {', '.join(CLASSES)}")
    return _SPECS[category]


def _background(rng: np.random.Generator, height: int, width: int, mode: str = "texture") -> np.ndarray:
    """A smooth random texture with fine grain (or, `plain`, `PLAIN_BACKGROUND` with grain), [H,W,3] float."""
    if mode == "plain":
        return np.asarray(PLAIN_BACKGROUND, dtype=np.float64) + rng.normal(0, 6, (height, width, 3))
    coarse = torch.from_numpy(rng.uniform(35, 135, (1, 3, height // 12 + 2, width // 12 + 2)))
    smooth = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)
    grain = rng.normal(0, 6, (height, width, 3))
    return smooth[0].permute(1, 2, 0).numpy() + grain


def _reflect(x: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Fold positions back into [low, high], like a ball bouncing between two walls."""
    span = np.maximum(high - low, 1e-6)
    phase = np.mod(x - low, 2 * span)
    return low + span - abs(phase - span)


def _place(rng: np.random.Generator, radii: np.ndarray, height: int, width: int) -> np.ndarray:
    """Object centres [K,2] (x, y), inside the frame and, when possible, not overlapping."""
    centres = np.zeros((len(radii), 2))
    for k, r in enumerate(radii):
        for _ in range(100):
            centres[k] = rng.uniform([r, r], [width - r, height - r])
            gaps = np.hypot(*(centres[:k] - centres[k]).T) - radii[:k] - r
            if (gaps > 2).all():
                break
    return centres


def _trajectories(
    rng: np.random.Generator, radii: np.ndarray, times: np.ndarray, height: int, width: int
) -> np.ndarray:
    """Centres [T,K,2] over time: half of the clips still, the others drifting slowly."""
    start = _place(rng, radii, height, width)
    speed = 0.04 * width * rng.uniform(-1, 1, start.shape) * (rng.random() < 0.5)
    path = start[None] + speed[None] * times[:, None, None]
    r = radii[None, :]
    return np.stack([_reflect(path[..., 0], r, width - r), _reflect(path[..., 1], r, height - r)], axis=-1)


def render_scene(
    rng: np.random.Generator,
    categories: list[str],
    width: int,
    height: int,
    seconds: float,
    fps: int,
    *,
    scale: tuple[float, float] = (0.13, 0.2),
    background: str = "texture",
    sounding: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Frames [T,H,W,3] uint8 showing `categories` (the first `sounding` ones sound) and their masks [T,H,W].

    Radii are drawn from `scale` x the shorter side. The sounding objects are drawn
    last, so they are never hidden; the mask (their union) is exact.
    """
    times = np.arange(round(seconds * fps)) / fps
    radii = rng.uniform(*scale, len(categories)) * min(width, height)
    centres = _trajectories(rng, radii, times, height, width)
    image = np.broadcast_to(_background(rng, height, width, background), (len(times), height, width, 3))
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    shade = rng.normal(0, 8, (height, width, 1))
    masks = []
    for k in reversed(range(len(categories))):
        spec = _spec(categories[k])
        dx = xs[None] - centres[:, k, 0, None, None]
        dy = ys[None] - centres[:, k, 1, None, None]
        masks.append(_SHAPES[spec.shape](dx, dy, radii[k]))
        image = np.where(masks[-1][..., None], np.asarray(spec.colour) + shade, image)
    return np.clip(image, 0, 255).round().astype(np.uint8), np.any(masks[len(masks) - sounding :], axis=0)


def _scene_categories(
    rng: np.random.Generator, sounding: str | list[str], classes: list[str], n_objects: int
) -> list[str]:
    """The sounding class(es) first, then silent objects of other classes (never a class twice)."""
    first = [sounding] if isinstance(sounding, str) else list(sounding)
    others = [c for c in classes if c not in first]
    count = min(n_objects - len(first), len(others))
    return [*first, *rng.choice(others, size=max(count, 0), replace=False).tolist()]


# --------------------------------------------------------------------------- writers
def wav_bytes(waveform: np.ndarray, sample_rate: int) -> bytes:
    """A mono PCM16 WAV file in memory."""
    pcm = (np.clip(waveform, -1, 1) * 32767).round().astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


def _codecs() -> tuple[dict[str, object], dict[str, object]]:
    """(video, audio) encoder options: media's, the audio at the rate real videos carry."""
    video, audio = encoder_options()
    return video, {**audio, "ar": _VIDEO_AUDIO_RATE}


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray | None,
    fps: int,
    waveform: np.ndarray | None = None,
    sample_rate: int = SAMPLE_RATE,
) -> None:
    """Encode frames [T,H,W,3] uint8 and/or a mono waveform into a video file, atomically.

    The frames go through `media.video_writer` (a hidden temporary file renamed on
    success), so an interrupted run never leaves a truncated video under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wav_tmp = temp_sibling(path.with_suffix(".wav"))
    try:
        video_options, audio_options = _codecs()
        if waveform is not None:
            wav_tmp.write_bytes(wav_bytes(waveform, sample_rate))
        size = None if frames is None else (frames.shape[2], frames.shape[1])
        with video_writer(
            path,
            fps=fps,
            size=size,
            audio=wav_tmp if waveform is not None else None,
            video_options=video_options,
            audio_options=audio_options,
        ) as out:
            if frames is not None:
                out.write(frames)
    finally:
        wav_tmp.unlink(missing_ok=True)


def _check_size(width: int, height: int, fps: int) -> None:
    if width < 16 or height < 16 or width % 2 or height % 2:
        raise UsageError(f"frame size {width}x{height} is not usable", hint="use even sizes of at least 16 pixels")
    if fps < 1:
        raise UsageError(f"fps must be at least 1, got {fps}")


def render_clip(
    path: str | os.PathLike,
    *,
    seconds: float = 1.0,
    width: int = 64,
    height: int = 48,
    fps: int = 8,
    audio: bool = True,
    video: bool = True,
    category: str = CLASSES[0],
    n_objects: int = 2,
    seed: int = 0,
) -> RenderedClip:
    """Render one small clip of the world to `path` (video-only or audio-only on request)."""
    if not (audio or video):
        raise UsageError("a clip needs a video or an audio stream")
    _check_size(width, height, fps)
    rng = np.random.default_rng(seed)
    frames = masks = waveform = None
    if video:
        categories = _scene_categories(rng, category, CLASSES, n_objects)
        frames, masks = render_scene(rng, categories, width, height, seconds, fps)
    if audio:
        waveform = class_sound(category, seconds, rng)
    write_video(path, frames, fps, waveform)
    return RenderedClip(Path(path), category, fps, SAMPLE_RATE, frames, masks, waveform)


def _check_config(config: WorldConfig) -> list[str]:
    """The classes in use; rejects configurations the S4 layout cannot hold."""
    _check_size(config.width, config.height, config.fps)
    if not 2 <= config.n_classes <= len(CLASSES):
        raise UsageError(f"n_classes must be between 2 and {len(CLASSES)}, got {config.n_classes}")
    if config.seconds < KEYFRAMES:
        raise UsageError(f"clips must last at least {KEYFRAMES} s for the S4 layout, got {config.seconds:g}")
    if min(config.n_train, config.n_val, config.n_test) < 0:
        raise UsageError("clip counts must not be negative")
    low, high = config.object_scale
    if not 0.02 <= low <= high <= 0.5:
        raise UsageError(f"object_scale must satisfy 0.02 <= low <= high <= 0.5, got {config.object_scale}")
    if not 1 <= config.objects[0] <= config.objects[1]:
        raise UsageError(f"objects per clip must be a range of at least 1, got {config.objects}")
    if config.background not in BACKGROUNDS:
        raise UsageError(f"unknown background {config.background!r}", hint=f"choose from {', '.join(BACKGROUNDS)}")
    return CLASSES[: config.n_classes]


def _sounding_classes(index: int, classes: list[str], count: int) -> list[str]:
    """Clip `index`'s sounding classes, balanced: class i mod n, then (MS3) a different partner.

    The partner's offset cycles through 1..n-1, so every ordered pair of classes occurs.
    """
    n = len(classes)
    first = classes[index % n]
    if count == 1:
        return [first]
    return [first, classes[(index + 1 + (index // n) % (n - 1)) % n]]


def _render_clip_arrays(
    split: str, index: int, classes: list[str], config: WorldConfig, n_sounding: int
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(sounding classes, frames, masks, waveform) of clip `index` of a split.

    The random state depends only on (seed, split, index), so growing one split keeps
    the other clips. Several sounding objects play their sounds mixed.
    """
    sounding = _sounding_classes(index, classes, n_sounding)
    rng = np.random.default_rng([config.seed, SPLITS.index(split), index])
    count = max(int(rng.integers(config.objects[0], config.objects[1] + 1)), n_sounding)
    categories = _scene_categories(rng, sounding if n_sounding > 1 else sounding[0], classes, count)
    frames, masks = render_scene(
        rng,
        categories,
        config.width,
        config.height,
        config.seconds,
        config.fps,
        scale=config.object_scale,
        background=config.background,
        sounding=n_sounding,
    )
    sounds = [class_sound(category, config.seconds, rng) for category in sounding]
    waveform = sounds[0] if n_sounding == 1 else np.clip(0.6 * np.sum(sounds, axis=0), -1, 1).astype(np.float32)
    return sounding, frames, masks, waveform


def _write_s4_clip(root: Path, split: str, index: int, classes: list[str], config: WorldConfig) -> SyntheticClip:
    """Clip `index` of a split in the S4 layout: one sounding object, class i mod n_classes;
    masks of the first frame for train clips, of all 5 for val/test (as AVSBench-S4)."""
    name = f"syn_{split}_{index:04d}"
    (category,), frames, masks, waveform = _render_clip_arrays(split, index, classes, config, 1)
    data = root / "s4_data"
    relative = Path(split) / category
    audio = data / "audio_wav" / relative / f"{name}.wav"
    video = data / "raw_videos" / relative / f"{name}.mp4"
    key = np.arange(KEYFRAMES) * config.fps
    n_masks = 1 if split == "train" else KEYFRAMES
    for i in range(KEYFRAMES):
        write_png(data / "visual_frames" / relative / name / f"{name}_{i + 1}.png", frames[key[i]])
        if i < n_masks:
            write_png(data / "gt_masks" / relative / name / f"{name}_{i + 1}.png", masks[key[i]])
    write_atomic(audio, wav_bytes(waveform, SAMPLE_RATE))
    write_video(video, frames, config.fps, waveform)
    return SyntheticClip(name, split, category, video, audio, frames[key], masks[key])


def _write_ms3_clip(root: Path, split: str, index: int, classes: list[str], config: WorldConfig) -> SyntheticClip:
    """Clip `index` of a split in the MS3 layout: two sounding objects of different classes,
    their sounds mixed, the mask their union on all 5 key frames (every split, as AVSBench-MS3)."""
    name = f"syn_{split}_{index:04d}"
    sounding, frames, masks, waveform = _render_clip_arrays(split, index, classes, config, 2)
    data = root / "ms3_data"
    audio = data / "audio_wav" / split / f"{name}.wav"
    video = data / "raw_videos" / f"{name}.mp4"
    key = np.arange(KEYFRAMES) * config.fps
    for i in range(KEYFRAMES):
        write_png(data / "visual_frames" / name / f"{name}.mp4_{i + 1}.png", frames[key[i]])
        write_png(data / "gt_masks" / split / name / f"{name}_{i + 1}.png", masks[key[i]])
    write_atomic(audio, wav_bytes(waveform, SAMPLE_RATE))
    write_video(video, frames, config.fps, waveform)
    return SyntheticClip(name, split, "+".join(sounding), video, audio, frames[key], masks[key])


def _write_s4_metadata(root: Path, clips: list[SyntheticClip]) -> None:
    """`s4_meta_data.csv` as AVSBench ships it: name, start, category, split."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["name", "start", "category", "split"])
    writer.writerows([clip.name, 0, clip.category, clip.split] for clip in clips)
    write_atomic(root / "s4_meta_data.csv", text.getvalue().encode())


def _write_ms3_metadata(root: Path, clips: list[SyntheticClip]) -> None:
    """`ms3_meta_data.csv`: the video id first and a `split` column, as AVSBench's MS3 loader reads it."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["video_id", "split"])
    writer.writerows([clip.name, clip.split] for clip in clips)
    write_atomic(root / "ms3_meta_data.csv", text.getvalue().encode())


_WRITERS: dict[str, tuple[Callable[..., SyntheticClip], Callable[[Path, list[SyntheticClip]], None]]] = {
    "avsbench-s4": (_write_s4_clip, _write_s4_metadata),
    "avsbench-ms3": (_write_ms3_clip, _write_ms3_metadata),
}
WORLD_LAYOUTS = tuple(_WRITERS)


def render_world(root: str | os.PathLike, config: WorldConfig, layout: str = "avsbench-s4") -> list[SyntheticClip]:
    """Render a whole world into `root` in an AVSBench layout and return its clips.

    `avsbench-s4`: one sounding object per clip; `avsbench-ms3`: two, their sounds mixed.
    """
    if layout not in _WRITERS:
        raise UsageError(f"unknown synthetic world layout {layout!r}", hint=f"choose from {', '.join(WORLD_LAYOUTS)}")
    classes = _check_config(config)
    write_clip, write_metadata = _WRITERS[layout]
    root = Path(root)
    counts = {"train": config.n_train, "val": config.n_val, "test": config.n_test}
    clips = [write_clip(root, split, i, classes, config) for split in SPLITS for i in range(counts[split])]
    write_metadata(root, clips)
    return clips
