"""Clips on disk -> records in the HDF5 store: decode, compute features, write.

Decoding and features run in worker processes (`spawn`, one torch thread each); the
parent is the only writer, so the HDF5 file never sees two writers.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gsavl_cli.data import features
from gsavl_cli.datasets import ClipSource, Ignored, get_dataset
from gsavl_cli.errors import GsavlError, MediaError
from gsavl_cli.io import media
from gsavl_cli.io.store import ClipRecord, StoreWriter

DEFAULT_SETTINGS: dict[str, Any] = {
    "sample_rate": features.SAMPLE_RATE,
    "frame_times": [0.0],
    "vggish_seconds": None,
    "spectrogram_seconds": 3.0,
    "frame_format": "png",
}


def make_settings(
    layout: str, frame_times: list[float] | None = None, vggish_seconds: float | None = None
) -> dict[str, Any]:
    """Every parameter that shapes the stored arrays, recorded in the file."""
    settings = dict(DEFAULT_SETTINGS, layout=layout)
    if frame_times is not None:
        settings["frame_times"] = [float(t) for t in frame_times]
    if vggish_seconds is None:
        vggish_seconds = get_dataset(layout).vggish_seconds  # VGGSound: the protocol's "middle 3 s"
    settings["vggish_seconds"] = vggish_seconds
    settings["vggish"] = {
        "window": 400,
        "hop": 160,
        "n_fft": 512,
        "mel_bands": 64,
        "fmin": 125.0,
        "fmax": 7500.0,
        "log_offset": 0.01,
        "example_frames": 96,
    }
    settings["spectrogram"] = {"nperseg": 512, "noverlap": 274, "log_offset": 1e-7, "scale": 12.0}
    return settings


def _read_mask(path: Path) -> np.ndarray:
    """AVSBench masks are grey or RGB PNGs; any non-black pixel is foreground."""
    if not path.exists():
        raise MediaError(f"mask not found: {path}")
    image = media.read_image(path)
    return image.reshape(*image.shape[:2], -1).max(axis=-1) > 0


def _pad_examples(examples: np.ndarray, count: int) -> np.ndarray:
    """Repeats the last log-mel example so that a 4.9 s clip still gives 5 examples (whole-clip features only:
    with a `vggish_seconds` window the model hears that window, and padding would only repeat it)."""
    if len(examples) >= count:
        return examples
    return np.concatenate([examples, np.repeat(examples[-1:], count - len(examples), axis=0)])


def _frames(src: ClipSource, settings: dict[str, Any]) -> tuple[np.ndarray, list[float]]:
    if src.frame_files:
        missing = [p for p in src.frame_files if not p.exists()]
        if missing:
            raise MediaError(f"frame not found: {missing[0]}")
        times = src.frame_times or [float(i) for i in range(len(src.frame_files))]
        return np.stack([media.read_image(p) for p in src.frame_files]), list(times)
    if src.video is None:
        raise MediaError(f"clip {src.clip_id} has neither a video nor frames")
    times = src.frame_times or settings["frame_times"]
    return media.read_frames(src.video, times), list(times)


def _waveform(src: ClipSource, sample_rate: int) -> np.ndarray:
    audio = src.audio if src.audio is not None and src.audio.exists() else src.video
    if audio is None:
        raise MediaError(f"audio not found for clip {src.clip_id}: {src.audio}")
    return media.read_audio(audio, sample_rate=sample_rate)


def extract_clip(src: ClipSource, settings: dict[str, Any]) -> ClipRecord:
    """Decodes one clip and computes its audio features; raises on any defect."""
    sr = int(settings["sample_rate"])
    frames, times = _frames(src, settings)
    waveform = _waveform(src, sr)
    if settings.get("vggish_seconds"):  # a fixed window: its own example count, no padding to the layout's
        examples = features.vggish_examples(
            features.centre_window(waveform, sr, float(settings["vggish_seconds"])), sr
        ).numpy()
    else:
        examples = _pad_examples(features.vggish_examples(waveform, sr).numpy(), src.vggish_examples)
    record = ClipRecord(
        clip_id=src.clip_id,
        frames=frames,
        frame_times=times,
        waveform=waveform.astype(np.float32),
        vggish=examples.astype(np.float32),
        spectrogram=features.ezvsl_spectrogram(waveform, sr, float(settings["spectrogram_seconds"])).numpy(),
        meta={
            "source": str(src.source),
            "duration": len(waveform) / sr,
            "split": src.split,
            "category": src.category,
            "order": src.order,
            "height": int(frames.shape[1]),
            "width": int(frames.shape[2]),
        },
    )
    if src.mask_files:
        indices = sorted(src.mask_files)
        record.masks = np.stack([_read_mask(src.mask_files[i]) for i in indices])
        record.mask_frames = indices
    if src.boxes is not None:
        record.boxes = np.asarray(src.boxes, dtype=np.float32).reshape(-1, 4)
    return record


@dataclass
class Failure:
    """A clip that could not be preprocessed: its source and why; the run goes on and reports it."""

    source: str
    reason: str


@dataclass
class PreprocessResult:
    """What a run did; `ignored` lists what the folder walk did not consider (not a video, hidden, unreadable)."""

    output: Path
    written: int = 0
    skipped: int = 0
    failed: list[Failure] = field(default_factory=list)
    interrupted: bool = False
    ignored: list[Ignored] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The run's summary as JSON values, for `--json` and for a shard job's return value."""
        return {
            "output": str(self.output),
            "written": self.written,
            "skipped": self.skipped,
            "failed": [{"source": f.source, "reason": f.reason} for f in self.failed],
            "ignored": [item.to_json() for item in self.ignored],
        }


