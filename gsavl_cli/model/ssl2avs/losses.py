"""SSL2AVS's training objective.

    L = dice(final mask) + lambda3 * sum_layers dice(intermediate mask)      (AVSegFormer: 1.0 / 0.1)
        + lambda2 * L_loc   auxiliary localization: BCE between the heatmap logits and the
                            ground-truth mask pooled to the heatmap's grid (the fraction of each
                            cell that is sounding object), so the heatmap lands on the sounding object
        + lambda1 * L_cts   contrastive alignment: the localizer's MIL contrastive loss among the clips
                            of the batch, frame slot by frame slot (frames of one clip are never
                            each other's negatives); needs no labels, so unlabelled frames count too

Mask terms use only frames with a ground-truth mask (S4 training: the first of each clip).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gsavl_cli.model.localizer import mil_contrastive_loss
from gsavl_cli.model.ssl2avs.localization import cross_similarity

DICE_EPS = 0.001  # AVSegFormer's, on each of the two sums


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - 2 sum(p g) / (sum(p^2) + sum(g^2)), p = sigmoid(logits), per frame, averaged (AVSegFormer's)."""
    p = logits.float().sigmoid().flatten(1)
    g = target.flatten(1).float()
    dice = 2 * (p * g).sum(-1) / ((p * p).sum(-1) + DICE_EPS + (g * g).sum(-1) + DICE_EPS)
    return (1 - dice).mean()


def empty_mask_loss(logits: torch.Tensor) -> torch.Tensor:
    """Mean BCE of mask logits [N,...] against the empty mask: what negative-audio frames learn
    (AVSBench-Robust's negative pairs); dice cannot, its value is 1 whatever an empty target's
    prediction."""
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))


def localization_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """BCE of heatmap logits [N,h,w] against the masks [N,H,W] area-pooled to (h, w)."""
    target = F.adaptive_avg_pool2d(masks[:, None].float(), logits.shape[-2:])[:, 0]
    return F.binary_cross_entropy_with_logits(logits.float(), target)


def contrastive_loss(visual: torch.Tensor, audio: torch.Tensor, tau: float) -> torch.Tensor:
    """visual [B,F,d,h,w], audio [B,F,d] (normalised): MIL contrastive loss per frame slot, averaged."""
    visual, audio = visual.float(), audio.float()
    losses = [mil_contrastive_loss(cross_similarity(visual[:, f], audio[:, f]), tau) for f in range(visual.shape[1])]
    return torch.stack(losses).mean()
