"""Signs that a training run has collapsed, named while it runs instead of after a useless eval.

The symmetric contrastive loss of the localizer has a known value at chance: when every
audio scores every frame alike each of its terms is 2 ln B (B the batch size), so the
loss is (1 + beta) 2 ln B with the global term. Against that value an epoch loss says a
lot (docs/results.md, "When training collapses"):

- ``tied``: the loss sits exactly at chance: all logits equal, no gradient (each frame's
  best cell is a background that every frame shares).
- ``exploded``: the loss is many times chance: the logits have grown so large that the
  softmax saturates and a single wrong pair costs hundreds. The un-normalised ``dot``
  similarity with tau = 0.03 does this (the GSAVL paper reports it as unstable, its
  reason for cosine); with ``cosine`` a logit is at most 1 / tau, which bounds the loss.
- ``worse-than-chance``: after warm-up the loss is above chance and no longer falling: the
  model ranks wrong pairs above the right ones, i.e. it learned something other than where
  the sound is (a run coming down from a high start is not flagged while it keeps falling).
- ``stalled``: after many epochs the loss is still within a few per cent of chance: the
  model tells almost no pair from another (typically the audio features of every sound
  point the same way: `--standardize-audio`, a frozen audio trunk).
- ``validation-drop``: with validation data, the score fell to under half its best.

Library code: the checks return `Collapse` values; the CLI decides how to show them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

TIE_TOLERANCE = 1e-3
EXPLODED_FACTOR = 4.0
"""An epoch loss above this many times 2 ln B: saturated logits (cosine keeps it far below)."""
WARMUP_EPOCHS = 3
"""Epochs before a loss above chance counts: the first steps of a fresh model may sit there."""
CHANCE_MARGIN = 0.05
"""Relative margin above chance that counts as worse than chance (not noise around a tie)."""
STALL_EPOCHS = 10
STALL_MARGIN = 0.05
"""After `STALL_EPOCHS`, a loss within this share below chance has stalled (learning runs are 10-50 % below)."""
VALIDATION_DROP = 0.5
MIN_BEST_SCORE = 0.05
"""A best validation score under this is noise; a drop from it says nothing."""


@dataclass(frozen=True)
class Collapse:
    """One sign of collapse: its kind, the epoch, what was seen, and what to try."""

    kind: str
    epoch: int
    message: str
    hint: str


def tie_loss(batch_size: int) -> float:
    """One symmetric contrastive term when every audio scores every frame alike: 2 ln B."""
    return 2.0 * math.log(max(batch_size, 1))


def contrastive_collapse(losses: Sequence[float], chance: float) -> Collapse | None:
    """The collapse that the epoch losses so far show at their last epoch, if any.

    `losses[k]` is epoch k+1's mean loss; `chance` the loss when every logit is equal
    (the localizer: (1 + beta) 2 ln B).
    """
    if not losses or chance <= 0:
        return None
    epoch, loss = len(losses), losses[-1]
    if abs(loss - chance) < TIE_TOLERANCE:
        return Collapse(
            "tied",
            epoch,
            f"the loss sits at its chance value {chance:.3f}: every audio scores every frame alike, "
            "so the model has stopped learning (typically each frame's best cell is a background all frames share)",
            "start from pretrained weights, add the global term (--beta 2), or change the data or --lr",
        )
    if loss > EXPLODED_FACTOR * chance:
        return Collapse(
            "exploded",
            epoch,
            f"the loss is {loss:.1f}, {loss / chance:.0f}x its chance value {chance:.2f}: "
            "the contrastive logits have exploded and the softmax saturates",
            "use --similarity cosine (a dot product of un-normalised features with tau 0.03 is unstable), "
            "a larger --tau or a smaller --lr",
        )
    falling = loss < (1 - CHANCE_MARGIN) * min(losses[:-1], default=math.inf)
    if epoch > WARMUP_EPOCHS and loss > chance * (1 + CHANCE_MARGIN) and not falling:
        return Collapse(
            "worse-than-chance",
            epoch,
            f"after {epoch} epochs the loss ({loss:.2f}) is above its chance value {chance:.2f}: "
            "the model ranks wrong audio-frame pairs above the right ones",
            "use --similarity cosine, the global term (--beta 2) or a smaller --lr; docs/results.md has recipes",
        )
    if epoch >= STALL_EPOCHS and loss > chance * (1 - STALL_MARGIN):
        return Collapse(
            "stalled",
            epoch,
            f"after {epoch} epochs the loss ({loss:.2f}) is still within {STALL_MARGIN:.0%} of its chance "
            f"value {chance:.2f}: the model tells almost no audio-frame pair from another",
            "--standardize-audio and --freeze-audio (a random audio trunk maps every sound alike), "
            "or more clips; docs/results.md has recipes",
        )
    return None


def validation_collapse(scores: Sequence[float], metric: str) -> Collapse | None:
    """A validation score that fell to under half its best (the best checkpoint is kept)."""
    if len(scores) < 2:
        return None
    best = max(scores)
    best_epoch = scores.index(best) + 1
    last = scores[-1]
    if best < MIN_BEST_SCORE or last >= VALIDATION_DROP * best:
        return None
    return Collapse(
        "validation-drop",
        len(scores),
        f"validation {metric} fell from {best:.3f} (epoch {best_epoch}) to {last:.3f}",
        f"best.pt keeps epoch {best_epoch}; a smaller --lr or --patience stops before the drop",
    )
