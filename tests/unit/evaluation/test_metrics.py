"""Metrics against cases computed by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evaluation.metrics import (
    average_ranks,
    calibration,
    lift_at,
    lift_by_group,
    pr_auc,
    roc_auc,
    roc_curve,
)

# Five accounts, risk scores with a tie between a churner and a retained account:
#   score: 0.9  0.8  0.8  0.4  0.1
#   label:  1    1    0    0    1
LABELS = [1, 1, 0, 0, 1]
SCORES = [0.9, 0.8, 0.8, 0.4, 0.1]


def test_average_ranks_share_ties() -> None:
    ranks = average_ranks(np.array([0.9, 0.8, 0.8, 0.4, 0.1]))
    assert ranks.tolist() == [5.0, 3.5, 3.5, 2.0, 1.0]


def test_roc_auc_by_hand_with_a_tie() -> None:
    # Pairs (positive, negative), 3 x 2 = 6:
    #   0.9 vs 0.8 win, 0.9 vs 0.4 win, 0.8 vs 0.8 tie (1/2), 0.8 vs 0.4 win,
    #   0.1 vs 0.8 loss, 0.1 vs 0.4 loss  ->  (3 + 0.5) / 6
    assert roc_auc(LABELS, SCORES) == pytest.approx(3.5 / 6)


def test_roc_auc_extremes_and_missing_class() -> None:
    assert roc_auc([0, 0, 1, 1], [1, 2, 3, 4]) == 1.0
    assert roc_auc([0, 0, 1, 1], [4, 3, 2, 1]) == 0.0
    assert roc_auc([1, 1, 0, 0], [5, 5, 5, 5]) == 0.5
    assert math.isnan(roc_auc([1, 1], [0.2, 0.3]))


def test_pr_auc_by_hand_with_a_tie() -> None:
    # Thresholds (highest first):
    #   >=0.9: tp 1 fp 0, precision 1,    recall 1/3 -> step 1/3 x 1
    #   >=0.8: tp 2 fp 1, precision 2/3,  recall 2/3 -> step 1/3 x 2/3
    #   >=0.4: tp 2 fp 2, precision 1/2,  recall 2/3 -> step 0
    #   >=0.1: tp 3 fp 2, precision 3/5,  recall 1   -> step 1/3 x 3/5
    expected = (1 + 2 / 3 + 3 / 5) / 3
    assert pr_auc(LABELS, SCORES) == pytest.approx(expected)


def test_roc_curve_points() -> None:
    fpr, tpr, _ = roc_curve(LABELS, SCORES)
    assert fpr.tolist() == pytest.approx([0, 0, 0.5, 1.0, 1.0])
    assert tpr.tolist() == pytest.approx([0, 1 / 3, 2 / 3, 2 / 3, 1.0])


def test_lift_shares_ties_at_the_cut() -> None:
    # Top 40% = 2 of 5: 0.9 (churner) and one of the tied 0.8s (1 churner in 2):
    # expected churners 1 + 1/2 = 1.5 -> rate 0.75; base rate 3/5 -> lift 1.25
    assert lift_at(LABELS, SCORES, 0.4) == pytest.approx(1.25)
    # Top 20% = the 0.9 churner: rate 1 / 0.6
    assert lift_at(LABELS, SCORES, 0.2) == pytest.approx(1 / 0.6)


def test_lift_by_group_by_hand() -> None:
    # Five slices of one account each; expected churners per slice (ties shared):
    #   0.9 -> 1; the two 0.8s (1 churner of 2) -> 0.5 each; 0.4 -> 0; 0.1 -> 1.
    # Base rate 3/5, so lifts are (1, 0.5, 0.5, 0, 1) / 0.6.
    lifts = lift_by_group(LABELS, SCORES, 5)
    assert lifts == pytest.approx([1 / 0.6, 0.5 / 0.6, 0.5 / 0.6, 0.0, 1 / 0.6])
    # Two slices: ranks [0, 2) and [2, 5): 1.5 of 2 churn, then 1.5 of 3.
    assert lift_by_group(LABELS, SCORES, 2) == pytest.approx([0.75 / 0.6, 0.5 / 0.6])
    # The slices' lifts average to 1 when the slices have equal size.
    assert sum(lifts) / 5 == pytest.approx(1.0)


def test_calibration_table_brier_and_ece() -> None:
    labels = [0, 0, 1, 1]
    probs = [0.1, 0.15, 0.8, 0.95]
    table, brier, ece = calibration(labels, probs, bins=2)
    assert [(b.count, b.observed_rate) for b in table] == [(2, 0.0), (2, 1.0)]
    # Brier: (0.01 + 0.0225 + 0.04 + 0.0025) / 4
    assert brier == pytest.approx(0.075 / 4)
    # ECE: bin 1 |0 - 0.125| x 2, bin 2 |1 - 0.875| x 2, over 4
    assert ece == pytest.approx(0.125)


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="same length"):
        roc_auc([1, 0], [0.1])
    with pytest.raises(ValueError, match="0 or 1"):
        roc_auc([2, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match="finite"):
        pr_auc([1, 0], [math.nan, 0.2])
