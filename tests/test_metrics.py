"""Metrics against hand-computed values and independent re-implementations of the
AVSBench (`utility.py`) and EZ-VSL (`Evaluator`, `bbox2gtmap`) reference code."""

import math

import numpy as np
import pytest
import torch

from gsavl_cli import metrics as m
from gsavl_cli.errors import UsageError

TOL = 1e-6

# 4x4 masks written out; pixel (row, col).
A = np.array(
    [
        [1, 1, 0, 0],
        [1, 1, 0, 0],
        [0, 0, 0, 0],
        [0, 0, 0, 0],
    ],
    dtype=bool,
)
B = np.array(
    [
        [0, 1, 1, 0],
        [0, 1, 1, 0],
        [0, 0, 0, 0],
        [0, 0, 0, 0],
    ],
    dtype=bool,
)
EMPTY = np.zeros((4, 4), dtype=bool)
FULL = np.ones((4, 4), dtype=bool)


# ---------------------------------------------------------------- IoU (AVSBench M_J)


@pytest.mark.parametrize(
    ("pred", "gt", "expected"),
    [
        (A, B, 2 / 6),  # |A∩B| = 2 (column 1, rows 0-1), |A∪B| = 4 + 4 - 2 = 6
        (A, A, 1.0),  # identical
        (A, np.rot90(np.rot90(A)), 0.0),  # disjoint: bottom-right 2x2 block
        (EMPTY, A, 0.0),  # empty prediction, object present: 0 / 4
        (FULL, A, 4 / 16),  # full frame: 4 / 16
        (EMPTY, EMPTY, 1.0),  # empty gt: true negatives 16 / 16
        (A, EMPTY, 12 / 16),  # empty gt: 4 false positives -> 12 true negatives / 16
        (FULL, EMPTY, 0.0),  # empty gt: no true negatives
    ],
)
def test_mask_iou_hand_values(pred, gt, expected):
    assert m.mask_iou(pred, gt) == pytest.approx(expected, abs=TOL)


def test_mask_iou_accepts_torch_uint8_and_probabilities():
    assert m.mask_iou(torch.from_numpy(A), torch.from_numpy(B)) == pytest.approx(1 / 3, abs=TOL)
    assert m.mask_iou(A.astype(np.uint8) * 255, B.astype(np.uint8)) == pytest.approx(1 / 3, abs=TOL)
    probs = np.where(A, 0.7, 0.2)  # > 0.5 gives A
    assert m.mask_iou(probs, B) == pytest.approx(1 / 3, abs=TOL)
    assert isinstance(m.mask_iou(A, B), float)


def _avsbench_mask_iou(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Independent per-frame version of AVSBench's mask_iou (sigmoid > 0.5, empty-gt rule, eps)."""
    pred = (torch.sigmoid(logits) > 0.5).int()
    target = target.int()
    inter = (pred * target).sum((1, 2)).float()
    union = torch.max(pred, target).sum((1, 2)).float()
    no_obj = target.sum((1, 2)) == 0
    inter[no_obj] = ((1 - target) * (1 - pred)).sum((1, 2)).float()[no_obj]
    union[no_obj] = float(pred.shape[1] * pred.shape[2])
    return inter / (union + 1e-7)


def test_mask_iou_batch_matches_avsbench_reference():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 12, 10, generator=gen)
    target = torch.rand(6, 12, 10, generator=gen) > 0.6
    target[2] = False  # an empty frame
    ours = m.mask_iou_batch(torch.sigmoid(logits), target)
    ref = _avsbench_mask_iou(logits, target).numpy()
    assert ours.shape == (6,)
    np.testing.assert_allclose(ours, ref, atol=1e-5)  # the reference's eps shifts by ~1e-7/union
    assert ours[2] == pytest.approx(1 - (torch.sigmoid(logits[2]) > 0.5).float().mean().item(), abs=TOL)


