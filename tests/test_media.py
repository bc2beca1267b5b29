"""media: probe, frame and audio decoding, image I/O, and the errors for bad inputs."""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from gsavl_cli.data.synthetic import write_video
from gsavl_cli.errors import MediaError, UsageError
from gsavl_cli.io import media

FPS = 8


def _ffmpeg(*args: str) -> None:
    subprocess.run([media.ffmpeg_binary(), "-nostdin", "-loglevel", "error", "-y", *args], check=True)


def _grey_ramp(count: int, step: int = 10, size: tuple[int, int] = (48, 64)) -> np.ndarray:
    """Frames [T,H,W,3] where frame i is flat grey i*step: decoded brightness names the frame."""
    levels = np.arange(count, dtype=np.uint8) * step
    return np.broadcast_to(levels[:, None, None, None], (count, *size, 3)).copy()


def _frame_index(frames: np.ndarray, step: int = 10) -> list[int]:
    return [round(float(f.mean()) / step) for f in frames]


@pytest.fixture
def ramp_video(tmp_path: Path) -> Path:
    """2 s at 8 fps, frame i is grey 10*i (16 frames), with a 1 kHz tone."""
    path = tmp_path / "ramp.mp4"
    tone = 0.3 * np.sin(2 * np.pi * 1000 * np.arange(32000) / 16000)
    write_video(path, _grey_ramp(16), FPS, tone.astype(np.float32))
    return path


def test_probe_reports_streams_size_rate_and_duration(tiny_clip):
    clip = tiny_clip(seconds=1.0, width=64, height=48, fps=FPS)
    info = media.probe(clip.path)
    assert (info.width, info.height, info.fps, info.rotation) == (64, 48, 8.0, 0)
    assert info.has_video and info.has_audio
    assert info.duration == pytest.approx(1.0, abs=0.05)


def test_probe_audio_only_and_video_only(tiny_clip):
    audio_only = media.probe(tiny_clip("a.m4a", video=False).path)
    video_only = media.probe(tiny_clip("v.mp4", audio=False).path)
    assert (audio_only.has_video, audio_only.has_audio) == (False, True)
    assert (video_only.has_video, video_only.has_audio) == (True, False)
    assert audio_only.duration == pytest.approx(1.0, abs=0.05)


def test_read_frames_matches_rendered_frames(tiny_clip):
    clip = tiny_clip(seconds=1.0, width=64, height=48, fps=FPS, n_objects=3)
    frames = media.read_frames(clip.path, [0.0, 0.5, 0.875])
    assert frames.shape == (3, 48, 64, 3) and frames.dtype == np.uint8
    error = np.abs(frames.astype(float) - clip.frames[[0, 4, 7]]).mean()
    assert error < 8  # H.264 + 4:2:0 chroma loss only
    shuffled = np.abs(frames.astype(float) - np.roll(clip.frames[[0, 4, 7]], 7, axis=2)).mean()
    assert shuffled > 2 * error


def test_read_frames_returns_the_frame_on_screen_at_each_time(ramp_video):
    times = [0.0, 0.1, 0.124, 0.125, 0.49, 0.5, 1.0, 1.874, 1.875]
    assert _frame_index(media.read_frames(ramp_video, times)) == [0, 0, 0, 1, 3, 4, 8, 14, 15]


def test_read_frames_clamps_times_outside_the_clip(ramp_video):
    frames = media.read_frames(ramp_video, [-3.0, 1.99, 2.0, 60.0])
    assert _frame_index(frames) == [0, 15, 15, 15]


def test_read_frames_with_info_and_no_times(ramp_video):
    info = media.probe(ramp_video)
    assert media.read_frames(ramp_video, [], info).shape == (0, 48, 64, 3)
    assert _frame_index(media.read_frames(ramp_video, [0.25], info)) == [2]


