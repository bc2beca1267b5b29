"""'Nothing here makes this sound' as an answer: the listening score, its threshold, and calibration.

Published audio-visual segmentation models paint a mask whatever they hear (AVSBench-Robust:
Li et al., "Do Audio-Visual Segmentation Models Truly Segment Sounding Objects?", 2025),
and the GSAVL path does so by construction: the heatmap's argmax always yields a prompt.
gsavl lets a model abstain instead. Each model family defines a *listening score* per
frame (`ModelFamily.listening_score`: the localizer's peak raw audio-visual similarity,
SSL2AVS's most confident mask pixel). `gsavl calibrate` chooses the threshold on
validation clips, never test ones: it scores each clip's first frame with its own audio
(positives) and with negative audio (negatives: digital silence, white noise, and the
audio of a clip of another category), and keeps the threshold with the best balanced
accuracy; the threshold is stored in the checkpoint. A `Predictor` built with `abstain`
then answers frames below it with no prompts and an empty mask.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gsavl_cli.errors import UsageError

if TYPE_CHECKING:
    from gsavl_cli.predictor import Predictor

NEGATIVE_KINDS = ("silent", "noise", "offscreen")
"""The negative audio calibration hears: `gsavl eval --audio`'s negative conditions, built the same way."""


def stored_threshold(extra: dict[str, Any], path: Path) -> float:
    """The abstention threshold `gsavl calibrate` stored in a checkpoint's extra values."""
    stored = extra.get("abstention")
    if not isinstance(stored, dict) or "threshold" not in stored:
        raise UsageError(
            f"{path} has no abstention threshold",
            hint="run `gsavl calibrate --checkpoint FILE --dataset DATA` on validation clips first",
        )
    return float(stored["threshold"])


def choose_threshold(positives: np.ndarray, negatives: np.ndarray) -> tuple[float, float]:
    """(threshold, balanced accuracy): the cut that best separates positive from negative scores.

    A frame abstains when its score is below the threshold. Candidates are the midpoints
    between consecutive distinct scores (and one beyond each end); among equally good
    ones the middle one is taken, so the cut sits in the widest agreeing gap's centre.
    """
    pos, neg = np.asarray(positives, float), np.asarray(negatives, float)
    if not len(pos) or not len(neg):
        raise UsageError("calibration needs positive and negative scores")
    values = np.unique(np.concatenate([pos, neg]))
    candidates = np.concatenate([[values[0] - 1.0], (values[1:] + values[:-1]) / 2, [values[-1] + 1.0]])
    accuracy = np.array([((pos >= t).mean() + (neg < t).mean()) / 2 for t in candidates])
    best = np.flatnonzero(accuracy == accuracy.max())
    return float(candidates[best[len(best) // 2]]), float(accuracy.max())


@dataclass
class Calibration:
    """What `gsavl calibrate` found and stores in the checkpoint (`extra["abstention"]`)."""

    threshold: float
    balanced_accuracy: float
    positives: int
    negatives: int
    positive_median: float
    negative_median: float
    kinds: tuple[str, ...]
    data: str
    split: str
    seed: int

    def to_dict(self) -> dict[str, Any]:
        """Plain values, as a checkpoint's extra holds them."""
        return {**asdict(self), "kinds": list(self.kinds)}


def calibrate(predictor: Predictor, data: Path, split: str, *, seed: int = 42, limit: int | None = None) -> Calibration:
    """Scores the first frame of each clip of `split` with its own and with negative audio; picks the threshold."""
    from gsavl_cli.data.audio_input import silent_like
    from gsavl_cli.data.negative_audio import DEFAULT_NOISE_DBFS, offscreen_partners, white_noise_like
    from gsavl_cli.io.store import open_store
    from gsavl_cli.predictor import ClipInput

    if predictor.family is None:
        raise UsageError("calibration needs a trained model", hint="pass --checkpoint")
    with open_store(data) as store:
        ids = store.split_ids(split)[:limit]
        if len(ids) < 2:
            raise UsageError(
                f"{data} has {len(ids)} clip(s) in split {split!r}; calibration needs at least 2",
                hint="pass --split with validation clips (not the test split you report)",
            )
        categories = {i: store.meta(i).get("category") for i in ids}
        kinds = (
            NEGATIVE_KINDS
            if len({c for c in categories.values() if c}) > 1 and all(categories.values())
            else NEGATIVE_KINDS[:2]
        )
        partners = offscreen_partners(categories, seed) if "offscreen" in kinds else {}
        clips, labels = [], []
        for clip in ids:
            item = store.read(clip, ("first_frame", "waveform"))
            heard = {
                "silent": silent_like(item["waveform"]),
                "noise": white_noise_like(item["waveform"], DEFAULT_NOISE_DBFS, seed, clip),
            }
            if clip in partners:
                heard["offscreen"] = store.read(partners[clip], ("waveform",))["waveform"]
            clips.append(ClipInput(item["first_frame"], item["waveform"], None, clip))
            labels.append(True)
            for kind in kinds:
                clips.append(ClipInput(item["first_frame"], heard[kind], None, f"{clip}#{kind}"))
                labels.append(False)
    scores = predictor.listening_scores(clips)
    truth = np.array(labels)
    threshold, accuracy = choose_threshold(scores[truth], scores[~truth])
    kinds = (
        NEGATIVE_KINDS if any(k.endswith("#offscreen") for k in (c.key or "" for c in clips)) else NEGATIVE_KINDS[:2]
    )
    return Calibration(
        threshold,
        accuracy,
        int(truth.sum()),
        int((~truth).sum()),
        float(np.median(scores[truth])),
        float(np.median(scores[~truth])),
        kinds,
        str(data),
        split,
        seed,
    )


def store_calibration(checkpoint: Path, calibration: Calibration) -> None:
    """Writes the calibration into the checkpoint's extra values (atomically; the weights are untouched)."""
    from gsavl_cli import weights
    from gsavl_cli.io.files import write_atomic_with
    from gsavl_cli.model.checkpoint import CHECKPOINT_FORMAT

    raw = weights.torch_load(checkpoint)
    if not isinstance(raw, dict) or raw.get("format") != CHECKPOINT_FORMAT:
        raise UsageError(
            f"{checkpoint} is not a gsavl checkpoint; the threshold cannot be stored in it",
            hint="train with `gsavl train` (or save the imported model with gsavl first)",
        )
    raw.setdefault("extra", {})["abstention"] = calibration.to_dict()
    write_atomic_with(Path(checkpoint), lambda name: torch.save(raw, name))
