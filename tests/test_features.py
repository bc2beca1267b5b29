"""Audio front ends against independent references (torchvggish, scipy) and image transforms by hand."""

import numpy as np
import pytest
import scipy.signal
import torch
from PIL import Image
from torchvggish import mel_features, vggish_input
from torchvision.transforms import v2

from gsavl_cli.data import features
from gsavl_cli.datasets import get_dataset, list_datasets
from gsavl_cli.errors import UsageError

SR = 16000


def _time(seconds: float, sr: int = SR) -> np.ndarray:
    return np.arange(round(seconds * sr)) / sr


def white_noise(seconds: float, sr: int = SR) -> np.ndarray:
    return 0.3 * np.random.default_rng(0).standard_normal(round(seconds * sr))


def tones(seconds: float, sr: int = SR) -> np.ndarray:
    t = _time(seconds, sr)
    return sum(a * np.sin(2 * np.pi * f * t + f) for a, f in [(0.5, 220.0), (0.2, 1234.5), (0.05, 6000.0)])


def chirp(seconds: float, sr: int = SR) -> np.ndarray:
    t = _time(seconds, sr)
    f0, f1 = 50.0, 7900.0
    return 0.5 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * seconds)))


def speech_like(seconds: float, sr: int = SR) -> np.ndarray:
    """Harmonic series with a wandering pitch (FM), a syllable envelope (AM) and silent pauses."""
    t = _time(seconds, sr)
    f0 = 150.0 + 40.0 * np.sin(2 * np.pi * 1.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voice = sum(np.sin(k * phase) / k for k in range(1, 25))
    syllables = np.clip(np.sin(2 * np.pi * 4.0 * t), 0.0, None)
    pauses = (t % 1.0) < 0.7
    return 0.2 * voice * syllables * pauses


SIGNALS = [white_noise, tones, chirp, speech_like]


def reference_log_mel(x: np.ndarray) -> np.ndarray:
    return mel_features.log_mel_spectrogram(
        x,
        audio_sample_rate=SR,
        log_offset=0.01,
        window_length_secs=0.025,
        hop_length_secs=0.010,
        num_mel_bins=64,
        lower_edge_hertz=125,
        upper_edge_hertz=7500,
    )


def reference_ezvsl(x: np.ndarray, sr: int = SR) -> np.ndarray:
    _, _, spec = scipy.signal.spectrogram(x, sr, nperseg=512, noverlap=274)
    return np.log(spec + 1e-7) / 12.0


def assert_close_log(ours: torch.Tensor, ref: np.ndarray, rel: float = 1e-4, abs_: float = 1e-5) -> None:
    assert ours.shape == ref.shape
    err = np.abs(ours.numpy().astype(np.float64) - ref)
    assert np.all(err <= rel * np.abs(ref) + abs_), f"max error {err.max():.3g}"


def test_mel_matrix_matches_reference():
    ref = mel_features.spectrogram_to_mel_matrix(
        num_mel_bins=64, num_spectrogram_bins=257, audio_sample_rate=SR, lower_edge_hertz=125, upper_edge_hertz=7500
    )
    ours = features.vggish_mel_matrix()
    assert ours.shape == (257, 64) and ours.dtype == torch.float32
    assert np.abs(ours.numpy() - ref).max() < 1e-6
    assert np.abs(features.vggish_mel_matrix(dtype=torch.float64).numpy() - ref).max() < 1e-12
    assert features.vggish_mel_matrix() is ours  # cached


@pytest.mark.parametrize("make", SIGNALS, ids=lambda f: f.__name__)
def test_log_mel_and_examples_match_torchvggish(make):
    x = make(3.37)  # not a whole number of examples: the remainder must be dropped
    ours_mel = features.log_mel(torch.from_numpy(x.astype(np.float32)))
    ref_mel = reference_log_mel(x)
    assert ours_mel.shape == ref_mel.shape == (1 + (len(x) - 400) // 160, 64)
    assert np.abs(ours_mel.numpy() - ref_mel).max() < 1e-3

    ours = features.vggish_examples(x.astype(np.float32))
    ref = vggish_input.waveform_to_examples(x, SR, return_tensor=False)
    assert ours.shape == ref.shape == (3, 96, 64) and ours.dtype == torch.float32
    assert np.abs(ours.numpy() - ref).max() < 1e-3
    assert np.abs(features.vggish_examples(x).numpy() - ref).max() < 1e-5  # float64 in: exact up to float32 out


def test_vggish_examples_resampled_input_matches_resampy_reference():
    # The reference resamples with resampy's kaiser_best filter, ours with the same filter in torchaudio;
    # the two implementations agree to ~4e-5 on the waveform. That leaves ~1e-3 in the top mel band
    # (7.3-7.5 kHz, in the filter's transition band where power is tiny) and ~2e-4 elsewhere.
    sr = 44100
    x = speech_like(1.5, sr) + 0.05 * white_noise(1.5, sr)
    ref = vggish_input.waveform_to_examples(x, sr, return_tensor=False)
    ours = features.vggish_examples(x, sr).numpy()
    assert ours.shape == ref.shape == (1, 96, 64)
    err = np.abs(ours - ref)
    assert err[..., :63].max() < 1e-3
    assert err.max() < 5e-3


def test_short_audio_is_tiled_to_whole_examples():
    x = tones(0.3)
    one = features.vggish_examples(x)
    needed = 400 + 160 * 95  # samples for exactly 96 frames
    ref = vggish_input.waveform_to_examples(np.tile(x, 4)[:needed], SR, return_tensor=False)
    assert one.shape == (1, 96, 64)
    assert np.abs(one.numpy() - ref).max() < 1e-5

    five = features.vggish_examples(white_noise(2.0), min_examples=5)
    assert five.shape == (5, 96, 64)
    long = features.vggish_examples(white_noise(6.0), min_examples=5)
    assert long.shape == (6, 96, 64)


def test_bad_audio_raises_usage_error():
    with pytest.raises(UsageError):
        features.vggish_examples(np.zeros(0, np.float32))
    with pytest.raises(UsageError):
        features.vggish_examples(np.zeros((2, 100), np.float32))
    with pytest.raises(UsageError):
        features.log_mel(torch.zeros(399))
    with pytest.raises(UsageError):
        features.centre_window(np.zeros(0), SR, 3.0)


def test_centre_window_centres_and_tiles():
    ramp = np.arange(10.0)
    np.testing.assert_array_equal(features.centre_window(ramp, 1, 4.0), [3, 4, 5, 6])
    np.testing.assert_array_equal(features.centre_window(np.arange(11.0), 1, 4.0), [3, 4, 5, 6])
    np.testing.assert_array_equal(features.centre_window(ramp, 2, 5.0), ramp)
    np.testing.assert_array_equal(features.centre_window(np.arange(3.0), 1, 7.0), [0, 1, 2, 0, 1, 2, 0])
    assert features.centre_window(np.arange(50_000.0), SR, 3.0)[0] == 1000
    as_tensor = features.centre_window(torch.arange(3.0), 1, 7.0)
    assert isinstance(as_tensor, torch.Tensor)
    assert as_tensor.tolist() == [0, 1, 2, 0, 1, 2, 0]


@pytest.mark.parametrize("make", SIGNALS, ids=lambda f: f.__name__)
def test_ezvsl_spectrogram_matches_scipy(make):
    x = make(5.0).astype(np.float32)
    ours = features.ezvsl_spectrogram(x)
    assert ours.shape == (257, 200) and ours.dtype == torch.float32
    centre = x[16000:64000].astype(np.float64)
    assert_close_log(ours, reference_ezvsl(centre))


def test_ezvsl_spectrogram_short_clip_and_other_rate():
    x = speech_like(1.2)
    assert_close_log(features.ezvsl_spectrogram(x), reference_ezvsl(np.tile(x, 3)[:48000]))
    sr = 22050
    y = chirp(4.0, sr)
    start = (len(y) - 3 * sr) // 2
    assert_close_log(features.ezvsl_spectrogram(y, sr), reference_ezvsl(y[start : start + 3 * sr], sr))


def test_batched_audio_equals_per_item():
    clips = np.stack([make(2.5) for make in SIGNALS]).astype(np.float32)
    batch = features.vggish_examples_batch(clips)
    assert batch.shape == (4, 2, 96, 64)
    for clip, item in zip(clips, batch):
        torch.testing.assert_close(item, features.vggish_examples(clip), rtol=0, atol=1e-5)

    windows = clips[:, :40000]
    spectra = features.ezvsl_spectrogram_batch(windows)
    assert spectra.shape == (4, 257, 1 + (40000 - 512) // 238)
    for window, item in zip(windows, spectra):
        torch.testing.assert_close(item, features.ezvsl_spectrogram(window, seconds=2.5), rtol=0, atol=1e-5)


def _constant_image(value: int, h: int = 40, w: int = 56) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


def test_test_transform_normalises_constant_image():
    expected = [(128 / 255 - 0.485) / 0.229, (128 / 255 - 0.456) / 0.224, (128 / 255 - 0.406) / 0.225]
    transform = features.test_transform(32)
    for image in (_constant_image(128), torch.from_numpy(_constant_image(128)).permute(2, 0, 1)):
        out = transform(image)
        assert type(out) is torch.Tensor and out.shape == (3, 32, 32) and out.dtype == torch.float32
        for channel, value in zip(out, expected):
            torch.testing.assert_close(channel, torch.full_like(channel, value), rtol=0, atol=1e-5)


_MEAN = torch.tensor(features.IMAGENET_MEAN)[:, None, None]
_STD = torch.tensor(features.IMAGENET_STD)[:, None, None]
_PIL = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}


def _pil_resize(image: np.ndarray, width: int, height: int, mode: str) -> torch.Tensor:
    """The original's resize: Pillow on a PIL image, as float CHW in [0, 255]."""
    out = np.asarray(Image.fromarray(image).resize((width, height), _PIL[mode]))
    return torch.from_numpy(out.copy()).permute(2, 0, 1).float()


def _grey_levels(normalised: torch.Tensor) -> torch.Tensor:
    """Undo the ImageNet normalisation: back to [0, 255]."""
    return (normalised * _STD + _MEAN) * 255


def _photo_like(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth gradients plus texture plus noise, so both smooth and sharp content are resized."""
    rows, cols = np.mgrid[:height, :width]
    smooth = np.stack([128 + 100 * np.sin(cols / 17 + c) * np.cos(rows / 23 - c) for c in range(3)], axis=-1)
    texture = 40 * ((rows // 4 + cols // 4) % 2)[..., None]
    noise = np.random.default_rng(seed).normal(0, 20, (height, width, 3))
    return np.clip(smooth + texture + noise, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
@pytest.mark.parametrize(("height", "width"), [(300, 500), (120, 160), (224, 224)])
def test_test_transform_matches_a_pil_resize(mode: str, height: int, width: int) -> None:
    image = _photo_like(height, width)
    out = _grey_levels(features.test_transform(224, interpolation=mode)(image))
    diff = (out - _pil_resize(image, 224, 224, mode)).abs()
    # torchvision's antialiased uint8 resize rounds like Pillow up to 1 grey level (2 for bicubic)
    assert diff.max() <= (1.01 if mode == "bilinear" else 2.01) and diff.mean() < 0.05


def test_test_interpolation_per_layout_is_the_originals() -> None:
    assert {d.name: d.test_interpolation for d in list_datasets()} == {
        "avsbench-s4": "bilinear",
        "avsbench-ms3": "bilinear",
        "avsbench-semantic": "bilinear",
        "vggsound": "bicubic",
        "folder": "bicubic",
    }
    with pytest.raises(UsageError, match="unknown dataset layout"):
        get_dataset("auto")
    with pytest.raises(UsageError, match="unknown interpolation"):
        features.test_transform(32, interpolation="nearest")
    image = _photo_like(90, 70)
    avs, vgg = get_dataset("avsbench-s4").test_transform(32)(image), get_dataset("vggsound").test_transform(32)(image)
    torch.testing.assert_close(avs, features.test_transform(32, "bilinear")(image), rtol=0, atol=0)
    torch.testing.assert_close(vgg, features.test_transform(32)(image), rtol=0, atol=0)  # bicubic by default
    assert (avs - vgg).abs().max() > 0.05  # the two really differ


def _resize_stage(transform) -> torch.nn.Module:
    return next(t for t in transform.transforms if isinstance(t, v2.Resize))


@pytest.mark.parametrize(
    ("height", "width", "expected"), [(300, 500, (246, 410)), (500, 300, (410, 246)), (246, 246, (246, 246))]
)
def test_train_resize_matches_the_short_side_and_keeps_the_aspect(
    height: int, width: int, expected: tuple[int, int]
) -> None:
    # short side -> int(224 * 1.1) = 246, long side -> int(246 * long / short) (torchvision's rule)
    chw = torch.from_numpy(_photo_like(height, width)).permute(2, 0, 1)
    assert tuple(_resize_stage(features.train_transform(224))(chw).shape[1:]) == expected
    out = features.train_transform(224)(chw)
    assert out.shape == (3, 224, 224) and out.dtype == torch.float32


def test_train_transform_is_a_crop_of_the_pil_enlarged_image_maybe_flipped() -> None:
    size = 32  # short side 40 -> int(35.2) = 35, long side 56 -> int(35 * 56 / 40) = 49
    image = np.random.default_rng(1).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    enlarged = _pil_resize(image, 49, 35, "bicubic")
    candidates = {
        (top, left, flip): crop.flip(-1) if flip else crop
        for top in range(35 - size + 1)
        for left in range(49 - size + 1)
        for flip in (False, True)
        for crop in [enlarged[:, top : top + size, left : left + size]]
    }
    transform = features.train_transform(size)
    torch.manual_seed(0)
    drawn = set()
    for _ in range(12):
        out = _grey_levels(transform(image))
        assert out.shape == (3, size, size) and out.dtype == torch.float32
        matches = [key for key, crop in candidates.items() if (out - crop).abs().max() <= 2.01]
        assert len(matches) == 1
        drawn.add(matches[0])
    assert {flip for _, _, flip in drawn} == {False, True}
    assert len({(top, left) for top, left, _ in drawn}) > 1


def test_train_transform_per_layout() -> None:
    image = _photo_like(60, 100)
    for layout in ("avsbench-s4", "avsbench-ms3", "avsbench-semantic"):
        transform = get_dataset(layout).train_transform(48)
        first, second = transform(image), transform(image)
        torch.testing.assert_close(first, second, rtol=0, atol=0)  # no augmentation
        # the plain square resize (aspect not kept), bilinear as PIL does it
        assert ((_grey_levels(first) - _pil_resize(image, 48, 48, "bilinear")).abs().max()) <= 1.01
    for layout in ("vggsound", "folder"):
        transform = get_dataset(layout).train_transform(48)
        assert tuple(_resize_stage(transform)(torch.from_numpy(image).permute(2, 0, 1)).shape[1:]) == (52, 86)
        torch.manual_seed(3)
        outs = [transform(image) for _ in range(6)]
        assert any((o - outs[0]).abs().max() > 0 for o in outs[1:])  # random crops and flips
    assert [d.name for d in list_datasets() if d.augment] == ["folder", "vggsound"]
    with pytest.raises(UsageError, match="unknown dataset layout"):
        get_dataset("flickr")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_audio_front_ends_run_on_cuda_like_on_cpu():
    clips = torch.from_numpy(np.stack([make(3.0) for make in SIGNALS]).astype(np.float32))
    torch.testing.assert_close(
        features.vggish_examples_batch(clips.cuda()).cpu(), features.vggish_examples_batch(clips), rtol=0, atol=1e-3
    )
    spectra = features.ezvsl_spectrogram_batch(clips)
    torch.testing.assert_close(features.ezvsl_spectrogram_batch(clips.cuda()).cpu(), spectra, rtol=1e-4, atol=1e-5)