def test_shape_mismatch_is_a_usage_error():
    with pytest.raises(UsageError):
        m.mask_iou(A, np.zeros((4, 5), dtype=bool))
    with pytest.raises(UsageError):
        m.ciou(np.zeros((4, 4)), np.zeros((5, 4), dtype=bool))


# ---------------------------------------------------------------- F-score (AVSBench M_F)


def test_f_measure_hand_values():
    # pred = column 1 rows 0-1 (2 px), both inside B (4 px): P = 1, R = 0.5
    # F = 1.3 * 1 * 0.5 / (0.3 * 1 + 0.5) = 0.65 / 0.8 = 0.8125
    pred = A & B
    assert m.f_measure(pred, B) == pytest.approx(0.8125, abs=TOL)
    # pred = A (4 px), gt = B (4 px), overlap 2: P = R = 0.5, F = 1.3 * 0.25 / 0.65 = 0.5
    assert m.f_measure(A, B) == pytest.approx(0.5, abs=TOL)
    # pred = full frame (16 px), gt = A ∩ B (2 px): P = 2/16, R = 1
    # F = 1.3 * 0.125 / (0.0375 + 1) = 0.1625 / 1.0375
    assert m.f_measure(FULL, pred) == pytest.approx(0.1625 / 1.0375, abs=TOL)
    # beta2 = 1 is the F1 score: 2PR/(P+R) = 2 * 0.5 / 1.5
    assert m.f_measure(pred, B, beta2=1.0) == pytest.approx(2 / 3, abs=TOL)


def test_f_measure_edge_cases():
    assert m.f_measure(EMPTY, EMPTY) == 1.0
    assert m.f_measure(EMPTY, A) == 0.0
    assert m.f_measure(A, EMPTY) == 0.0
    assert m.f_measure(A, np.rot90(np.rot90(A))) == 0.0  # disjoint, P = R = 0


def test_f_measure_soft_hand_values():
    prob = np.array([[0.9, 0.6], [0.3, 0.0]], dtype=np.float32)
    gt = np.array([[1, 0], [0, 0]], dtype=bool)
    curve = m.f_measure_curve(prob, gt)
    assert curve.shape == (255,)
    # t = 0: all 4 px, P = 1/4, R = 1: 1.3 * 0.25 / 1.075
    assert curve[0] == pytest.approx(0.325 / 1.075, abs=TOL)
    # t = 1/254: 3 px (>= t), P = 1/3: 1.3/3 / 1.1
    assert curve[1] == pytest.approx((1.3 / 3) / 1.1, abs=TOL)
    # t = 127/254 = 0.5: 2 px, P = 1/2: 0.65 / 1.15
    assert curve[127] == pytest.approx(0.65 / 1.15, abs=TOL)
    # t = 200/254 ~ 0.787: only the 0.9 px, a perfect mask
    assert curve[200] == pytest.approx(1.0, abs=TOL)
    # last threshold is 1.0 (1 - 1e-10 in float32): nothing predicted -> 0
    assert curve[254] == 0.0
    assert m.f_measure_soft(prob, gt) == pytest.approx(1.0, abs=TOL)


def test_f_measure_soft_binary_map_takes_threshold_zero_into_account():
    # binary pred of 1 px off the gt (gt = A ∩ B, 2 px): F(mask) = 0, but threshold 0
    # selects all 16 px: P = 2/16, R = 1 -> 0.1625 / 1.0375
    pred = np.zeros((4, 4), dtype=np.float32)
    pred[3, 3] = 1.0
    assert m.f_measure(pred, A & B) == 0.0
    assert m.f_measure_soft(pred, A & B) == pytest.approx(0.1625 / 1.0375, abs=TOL)
    assert math.isnan(m.f_measure_soft(pred, EMPTY))