def _reason(exc: BaseException) -> str:
    if isinstance(exc, GsavlError):
        return str(exc)
    return f"{exc.__class__.__name__}: {exc}"


def _try_extract(src: ClipSource, settings: dict[str, Any]) -> ClipRecord | Failure:
    try:
        return extract_clip(src, settings)
    except Exception as exc:  # one bad clip must not stop ten thousand good ones
        return Failure(str(src.source), _reason(exc))


def _worker_init() -> None:
    torch.set_num_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop


def _results(
    todo: list[ClipSource], settings: dict[str, Any], workers: int
) -> Iterable[tuple[ClipSource, ClipRecord | Failure]]:
    if workers <= 1:
        for src in todo:
            yield src, _try_extract(src, settings)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init) as pool:
        pending: dict[Future, ClipSource] = {}
        queue = iter(todo)
        try:
            for src in queue:
                pending[pool.submit(_try_extract, src, settings)] = src
                while len(pending) >= 2 * workers:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        yield pending.pop(fut), fut.result()
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield pending.pop(fut), fut.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def run_preprocess(
    sources: list[ClipSource],
    output: Path,
    settings: dict[str, Any],
    *,
    workers: int = 1,
    overwrite: bool = False,
    on_clip: Callable[[ClipSource, bool], None] | None = None,
    ignored: list[Ignored] | None = None,
) -> PreprocessResult:
    """Writes every clip not yet in `output`; Ctrl-C keeps what is written.

    `ignored` (what `discover` skipped) is carried into the result for the summary.
    """
    result = PreprocessResult(output=output, ignored=list(ignored or []))
    with StoreWriter(output, settings, overwrite=overwrite) as writer:
        done = writer.done_ids
        todo = [s for s in sources if s.clip_id not in done]
        result.skipped = len(sources) - len(todo)
        try:
            for src, outcome in _results(todo, settings, workers):
                if isinstance(outcome, Failure):
                    result.failed.append(outcome)
                else:
                    writer.write(outcome)
                    result.written += 1
                if on_clip is not None:
                    on_clip(src, not isinstance(outcome, Failure))
        except KeyboardInterrupt:
            result.interrupted = True
    return result
