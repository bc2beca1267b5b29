"""Evaluation metrics of the two benchmarks GSAVL reports (docs/results.md).

- `core`: inputs, binarisation and the one mask IoU (AVSBench's per-frame M_J rule);
- `avsbench` (S4/MS3): F-score with beta^2 = 0.3 (M_F) and the benchmark's batch
  M_J / M_F, following the official AVSBench `utility.py`;
- `vggss` (EZ-VSL protocol): cIoU of the heatmap thresholded at its median, AP50 and
  the AUC of the success curve, boxes as masks, and a model-free centre prior;
- `pointing`: the pointing game (is the heatmap's peak on the source?);
- `negative`: scores under negative audio (AVSBench-Robust's FPR, the abstention failure rate);
- `summary`: dataset scores from per-sample rows.

Inputs may be NumPy arrays or torch tensors; scores come back as Python floats.
Masks that are not boolean are binarised with `> 0.5`. Every public name is
importable from `gsavl_cli.metrics`.
"""

from gsavl_cli.metrics.avsbench import (
    AVS_BATCH_FRAMES,
    avsbench_fmeasure,
    avsbench_from_rows,
    avsbench_miou,
    avsbench_thresholds,
    f_measure,
    f_measure_curve,
    f_measure_soft,
    frame_fmeasure,
    frame_miou,
    hard_mask_f_curve,
)
from gsavl_cli.metrics.core import mask_iou, mask_iou_batch
from gsavl_cli.metrics.negative import any_foreground, false_positive_rate, negative_audio_summary
from gsavl_cli.metrics.pointing import pointing_game, pointing_hit
from gsavl_cli.metrics.summary import summarize
from gsavl_cli.metrics.vggss import (
    AUC_THRESHOLDS,
    ap50,
    auc,
    boxes_to_mask,
    centre_prior,
    ciou,
    ciou_of_mask,
    median_threshold,
    success_curve,
)

__all__ = [
    "AUC_THRESHOLDS",
    "AVS_BATCH_FRAMES",
    "any_foreground",
    "ap50",
    "auc",
    "avsbench_fmeasure",
    "avsbench_from_rows",
    "avsbench_miou",
    "avsbench_thresholds",
    "boxes_to_mask",
    "centre_prior",
    "ciou",
    "ciou_of_mask",
    "f_measure",
    "f_measure_curve",
    "f_measure_soft",
    "false_positive_rate",
    "frame_fmeasure",
    "frame_miou",
    "hard_mask_f_curve",
    "mask_iou",
    "mask_iou_batch",
    "median_threshold",
    "negative_audio_summary",
    "pointing_game",
    "pointing_hit",
    "success_curve",
    "summarize",
]