def _avsbench_f_curve(prob: torch.Tensor, gt: torch.Tensor, num: int = 255) -> torch.Tensor:
    """Independent transcription of AVSBench's _eval_pr + F with NaN -> 0 (CPU)."""
    thresholds = torch.linspace(0, 1 - 1e-10, num)
    prec, recall = torch.zeros(num), torch.zeros(num)
    for i in range(num):
        y = (prob >= thresholds[i]).float()
        tp = (y * gt).sum()
        prec[i], recall[i] = tp / (y.sum() + 1e-20), tp / (gt.sum() + 1e-20)
    f = 1.3 * prec * recall / (0.3 * prec + recall)
    f[f != f] = 0
    return f


def test_f_measure_curve_and_benchmark_match_avsbench_reference():
    gen = torch.Generator().manual_seed(1)
    probs = torch.sigmoid(3 * torch.randn(4, 9, 11, generator=gen))
    gts = (torch.rand(4, 9, 11, generator=gen) > 0.7).float()
    gts[1] = 0  # skipped by the benchmark
    curves = [_avsbench_f_curve(p, g) for p, g in zip(probs, gts) if g.mean() > 0]
    for p, g in zip(probs, gts):
        if g.sum() > 0:
            np.testing.assert_allclose(m.f_measure_curve(p, g), _avsbench_f_curve(p, g).numpy(), atol=1e-5)
    expected = (sum(curves) / len(curves)).max().item()
    assert m.avsbench_fmeasure(probs, gts, batch=4, from_logits=False) == pytest.approx(expected, abs=1e-5)


# ---------------------------------------------------------------- AVSBench's batch metrics


def _avsbench_eval_fmeasure(logits: torch.Tensor, gts: torch.Tensor) -> float:
    """Independent transcription of AVSBench's Eval_Fmeasure for ONE batch (sigmoid first)."""
    probs = torch.sigmoid(logits)
    total, count, score = 0.0, 0, torch.zeros(255)
    for p, g in zip(probs, gts):
        if torch.mean(g) == 0.0:
            continue
        total = total + _avsbench_f_curve(p, g)
        count += 1
        score = total / count
    return score.max().item()


# Four frames of hard masks (pred, gt); frame 2 has an empty ground truth.
HARD_PREDS = np.stack([A, A & B, A, EMPTY])
HARD_GTS = np.stack([B, B, EMPTY, A])
# IoU: A vs B 2/6; (A∩B) vs B 2/4; A vs empty gt 12/16 true negatives; empty vs A 0.
HARD_IOUS = [2 / 6, 2 / 4, 12 / 16, 0.0]
# F of the mask itself: 0.5 (P = R = 1/2), 0.8125 (P = 1, R = 1/2), skipped, 0.
# F of "every pixel" (what thresholds <= 0.5 select once sigmoid maps 0/1 to 0.5/0.73):
# P = |G|/16 = 4/16, R = 1 -> 1.3 * 0.25 / (0.3 * 0.25 + 1) = 0.325 / 1.075 for each gt.
F_ALL = 0.325 / 1.075


def test_avsbench_miou_hand_values_and_batching():
    assert m.avsbench_miou(HARD_PREDS, HARD_GTS, batch=4) == pytest.approx(np.mean(HARD_IOUS), abs=TOL)
    # batches of 2: (1/3 + 1/2) / 2 and (3/4 + 0) / 2, then their mean
    expected = ((2 / 6 + 2 / 4) / 2 + (12 / 16 + 0.0) / 2) / 2
    assert m.avsbench_miou(HARD_PREDS, HARD_GTS, batch=2) == pytest.approx(expected, abs=TOL)
    # batches of 3: a short last batch (a DataLoader's) weighs as much as a full one
    expected = ((2 / 6 + 2 / 4 + 12 / 16) / 3 + 0.0) / 2
    assert m.avsbench_miou(HARD_PREDS, HARD_GTS, batch=3) == pytest.approx(expected, abs=TOL)
    assert m.frame_miou(HARD_PREDS, HARD_GTS) == pytest.approx(np.mean(HARD_IOUS), abs=TOL)
    assert math.isnan(m.avsbench_miou(np.zeros((0, 4, 4)), np.zeros((0, 4, 4))))
    with pytest.raises(UsageError):
        m.avsbench_miou(HARD_PREDS, HARD_GTS, batch=0)