@pytest.mark.parametrize(("display_rotation", "rotation", "turns"), [(90, 270, 1), (-90, 90, -1), (180, 180, 2)])
def test_rotation_metadata_is_applied(tmp_path, tiny_clip, display_rotation, rotation, turns):
    clip = tiny_clip(seconds=1.0, width=64, height=48)
    rotated = tmp_path / f"rotated{display_rotation}.mp4"
    _ffmpeg("-display_rotation", str(display_rotation), "-i", str(clip.path), "-c", "copy", str(rotated))
    info = media.probe(rotated)
    assert info.rotation == rotation
    assert (info.width, info.height) == ((48, 64) if rotation != 180 else (64, 48))
    upright = media.read_frames(clip.path, [0.5])[0]
    turned = media.read_frames(rotated, [0.5], info)[0]
    assert turned.shape == (info.height, info.width, 3)
    np.testing.assert_array_equal(turned, np.rot90(upright, turns))


def test_variable_frame_rate(tmp_path):
    source, vfr = tmp_path / "cfr.mp4", tmp_path / "vfr.mp4"
    write_video(source, _grey_ramp(24), FPS)
    keep = "lt(n,3)+between(n,10,12)+gte(n,20)"  # frames 0-2, 10-12, 20-23: gaps of 1 s
    _ffmpeg("-i", str(source), "-vf", f"select='{keep}'", "-fps_mode", "vfr", "-c:v", "libx264", str(vfr))
    info = media.probe(vfr)
    assert info.fps < FPS and info.duration == pytest.approx(3.0, abs=0.15)
    times = [0.2, 1.0, 1.3, 2.0, 2.5, 2.9]
    assert _frame_index(media.read_frames(vfr, times, info)) == [1, 2, 10, 12, 20, 23]


def test_still_images_are_one_frame_videos(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    path = tmp_path / "frame.png"
    media.write_png(path, image)
    info = media.probe(path)
    assert (info.duration, info.width, info.height, info.has_audio) == (0.0, 40, 30, False)
    np.testing.assert_array_equal(media.read_frames(path, [0.0, 3.0]), np.stack([image, image]))


def _write_stereo_wav(path: Path, rate: int = 44100, seconds: float = 2.0) -> None:
    """Left: a loud 440 Hz tone, right: a quieter 1 kHz tone."""
    t = np.arange(int(rate * seconds)) / rate
    stereo = np.stack([0.6 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 1000 * t)], axis=1)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((stereo * 32767).astype("<i2").tobytes())


def test_read_audio_downmixes_and_resamples(tmp_path):
    wav, m4a = tmp_path / "stereo.wav", tmp_path / "stereo.m4a"
    _write_stereo_wav(wav)
    _ffmpeg("-i", str(wav), "-c:a", "aac", str(m4a))
    for path in (wav, m4a):
        audio = media.read_audio(path)
        assert audio.dtype == np.float32 and audio.ndim == 1
        assert len(audio) == pytest.approx(32000, rel=0.01)
        assert np.abs(audio).max() <= 1.0
        spectrum = np.abs(np.fft.rfft(audio))
        freqs = np.fft.rfftfreq(len(audio), 1 / 16000)
        assert freqs[spectrum.argmax()] == pytest.approx(440, abs=5)
        right = spectrum[np.abs(freqs - 1000) < 5].max()  # the other channel is mixed in
        assert 0.15 < right / spectrum.max() < 0.6


def test_read_audio_window_and_rate(ramp_video):
    audio = media.read_audio(ramp_video, start=0.5, duration=1.0, sample_rate=8000)
    assert len(audio) == pytest.approx(8000, abs=80)
    freqs = np.fft.rfftfreq(len(audio), 1 / 8000)
    assert freqs[np.abs(np.fft.rfft(audio)).argmax()] == pytest.approx(1000, abs=5)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_bytes(np.random.default_rng(0).bytes(4000)), "cannot read broken.mp4: Invalid data"),
        (lambda p: p.mkdir(), "is a directory"),
    ],
)
def test_bad_files_raise_media_error(tmp_path, make, message):
    path = tmp_path / "broken.mp4"
    make(path)
    for read in (media.probe, lambda p: media.read_frames(p, [0.0]), media.read_audio):
        with pytest.raises(MediaError, match=message) as caught:
            read(path)
        assert caught.value.hint


