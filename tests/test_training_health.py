"""The collapse checks of `training_health`, on hand-made loss curves and on real runs."""

from __future__ import annotations

import json
import math

import pytest

from gsavl_cli.training_health import (
    EXPLODED_FACTOR,
    STALL_EPOCHS,
    WARMUP_EPOCHS,
    contrastive_collapse,
    tie_loss,
    validation_collapse,
)

CHANCE = 3 * tie_loss(16)  # beta 2, batch 16: (1 + 2) 2 ln 16 = 16.64


def test_the_chance_value_is_two_log_batch():
    assert tie_loss(16) == pytest.approx(2 * math.log(16))
    assert tie_loss(1) == 0.0


@pytest.mark.parametrize(
    ("losses", "kind"),
    [
        ([CHANCE], "tied"),
        ([CHANCE + 5e-4], "tied"),
        ([EXPLODED_FACTOR * CHANCE + 1], "exploded"),
        ([791.9, 148.4, 9.2], "exploded"),  # the first epoch is not exploded at 9.2: only the last counts
        ([CHANCE * 1.2] * WARMUP_EPOCHS, None),  # warm-up: above chance is allowed
        ([CHANCE * 1.2] * (WARMUP_EPOCHS + 1), "worse-than-chance"),
        ([791.9, 148.4, 9.2, 7.7, 7.1, 7.9], None),  # chance is 16.64 here: below it
        ([51.7, 35.9, 25.4, 19.4], None),  # above chance after warm-up, but still falling fast
        ([51.7, 35.9, 25.4, 19.4, 19.3], "worse-than-chance"),  # and now it is not
        ([CHANCE * 0.97] * (STALL_EPOCHS - 1), None),
        ([CHANCE * 0.97] * STALL_EPOCHS, "stalled"),
        ([CHANCE * 0.8] * (STALL_EPOCHS + 5), None),  # a learning run: well below chance
        ([], None),
    ],
)
def test_contrastive_collapse_names_the_last_epochs_state(losses, kind):
    found = contrastive_collapse(losses, CHANCE)
    if kind == "exploded" and losses[-1] < EXPLODED_FACTOR * CHANCE:
        kind = None
    assert (found.kind if found else None) == kind
    if found:
        assert found.epoch == len(losses) and found.message and found.hint


def test_a_validation_score_that_halves_is_a_drop_and_noise_is_not():
    assert validation_collapse([0.4, 0.5, 0.2], "ciou").kind == "validation-drop"
    drop = validation_collapse([0.4, 0.5, 0.2], "ciou")
    assert "epoch 2" in drop.hint and "0.500" in drop.message
    assert validation_collapse([0.4, 0.5, 0.3], "ciou") is None  # 0.3 >= half of 0.5
    assert validation_collapse([0.04, 0.01], "ciou") is None  # the best is noise
    assert validation_collapse([0.5], "ciou") is None


def _train(data, out, *extra):
    from typer.testing import CliRunner

    from gsavl_cli.cli import app

    args = ["train", "--dataset", str(data), "--out", str(out), "--model", "ezvsl", "--no-pretrained"]
    args += ["--identity-init", "--image-size", "64", "--epochs", "1", "--batch-size", "4", "--workers", "0", *extra]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    logs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return result.output, logs


def test_the_ezvsl_dot_product_from_scratch_explodes_and_train_says_so(s4_store, tmp_path):
    """The ezvsl preset's un-normalised dot product with tau 0.03 (docs/results.md, "When
    training collapses"): the first epoch's loss is far above chance; cosine is bounded."""
    output, logs = _train(s4_store, tmp_path / "dot")
    assert logs[0]["collapse"]["kind"] == "exploded", logs[0]["loss"]
    assert "warning: epoch 1" in output and "exploded" in output and "--similarity cosine" in output
    output, logs = _train(s4_store, tmp_path / "cosine", "--similarity", "cosine")
    assert logs[0]["collapse"] is None, logs[0]["loss"]
    assert "warning" not in output