def test_avsbench_miou_takes_logits_unless_told_otherwise():
    logits = np.where(A, 2.0, -3.0)[None]
    assert m.avsbench_miou(logits, B[None]) == pytest.approx(2 / 6, abs=TOL)
    # probabilities given as logits: sigmoid(0.2) > 0.5, so every pixel is foreground
    probs = np.where(A, 0.7, 0.2)[None]
    assert m.avsbench_miou(probs, B[None]) == pytest.approx(4 / 16, abs=TOL)
    assert m.avsbench_miou(probs, B[None], from_logits=False) == pytest.approx(2 / 6, abs=TOL)
    # the benchmark's float32 sigmoid: a logit of 1e-9 gives exactly 0.5, i.e. background
    assert m.avsbench_miou(np.full((1, 4, 4), 1e-9), A[None]) == 0.0


def test_avsbench_miou_matches_the_benchmark_transcription():
    gen = torch.Generator().manual_seed(5)
    logits = torch.randn(10, 12, 10, generator=gen)
    target = torch.rand(10, 12, 10, generator=gen) > 0.6
    target[3] = False
    target[7] = False
    for batch in (1, 3, 5, 10):
        per_batch = [
            _avsbench_mask_iou(logits[i : i + batch], target[i : i + batch]).mean().item() for i in range(0, 10, batch)
        ]
        assert m.avsbench_miou(logits, target, batch=batch) == pytest.approx(np.mean(per_batch), abs=1e-6)


def test_avsbench_fmeasure_on_hard_masks_by_hand():
    # one batch of all four: mean over the 3 valid frames of F(all) = F_ALL, of F(mask) =
    # (0.5 + 0.8125 + 0) / 3 = 0.4375; the best threshold is the mask level.
    assert m.avsbench_fmeasure(HARD_PREDS, HARD_GTS, batch=4) == pytest.approx(0.4375, abs=1e-6)
    # batches of 2: max(F_ALL, 0.65625) and, with frame 2 skipped, max(F_ALL, 0)
    assert m.avsbench_fmeasure(HARD_PREDS, HARD_GTS, batch=2) == pytest.approx((0.65625 + F_ALL) / 2, abs=1e-6)
    # one frame per batch: a batch whose only frame has an empty gt scores 0 and counts
    assert m.avsbench_fmeasure(HARD_PREDS, HARD_GTS, batch=1) == pytest.approx(
        (0.5 + 0.8125 + 0.0 + F_ALL) / 4, abs=1e-6
    )
    # per frame, batch-independent: empty-gt frames are left out, each frame its own best
    assert m.frame_fmeasure(HARD_PREDS, HARD_GTS) == pytest.approx((0.5 + 0.8125 + F_ALL) / 3, abs=1e-6)
    assert math.isnan(m.frame_fmeasure(EMPTY[None], EMPTY[None]))
    assert m.avsbench_fmeasure(EMPTY[None], EMPTY[None]) == 0.0


def test_avsbench_fmeasure_matches_the_benchmark_transcription():
    gen = torch.Generator().manual_seed(6)
    logits = 3 * torch.randn(10, 9, 11, generator=gen)
    logits[4] = (torch.rand(9, 11, generator=gen) > 0.5).float()  # a hard mask as logits
    gts = (torch.rand(10, 9, 11, generator=gen) > 0.7).float()
    gts[2] = 0
    gts[5] = 0
    for batch in (1, 2, 5, 10):
        per_batch = [_avsbench_eval_fmeasure(logits[i : i + batch], gts[i : i + batch]) for i in range(0, 10, batch)]
        assert m.avsbench_fmeasure(logits, gts, batch=batch) == pytest.approx(np.mean(per_batch), abs=1e-5)


