"""The health score's mix of scorecard and churn model, earned on recent outcomes.

``health = (1 - w) x scorecard + w x 100 x (1 - P(churn))``. Neither part is
trusted by rule: every labelled example carries the scorecard score taken with
its features, and the model's prediction for it made before the model learned
it (progressive validation). Over the last ``auc_window`` such examples the
selector computes the ROC AUC of every candidate mixture ``w = 0, step, ..., max``
in exactly the formula above and keeps the best one. So on any data the health
score ranks the recent outcomes at least as well as the better of its parts, up
to ``switch_margin``, which stops it from flapping between near-equal weights.

Only labels already known feed it, in the order they became known: the weight
in use at any moment depends on nothing later (a test checks that).
"""

from __future__ import annotations

from collections import deque

import numpy as np
from numpy.typing import NDArray

from services.scorer.core.scorecard import ModelBlend


def mix(scorecard_score: float, model_p: float, weight: float) -> float:
    """The health score of a mixture (before clipping and rounding)."""
    return (1.0 - weight) * scorecard_score + weight * 100.0 * (1.0 - model_p)


def rank_auc(labels: NDArray[np.int8], risk: NDArray[np.float64]) -> float:
    """ROC AUC of ``risk`` (higher = churn), ties counting one half (Mann-Whitney U)."""
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(risk, kind="mergesort")
    ordered = risk[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(ordered)]
    ranks = np.empty(len(ordered), dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    u = ranks[labels == 1].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


class BlendSelector:
    """Keeps the recent (scorecard score, model prediction, label) triples and the chosen weight.

    ``auc_scorecard``, ``auc_model`` and ``auc_health`` are the rolling AUCs of
    the scorecard alone, the model alone and the chosen mixture over the window
    at the last refit: why the weight is what it is (exported as metrics and in
    the evaluation report).
    """

    def __init__(self, config: ModelBlend) -> None:
        self.config = config
        self.recent: deque[tuple[float, float, int]] = deque(maxlen=config.auc_window)
        self.weight = 0.0
        self.auc_scorecard: float | None = None
        self.auc_model: float | None = None
        self.auc_health: float | None = None
        self.observed = 0
        self.refits = 0
        self._since_refit = 0
        steps = round(config.max_weight / config.weight_step)
        grid = [min(config.max_weight, i * config.weight_step) for i in range(steps + 1)]
        if grid[-1] < config.max_weight:
            grid.append(config.max_weight)
        self.grid = np.array(grid, dtype=np.float64)

    def observe(self, scorecard_score: float, model_p: float, label: int) -> None:
        """One labelled example, scored by both parts before the model learned it."""
        self.recent.append((float(scorecard_score), float(model_p), 1 if label else 0))
        self.observed += 1
        self._since_refit += 1
        if self._since_refit >= self.config.refit_every:
            self.refit()

    def refit(self) -> None:
        """Re-choose the weight from the window (also done every ``refit_every`` labels)."""
        self._since_refit = 0
        if not self.recent:
            return
        self.refits += 1
        data = np.array(self.recent, dtype=np.float64)
        labels = data[:, 2].astype(np.int8)
        card, model_p = data[:, 0], data[:, 1]
        positives = int(labels.sum())
        negatives = len(labels) - positives
        if positives == 0 or negatives == 0:
            return
        self.auc_scorecard = rank_auc(labels, -card)
        self.auc_model = rank_auc(labels, model_p)
        cfg = self.config
        if (
            self.observed < cfg.min_labels
            or positives < cfg.min_class_labels
            or negatives < cfg.min_class_labels
        ):
            self.weight = 0.0
            self.auc_health = self.auc_scorecard
            return
        model_score = 100.0 * (1.0 - model_p)
        aucs = [rank_auc(labels, -((1.0 - w) * card + w * model_score)) for w in self.grid]
        best = int(np.argmax(aucs))  # the first maximum: the least model weight among ties
        current = int(np.argmin(np.abs(self.grid - self.weight)))
        if aucs[best] > aucs[current] + cfg.switch_margin:
            current = best
        self.weight = float(self.grid[current])
        self.auc_health = aucs[current]

    def resized(self, config: ModelBlend) -> BlendSelector:
        """The same history under other settings (a scorecard loaded over a saved model)."""
        other = BlendSelector(config)
        other.recent.extend(self.recent)
        other.observed = self.observed
        other.weight = min(self.weight, config.max_weight)
        other.refit()
        return other
