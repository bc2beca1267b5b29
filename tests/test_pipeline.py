"""The audio window that goes with a frame (localize --time, eval --frames all)."""

import numpy as np

from gsavl_cli.data.features import ezvsl_spectrogram
from gsavl_cli.model import config_from_preset
from gsavl_cli.pipeline import audio_at, window_around

SR = 16000


def test_window_is_centred_on_the_time_and_kept_inside_the_clip():
    ramp = np.arange(10 * SR, dtype=np.float32)
    middle = window_around(ramp, 5.0, 3.0)
    assert len(middle) == 3 * SR and middle[0] == 3.5 * SR and middle[-1] == 6.5 * SR - 1
    start = window_around(ramp, 0.2, 3.0)  # shifted right, not padded
    assert start[0] == 0 and len(start) == 3 * SR
    end = window_around(ramp, 9.9, 3.0)
    assert end[-1] == 10 * SR - 1 and len(end) == 3 * SR


def test_short_clip_is_tiled_and_vggish_takes_the_whole_clip():
    short = np.linspace(-1, 1, SR, dtype=np.float32)
    tiled = window_around(short, 0.5, 3.0)
    assert len(tiled) == 3 * SR and np.array_equal(tiled[:SR], short)
    noise = np.random.default_rng(0).standard_normal(10 * SR).astype(np.float32)
    assert audio_at(noise, 2.0, config_from_preset("gsavl")).shape == (10, 96, 64)
    spec = audio_at(noise, 2.0, config_from_preset("ezvsl"))
    np.testing.assert_allclose(spec.numpy(), ezvsl_spectrogram(noise[int(0.5 * SR) : int(3.5 * SR)]).numpy(), atol=1e-6)