def test_hard_mask_f_curve_is_the_benchmarks_curve_of_a_binary_mask():
    for pred, gt in [(A, B), (A & B, B), (EMPTY, A), (FULL, A), (np.rot90(np.rot90(A)).copy(), A)]:
        reference = _avsbench_f_curve(
            torch.sigmoid(torch.tensor(pred, dtype=torch.float32)), torch.tensor(gt, dtype=torch.float32)
        )
        curve = m.hard_mask_f_curve(m.f_measure(pred, gt), gt.mean())
        np.testing.assert_allclose(curve, reference.numpy(), atol=1e-6)


def _rows(preds, gts, videos):
    return [
        {"clip": v, "frame": i, "iou": m.mask_iou(p, g), "mask_f": m.f_measure(p, g), "gt_fraction": float(g.mean())}
        for i, (p, g, v) in enumerate(zip(preds, gts, videos))
    ]


def test_avsbench_from_rows_hand_values():
    rows = _rows(HARD_PREDS, HARD_GTS, ["v1", "v1", "v2", "v2"])  # two videos of two frames
    out = m.avsbench_from_rows(rows)
    assert out["batches"] == 2
    assert out["avsbench_miou"] == pytest.approx(((2 / 6 + 2 / 4) / 2 + 12 / 16 / 2) / 2, abs=TOL)
    assert out["avsbench_fmeasure"] == pytest.approx((0.65625 + F_ALL) / 2, abs=1e-6)
    assert out["frame_fmeasure"] == pytest.approx((0.5 + 0.8125 + F_ALL) / 3, abs=1e-6)
    both = m.avsbench_from_rows(rows, videos_per_batch=2)
    assert both["batches"] == 1 and both["avsbench_fmeasure"] == pytest.approx(0.4375, abs=1e-6)
    # rows of a video need not be adjacent: batches follow the videos' first appearance
    shuffled = [rows[0], rows[2], rows[1], rows[3]]
    assert m.avsbench_from_rows(shuffled) == pytest.approx(out)


def test_avsbench_from_rows_matches_the_array_functions_and_degrades_to_none():
    gen = torch.Generator().manual_seed(7)
    preds = torch.rand(12, 8, 8, generator=gen) > 0.5
    gts = torch.rand(12, 8, 8, generator=gen) > 0.6
    gts[4] = False
    videos = [f"v{i // 3}" for i in range(12)]  # 4 videos of 3 frames
    rows = _rows(preds.numpy(), gts.numpy(), videos)
    for per_batch in (1, 2, 4):
        out = m.avsbench_from_rows(rows, videos_per_batch=per_batch)
        frames = 3 * per_batch
        assert out["avsbench_miou"] == pytest.approx(m.avsbench_miou(preds, gts, batch=frames), abs=1e-6)
        assert out["avsbench_fmeasure"] == pytest.approx(m.avsbench_fmeasure(preds, gts, batch=frames), abs=1e-6)
        assert out["frame_fmeasure"] == pytest.approx(m.frame_fmeasure(preds, gts), abs=1e-6)
    # an explicit per-frame curve (e.g. of a soft map) is used instead of the hard-mask rule
    soft = torch.rand(12, 8, 8, generator=gen)
    curved = [dict(r, f_curve=m.f_measure_curve(p, g).tolist()) for r, p, g in zip(rows, soft, gts)]
    assert m.avsbench_from_rows(curved, videos_per_batch=4)["avsbench_fmeasure"] == pytest.approx(
        m.avsbench_fmeasure(soft, gts, batch=12, from_logits=False), abs=1e-6
    )
    bare = [{"clip": r["clip"], "iou": r["iou"]} for r in rows]
    out = m.avsbench_from_rows(bare)
    assert out["avsbench_miou"] is not None and out["avsbench_fmeasure"] is None and out["frame_fmeasure"] is None
    assert m.avsbench_from_rows([]) == {
        "avsbench_miou": None,
        "avsbench_fmeasure": None,
        "frame_fmeasure": None,
        "batches": 0,
    }