def test_missing_streams_raise_media_error(tiny_clip):
    audio_only = tiny_clip("sound.m4a", video=False).path
    video_only = tiny_clip("silent.mp4", audio=False).path
    with pytest.raises(MediaError, match="sound.m4a has no video stream"):
        media.read_frames(audio_only, [0.0])
    with pytest.raises(MediaError, match="silent.mp4 has no audio stream") as caught:
        media.read_audio(video_only)
    assert caught.value.hint
    with pytest.raises(MediaError, match="no audio"):
        media.read_audio(audio_only, start=30.0)


@pytest.mark.parametrize("name", ["клип 1.mp4", "a:b -c.mp4", "-dash.mp4"])
def test_awkward_file_names(tiny_clip, name):
    clip = tiny_clip(name, seconds=1.0)
    assert media.probe(clip.path).has_audio
    assert media.read_frames(clip.path, [0.5]).shape == (1, 48, 64, 3)
    assert len(media.read_audio(clip.path)) == pytest.approx(16000, rel=0.01)


def test_png_round_trip_and_atomic_write(tmp_path):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)
    mask = rng.random((12, 20)) > 0.5
    np.testing.assert_array_equal(media.decode_image(media.encode_image(image)), image)
    media.write_png(tmp_path / "sub" / "mask.png", mask)
    media.write_png(tmp_path / "sub" / "image.png", image)
    np.testing.assert_array_equal(media.read_mask(tmp_path / "sub" / "mask.png"), mask)
    np.testing.assert_array_equal(media.read_image(tmp_path / "sub" / "image.png"), image)
    grey = media.read_image(tmp_path / "sub" / "mask.png")
    assert grey.shape == (12, 20, 3) and set(np.unique(grey)) <= {0, 255}
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["image.png", "mask.png"]


def test_corrupt_image_raises_media_error(tmp_path):
    path = tmp_path / "bad.png"
    path.write_bytes(b"\x89PNG not really")
    with pytest.raises(MediaError, match="bad.png"):
        media.read_image(path)


def test_read_audio_start_is_sample_accurate_in_aac(tmp_path):
    """Input seeking would shift AAC-in-MP4 audio by its ~23 ms priming; the cut must be exact."""
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, 32000).astype(np.float32)
    path = tmp_path / "noise.mp4"
    write_video(path, None, FPS, noise)
    for start in (0.0, 0.5, 1.25):
        audio = media.read_audio(path, start=start, duration=0.5)
        assert len(audio) == 8000
        offset = np.correlate(noise, audio[1000:3000], "valid").argmax() - 1000
        assert offset == round(start * 16000)


# --------------------------------------------------------------------------- whole videos
@pytest.mark.parametrize(("every", "chunk"), [(0.25, 3), (0.3, 4), (None, 5), (5.0, 2)])
def test_iter_frames_streams_the_frames_read_frames_shows(ramp_video, every, chunk):
    chunks = list(media.iter_frames(ramp_video, every=every, chunk_size=chunk))
    times = np.concatenate([c.times for c in chunks])
    step = 1 / FPS if every is None else every
    np.testing.assert_allclose(times, np.arange(len(times)) * step)
    assert len(times) == media.expected_frames(media.probe(ramp_video), every) == int(np.ceil(2.0 / step - 1e-9))
    assert [c.start for c in chunks] == list(range(0, len(times), chunk))
    assert all(len(c) == chunk for c in chunks[:-1]) and 1 <= len(chunks[-1]) <= chunk
    frames = np.concatenate([c.frames for c in chunks])
    assert _frame_index(frames) == _frame_index(media.read_frames(ramp_video, times))


def test_iter_frames_on_variable_frame_rate_shows_the_frame_on_screen(tmp_path):
    source, vfr = tmp_path / "cfr.mp4", tmp_path / "vfr.mp4"
    write_video(source, _grey_ramp(24), FPS)
    keep = "lt(n,3)+between(n,10,12)+gte(n,20)"  # frames 0-2, 10-12, 20-23: gaps of 1 s
    _ffmpeg("-i", str(source), "-vf", f"select='{keep}'", "-fps_mode", "vfr", "-c:v", "libx264", str(vfr))
    chunks = list(media.iter_frames(vfr, every=0.25, chunk_size=5))
    times = np.concatenate([c.times for c in chunks])
    frames = np.concatenate([c.frames for c in chunks])
    assert _frame_index(frames) == _frame_index(media.read_frames(vfr, times))
    assert _frame_index(frames)[:6] == [0, 2, 2, 2, 2, 10]


