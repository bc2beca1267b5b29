"""A tiny synthetic audio-visual world: coloured shapes, some of them sounding.

Each class is a shape in a colour with its own sound (tone, chirp, pulsed noise, ...).
One module per part: `classes` (what each class looks and sounds like), `sound`,
`scene` (objects on a background, exact masks), `config` (`WorldConfig` and its
checks), `encode` (clips to real video files), `world` (whole worlds in the AVSBench
S4 / MS3 layouts) and `video` (longer clips with moving objects and a sound timeline).
Everything is deterministic given the seed; the public names of all of them are
importable from `gsavl_cli.data.synthetic`.
"""

from gsavl_cli.data.synthetic.classes import CLASS_SPECS, CLASSES, SoundClass
from gsavl_cli.data.synthetic.config import KEYFRAMES, SPLITS, WorldConfig
from gsavl_cli.data.synthetic.encode import RenderedClip, render_clip, write_video
from gsavl_cli.data.synthetic.scene import BACKGROUNDS, PLAIN_BACKGROUND, render_scene
from gsavl_cli.data.synthetic.sound import SAMPLE_RATE, class_sound, wav_bytes
from gsavl_cli.data.synthetic.video import (
    MovingScene,
    RenderedVideo,
    Sounding,
    default_timeline,
    make_scene,
    render_video,
)
from gsavl_cli.data.synthetic.world import WORLD_LAYOUTS, SyntheticClip, render_world

__all__ = [
    "BACKGROUNDS",
    "CLASSES",
    "CLASS_SPECS",
    "KEYFRAMES",
    "PLAIN_BACKGROUND",
    "SAMPLE_RATE",
    "SPLITS",
    "WORLD_LAYOUTS",
    "MovingScene",
    "RenderedClip",
    "RenderedVideo",
    "SoundClass",
    "Sounding",
    "SyntheticClip",
    "WorldConfig",
    "class_sound",
    "default_timeline",
    "make_scene",
    "render_clip",
    "render_scene",
    "render_video",
    "render_world",
    "wav_bytes",
    "write_video",
]