# ---------------------------------------------------------------- cIoU, AP50, AUC (VGG-SS)

HEAT = np.array(
    [
        [0.9, 0.8, 0.1, 0.1],
        [0.7, 0.5, 0.1, 0.1],
        [0.5, 0.5, 0.2, 0.1],
        [0.3, 0.2, 0.1, 0.0],
    ]
)
# ascending: 0.0 | 0.1 x6 (idx 1-6) | 0.2 x2 (idx 7-8) | 0.3 | 0.5 x3 | 0.7 0.8 0.9
# index int(16/2) = 8 -> threshold 0.2; P = heat >= 0.2 has 9 px (ties included)
GT_HEAT = np.array(
    [
        [1, 1, 0, 1],
        [1, 1, 0, 0],
        [1, 0, 0, 0],
        [0, 0, 0, 0],
    ],
    dtype=bool,
)


def test_median_threshold_with_ties():
    assert m.median_threshold(HEAT) == pytest.approx(0.2, abs=TOL)


def test_ciou_hand_values():
    # P (9 px) ∩ G: (0,0) (0,1) (1,0) (1,1) (2,0) = 5; |G| = 6 ((0,3) is missed);
    # P ∩ ¬G: (2,1) (2,2) (3,0) (3,1) = 4 -> 5 / (6 + 4)
    assert m.ciou(HEAT, GT_HEAT) == pytest.approx(0.5, abs=TOL)
    # threshold 0.5: P = 6 px, P ∩ G = 5, P ∩ ¬G = (2,1) -> 5 / (6 + 1)
    assert m.ciou(HEAT, GT_HEAT, threshold=0.5) == pytest.approx(5 / 7, abs=TOL)
    assert m.ciou(torch.tensor(HEAT, dtype=torch.float32), torch.tensor(GT_HEAT)) == pytest.approx(0.5, abs=TOL)
    assert m.ciou_of_mask(HEAT >= 0.5, GT_HEAT) == pytest.approx(5 / 7, abs=TOL)
    assert m.ciou(HEAT, EMPTY) == 0.0
    # a flat map: every pixel >= the median -> |G| / 16
    assert m.ciou(np.full((4, 4), 0.3), GT_HEAT) == pytest.approx(6 / 16, abs=TOL)


def test_ciou_matches_ezvsl_formula_on_random_maps():
    rng = np.random.default_rng(2)
    for _ in range(5):
        heat, gt = rng.random((224, 224)), rng.random((224, 224)) > 0.6
        thr = np.sort(heat.flatten())[int(224 * 224 / 2)]
        infer = (heat >= thr).astype(float)
        expected = np.sum(infer * gt) / (np.sum(gt) + np.sum(infer * (gt == 0)))
        assert m.ciou(heat, gt) == pytest.approx(expected, abs=TOL)


CIOUS = [0.0, 0.32, 0.51, 0.77, 1.0]
# success: t=0 -> 5/5; t=0.05..0.30 (6 thresholds) -> 4/5; t=0.35..0.50 (4) -> 3/5;
# t=0.55..0.75 (5) -> 2/5; t=0.80..1.00 (5) -> 1/5.
# trapezoid, dx = 0.05: 0.05 * (sum - (first + last)/2)
#   = 0.05 * (1 + 4.8 + 2.4 + 2.0 + 1.0 - 0.6) = 0.05 * 10.6 = 0.53