def test_iter_frames_applies_rotation_and_stops_cleanly(tmp_path, tiny_clip):
    clip = tiny_clip(seconds=1.0, width=64, height=48)
    rotated = tmp_path / "rotated.mp4"
    _ffmpeg("-display_rotation", "90", "-i", str(clip.path), "-c", "copy", str(rotated))
    stream = media.iter_frames(rotated, every=0.5, chunk_size=1)
    first = next(stream)
    stream.close()  # kills ffmpeg; nothing is left running
    assert first.frames.shape == (1, 64, 48, 3) and first.frames.flags.writeable
    np.testing.assert_array_equal(first.frames[0], media.read_frames(rotated, [0.0])[0])


def test_iter_frames_errors(tmp_path, tiny_clip, ramp_video):
    with pytest.raises(MediaError, match="no video stream"):
        next(media.iter_frames(tiny_clip("sound.m4a", video=False).path))
    with pytest.raises(UsageError, match="sampling interval"):
        next(media.iter_frames(ramp_video, every=-1.0))
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(MediaError, match="cannot read broken.mp4"):
        next(media.iter_frames(broken))


@pytest.mark.parametrize(
    ("fps", "exact"),
    [(29.97, "30000/1001"), (23.98, "24000/1001"), (59.94, "60000/1001"), (25.0, "25"), (12.5, "25/2"), (30.0, "30")],
)
def test_exact_rate_recovers_ntsc_rates(fps, exact):
    assert str(media.exact_rate(fps)) == exact


def test_video_writer_streams_chunks_and_muxes_the_source_audio(ramp_video, tmp_path):
    out = tmp_path / "out.mp4"
    frames = _grey_ramp(10, step=20, size=(30, 40))
    with media.video_writer(out, fps=4, size=(40, 30), audio=ramp_video) as writer:
        writer.write(frames[:3])
        writer.write(frames[3])
        writer.write(frames[4:])
        assert not out.exists()  # written under a temporary name until the end
    assert writer.frames_written == 10
    info = media.probe(out)
    assert (info.width, info.height, info.fps, info.has_audio) == (40, 30, 4.0, True)
    decoded = np.concatenate([c.frames for c in media.iter_frames(out)])
    assert _frame_index(decoded, step=20) == list(range(10))
    audio = media.read_audio(out)
    assert len(audio) == pytest.approx(len(media.read_audio(ramp_video)), abs=160)
    freqs = np.fft.rfftfreq(len(audio), 1 / 16000)
    assert freqs[np.abs(np.fft.rfft(audio)).argmax()] == pytest.approx(1000, abs=5)  # the source's tone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4", "ramp.mp4"]


def test_video_writer_pads_odd_sizes_and_fails_atomically(tmp_path):
    odd = tmp_path / "odd.mp4"
    with media.video_writer(odd, fps=2, size=(41, 31)) as writer:
        writer.write(np.full((2, 31, 41, 3), 128, np.uint8))
    assert (media.probe(odd).width, media.probe(odd).height) == (42, 32)
    target = tmp_path / "crash.mp4"
    with pytest.raises(RuntimeError, match="crash"), media.video_writer(target, fps=2, size=(40, 30)) as writer:
        writer.write(np.zeros((2, 30, 40, 3), np.uint8))
        raise RuntimeError("crash")
    with pytest.raises(UsageError, match="frames must be"):
        with media.video_writer(target, fps=2, size=(40, 30)) as writer:
            writer.write(np.zeros((2, 30, 41, 3), np.uint8))
    with pytest.raises(MediaError, match="cannot write crash.mp4"):
        with media.video_writer(target, fps=2, size=(40, 30), video_options={"c:v": "no_such_codec"}) as writer:
            writer.write(np.zeros((2, 30, 40, 3), np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.mp4"]
