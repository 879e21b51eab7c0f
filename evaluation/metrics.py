"""Ranking and calibration metrics, implemented with numpy only.

Why not scikit-learn: it is a heavy dependency for five formulas, and writing
them here keeps tie handling explicit (health scores are integers-ish, so ties
are common and must not be broken by file order).

Convention: ``scores`` are *risk* scores, higher = more likely positive (churn).
Callers turn "low health = risk" into ``-health``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray


def _arrays(labels: ArrayLike, scores: ArrayLike) -> tuple[NDArray[np.int8], NDArray[np.float64]]:
    y = np.asarray(labels, dtype=np.int8).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError("labels and scores must have the same length")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("labels must be 0 or 1")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    return y, s


def average_ranks(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """1-based ranks, ties get the mean of the ranks they span (like scipy's rankdata)."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # Boundaries of runs of equal values.
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    mean_rank = (starts + ends + 1) / 2.0  # mean of (start+1 .. end)
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def roc_auc(labels: ArrayLike, scores: ArrayLike) -> float:
    """Probability that a random positive outranks a random negative (ties count 1/2).

    Mann-Whitney U from average ranks; NaN when one class is missing.
    """
    y, s = _arrays(labels, scores)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = average_ranks(s)
    u = ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def _threshold_counts(
    y: NDArray[np.int8], s: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Cumulative true/false positives at each distinct score, highest first."""
    order = np.argsort(-s, kind="mergesort")
    s_sorted = s[order]
    y_sorted = y[order].astype(np.float64)
    last_of_group = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True])
    tps = np.cumsum(y_sorted)[last_of_group]
    fps = (last_of_group + 1) - tps
    return tps, fps, s_sorted[last_of_group]


def roc_curve(
    labels: ArrayLike, scores: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """False-positive rate, true-positive rate and thresholds, starting at (0, 0)."""
    y, s = _arrays(labels, scores)
    tps, fps, thresholds = _threshold_counts(y, s)
    n_pos = max(1.0, float(y.sum()))
    n_neg = max(1.0, float(len(y) - y.sum()))
    return (
        np.r_[0.0, fps / n_neg],
        np.r_[0.0, tps / n_pos],
        np.r_[np.inf, thresholds],
    )


def pr_auc(labels: ArrayLike, scores: ArrayLike) -> float:
    """Average precision: sum over distinct thresholds of (recall step) x precision.

    Tied scores form one threshold, so their order never matters. NaN without positives.
    """
    y, s = _arrays(labels, scores)
    n_pos = int(y.sum())
    if n_pos == 0 or len(y) == 0:
        return math.nan
    tps, fps, _ = _threshold_counts(y, s)
    precision = tps / (tps + fps)
    recall = tps / n_pos
    steps = np.diff(np.r_[0.0, recall])
    return float(np.sum(steps * precision))


def _expected_positives_top(y: NDArray[np.int8], s: NDArray[np.float64], k: int) -> float:
    """Expected churners among the ``k`` riskiest, ties at the cut shared pro rata.

    That is the mean over every order of the tied scores, so the file order of
    equal scores (common: health is rounded) never changes a figure.
    """
    if k <= 0:
        return 0.0
    order = np.argsort(-s, kind="mergesort")
    cut_value = s[order][k - 1]
    above = s > cut_value
    tied = s == cut_value
    n_above = int(above.sum())
    positives = float(y[above].sum())
    positives += (k - n_above) * float(y[tied].sum()) / float(tied.sum())
    return positives


def lift_at(labels: ArrayLike, scores: ArrayLike, fraction: float = 0.1) -> float:
    """Churn rate among the riskiest ``fraction`` divided by the overall churn rate.

    Ties at the cut are shared pro rata (the expected value under a random tie order).
    """
    y, s = _arrays(labels, scores)
    if not 0 < fraction <= 1:
        raise ValueError("fraction must be in (0, 1]")
    n = len(y)
    base = float(y.mean()) if n else math.nan
    if n == 0 or base == 0:
        return math.nan
    k = max(1, math.ceil(n * fraction))
    return (_expected_positives_top(y, s, k) / k) / base


def lift_by_group(labels: ArrayLike, scores: ArrayLike, groups: int = 10) -> list[float]:
    """Lift of each of ``groups`` equal slices of the risk ranking, riskiest first.

    Slice ``i`` holds ranks ``[round(n*i/groups), round(n*(i+1)/groups))``; its lift
    is its churn rate over the overall churn rate (1.0 = no better than chance).
    Ties across a slice boundary are shared pro rata, like :func:`lift_at`.
    """
    y, s = _arrays(labels, scores)
    if groups < 1:
        raise ValueError("groups must be at least 1")
    n = len(y)
    base = float(y.mean()) if n else math.nan
    if n == 0 or base == 0:
        return [math.nan] * groups
    bounds = [round(n * i / groups) for i in range(groups + 1)]
    cumulative = [_expected_positives_top(y, s, k) for k in bounds]
    out = []
    for i in range(groups):
        size = bounds[i + 1] - bounds[i]
        gained = cumulative[i + 1] - cumulative[i]
        out.append((gained / size) / base if size else math.nan)
    return out


@dataclass(frozen=True)
class CalibrationBin:
    lower: float
    upper: float
    count: int
    mean_predicted: float
    observed_rate: float


def calibration(
    labels: ArrayLike, probabilities: ArrayLike, bins: int = 10
) -> tuple[list[CalibrationBin], float, float]:
    """Reliability table over equal-width probability bins, Brier score and expected
    calibration error (count-weighted |observed - predicted|)."""
    y, p = _arrays(labels, probabilities)
    if np.any((p < 0) | (p > 1)):
        raise ValueError("probabilities must be within [0, 1]")
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    table: list[CalibrationBin] = []
    ece = 0.0
    for b in range(bins):
        mask = index == b
        count = int(mask.sum())
        if count == 0:
            continue
        predicted = float(p[mask].mean())
        observed = float(y[mask].mean())
        ece += count * abs(observed - predicted)
        table.append(
            CalibrationBin(float(edges[b]), float(edges[b + 1]), count, predicted, observed)
        )
    n = len(y)
    brier = float(np.mean((p - y) ** 2)) if n else math.nan
    return table, brier, (ece / n if n else math.nan)