def test_ap50_and_auc_hand_values():
    assert m.ap50(CIOUS) == pytest.approx(3 / 5, abs=TOL)
    assert m.auc(CIOUS) == pytest.approx(0.53, abs=TOL)
    assert m.auc(np.ones(7)) == pytest.approx(1.0, abs=TOL)
    assert m.auc([0.0, 0.0]) == pytest.approx(0.025, abs=TOL)
    assert m.ap50(torch.tensor([0.49, 0.5])) == pytest.approx(0.5, abs=TOL)
    assert m.ap50(CIOUS, threshold=0.1) == pytest.approx(4 / 5, abs=TOL)  # the original's AVS "AP50"
    assert math.isnan(m.ap50([])) and math.isnan(m.auc([]))


def test_auc_matches_ezvsl_expression():
    # EZ-VSL: success = [sum(c >= 0.05*i) / n for i in range(21)], auc over thr = [0.05*i];
    # values on the grid (0.15, 0.6) test that the floating-point grid is the same.
    cious = np.array([0.15, 0.6, 0.05, 0.999, 0.42, 0.6, 0.0])
    thr = [0.05 * i for i in range(21)]
    success = [np.sum(cious >= t) / len(cious) for t in thr]
    np.testing.assert_allclose(m.success_curve(cious), success, atol=0)
    trapz = sum((thr[i + 1] - thr[i]) * (success[i] + success[i + 1]) / 2 for i in range(20))
    assert m.auc(cious) == pytest.approx(trapz, abs=TOL)


# ---------------------------------------------------------------- boxes -> ground-truth map


def test_boxes_to_mask_overlapping_boxes():
    # 8x8 grid: [0,0,.5,.5] -> rows 0:4, cols 0:4; [.25,.25,.75,.5] -> rows 2:4, cols 2:6
    expected = np.array(
        [
            [1, 1, 1, 1, 0, 0, 0, 0],
            [1, 1, 1, 1, 0, 0, 0, 0],
            [1, 1, 1, 1, 1, 1, 0, 0],
            [1, 1, 1, 1, 1, 1, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 0],
        ],
        dtype=bool,
    )
    mask = m.boxes_to_mask([[0, 0, 0.5, 0.5], [0.25, 0.25, 0.75, 0.5]], size=8)
    assert mask.dtype == bool and mask.shape == (8, 8)
    np.testing.assert_array_equal(mask, expected)
    assert mask.sum() == 20  # 16 + 8 - 4 overlap


def test_boxes_to_mask_truncation_and_corrupt_coordinates():
    # [.1,.1,.99,.3] * 8 = [0.8, 0.8, 7.92, 2.4] -> int -> rows 0:2, cols 0:7
    mask = m.boxes_to_mask([[0.1, 0.1, 0.99, 0.3]], size=8)
    assert mask.sum() == 14 and mask[:2, :7].all()
    # out of [0,1]: clipped to [0, 0, 1, 0.25] -> rows 0:2, all columns
    mask = m.boxes_to_mask([[-0.5, -1.0, 1.5, 0.25]], size=8)
    assert mask.sum() == 16 and mask[:2].all()
    # x1 > x2: an empty box, as in EZ-VSL (no reordering)
    assert not m.boxes_to_mask([[0.75, 0.0, 0.25, 1.0]], size=8).any()
    assert not m.boxes_to_mask([], size=8).any()
    with pytest.raises(UsageError):
        m.boxes_to_mask([[0.1, float("nan"), 0.5, 0.5]], size=8)
    with pytest.raises(UsageError):
        m.boxes_to_mask([0.1, 0.2, 0.3], size=8)


def test_boxes_to_mask_non_square_and_pixel_units():
    # (h, w) = (4, 8): [.5,.5,1,1] -> rows 2:4, cols 4:8
    mask = m.boxes_to_mask([[0.5, 0.5, 1.0, 1.0]], size=(4, 8))
    assert mask.shape == (4, 8) and mask.sum() == 8 and mask[2:, 4:].all()
    # pixel units, clipped to [0, 8] x [0, 4]: [2, 1, 10, 3] -> rows 1:3, cols 2:8
    mask = m.boxes_to_mask(np.array([[2, 1, 10, 3]]), size=(4, 8), normalized=False)
    assert mask.sum() == 12 and mask[1:3, 2:].all()


def test_boxes_to_mask_matches_ezvsl_bbox2gtmap():
    rng = np.random.default_rng(3)
    boxes = rng.uniform(-0.2, 1.2, size=(4, 4))
    gt_map = np.zeros((224, 224))
    for xmin, ymin, xmax, ymax in (np.clip(boxes, 0, 1) * 224).astype(int):
        gt_map[ymin:ymax, xmin:xmax] = 1
    np.testing.assert_array_equal(m.boxes_to_mask(boxes), gt_map > 0)


# ---------------------------------------------------------------- pointing game


def test_pointing_hit():
    gt = np.zeros((4, 4), dtype=bool)
    gt[1, 2] = True  # row 1, column 2
    assert m.pointing_hit((2, 1), gt)  # (x=col, y=row)
    assert not m.pointing_hit((1, 2), gt)
    assert m.pointing_hit((2.4, 0.6), gt)  # rounds to (2, 1)
    assert not m.pointing_hit((2.5, 1), gt)  # half up: column 3
    assert not m.pointing_hit((-1, 0), gt)
    assert not m.pointing_hit((10, 10), gt)


def test_pointing_game_ties_go_to_first_in_row_major_order():
    heat = np.zeros((4, 4))
    heat[0, 3] = heat[1, 2] = 1.0  # (0,3) comes first
    gt = np.zeros((4, 4), dtype=bool)
    gt[1, 2] = True
    assert not m.pointing_game(heat, gt)
    gt[0, 3] = True
    assert m.pointing_game(torch.tensor(heat), gt)


# ---------------------------------------------------------------- summary, centre prior


def test_summarize():
    rows = [
        {"iou": 0.5, "ciou": 0.62, "pointing": True},
        {"iou": None, "ciou": 0.22, "pointing": False},
        {"iou": 0.25, "mask_f": float("nan"), "ciou": float("nan")},
    ]
    # cIoU 0.62, 0.22: success t=0..0.20 (5 thresholds) -> 1; t=0.25..0.60 (8) -> 0.5; else 0
    # AUC = 0.05 * (5 + 4 - (1 + 0)/2) = 0.425
    out = m.summarize(rows)
    assert out["n"] == 3
    assert out["miou"] == pytest.approx(0.375, abs=TOL)
    assert out["mask_f"] is None
    assert out["ciou"] == pytest.approx(0.42, abs=TOL)
    assert out["ap50"] == pytest.approx(0.5, abs=TOL)
    assert out["auc"] == pytest.approx(0.425, abs=TOL)
    assert out["pointing_game"] == pytest.approx(0.5, abs=TOL)
    assert m.summarize([]) == {
        "n": 0,
        "miou": None,
        "mask_f": None,
        "ciou": None,
        "ap50": None,
        "auc": None,
        "pointing_game": None,
    }


@pytest.mark.parametrize(("height", "width"), [(224, 224), (90, 160)])
def test_centre_prior_covers_half_the_frame(height, width):
    prior = m.centre_prior(height, width)
    assert prior.shape == (height, width)
    assert prior.min() > 0.0 and prior.max() <= 1.0
    assert (prior >= 0.5).mean() == pytest.approx(0.5, abs=0.01)
    row, col = np.unravel_index(np.argmax(prior), prior.shape)
    assert abs(row - (height - 1) / 2) <= 0.5 and abs(col - (width - 1) / 2) <= 0.5
    # the cIoU protocol's median threshold selects (about) the same half-area region
    assert m.ciou(prior, prior >= 0.5) == pytest.approx(1.0, abs=0.02)
