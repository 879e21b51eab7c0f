"""Online churn model: a river pipeline with progressive validation and earned trust.

Why StandardScaler | LogisticRegression: the features are a few dozen bounded
numbers whose effect on churn is close to monotone, labels arrive slowly and
out of any i.i.d. order, and the model must be cheap to apply on every event.
A scaled logistic regression learns stably from few labels, its probabilities
are usable for blending as-is, and it collapses to one dot product: ``_compile``
folds the scaler into the weights so scoring costs ~1 us instead of river's
~15 us per call. (Other river models were not yet compared on real
labels; docs/scoring.md says what to measure.)

Snapshots are a pickle of the pipeline plus counters: the river objects are
plain Python, pickle round-trips them exactly, and the only producer is our own
trainer on a compacted internal topic (never untrusted input).
"""

from __future__ import annotations

import math
import pickle
from typing import Any

from river import compose, linear_model, metrics, optim, preprocessing

from services.scorer.core.scorecard import ModelBlend

_SNAPSHOT_FORMAT = 1
# river leaves this class unannotated; an Any alias keeps mypy --strict and plain mypy agreeing.
_ROLLING_AUC: Any = metrics.RollingROCAUC


class ChurnModel:
    """Predicts P(churn) from a feature dict; learns one labelled example at a time."""

    def __init__(self, blend: ModelBlend | None = None) -> None:
        self.blend = blend if blend is not None else ModelBlend()
        self.pipeline: Any = compose.Pipeline(
            preprocessing.StandardScaler(),
            linear_model.LogisticRegression(optimizer=optim.SGD(0.05), l2=1e-4),
        )
        self.auc: Any = _ROLLING_AUC(window_size=self.blend.auc_window)
        self.labels_seen = 0
        self.positives = 0
        self._const = 0.0
        self._coefs: dict[str, float] = {}
        self._dirty = True
        self._trust = 0.0
        self._trust_key: tuple[int, int, ModelBlend, Any] | None = None

    # -- scoring ---------------------------------------------------------------
    @property
    def version(self) -> str:
        """Changes whenever the model learns, so a health update names what produced it."""
        return f"lr-{self.labels_seen}"

    @property
    def rolling_auc(self) -> float | None:
        """Rolling ROC AUC of predictions made *before* learning each label.

        None until both classes were seen (AUC is undefined before).
        """
        if self.positives == 0 or self.positives == self.labels_seen:
            return None
        return float(self.auc.get())

    def trusted_weight(self) -> float:
        """Blend weight of the model: 0 until it earned trust, then grows with labels and AUC.

        Cached until the model learns (or its blend or AUC tracker is replaced):
        the engine asks on every score, and river's rolling AUC is costly to read.
        """
        key = self._trust_key
        if (
            key is None
            or key[0] != self.labels_seen
            or key[1] != self.positives
            or key[2] is not self.blend
            or key[3] is not self.auc
        ):
            self._trust = self._compute_trust()
            self._trust_key = (self.labels_seen, self.positives, self.blend, self.auc)
        return self._trust

    def _compute_trust(self) -> float:
        auc = self.rolling_auc
        b = self.blend
        if auc is None or self.labels_seen < b.min_labels or auc < b.min_auc:
            return 0.0
        span = max(b.full_trust_auc - b.min_auc, 1e-9)
        auc_part = min(1.0, (auc - b.min_auc) / span)
        label_part = min(1.0, self.labels_seen / max(b.full_trust_labels, b.min_labels))
        return b.max_weight * auc_part * label_part

    def _compile(self) -> None:
        scaler = self.pipeline["StandardScaler"]
        lr = self.pipeline["LogisticRegression"]
        const = float(lr.intercept)
        coefs: dict[str, float] = {}
        for name, weight in lr.weights.items():
            var = scaler.vars.get(name, 0.0)
            if not var:
                continue
            coef = float(weight) / math.sqrt(var)
            coefs[name] = coef
            const -= coef * float(scaler.means[name])
        self._coefs = coefs
        self._const = const
        self._dirty = False

    def predict_proba_one(self, features: dict[str, float]) -> float:
        """P(churn); equal (to float rounding) to the river pipeline's own prediction."""
        if self._dirty:
            self._compile()
        z = self._const
        for name, coef in self._coefs.items():
            z += coef * features.get(name, 0.0)
        if z < -30:
            return 0.0
        if z > 30:
            return 1.0
        return 1.0 / (1.0 + math.exp(-z))

    # -- learning --------------------------------------------------------------
    def learn_one(self, features: dict[str, float], label: int) -> float:
        """Progressive validation: predict, update the rolling AUC, then learn.

        Returns the prediction made before learning.
        """
        predicted = self.predict_proba_one(features) if self.labels_seen else 0.5
        self.auc.update(bool(label), predicted)
        self.pipeline.learn_one(features, bool(label))
        self.labels_seen += 1
        self.positives += 1 if label else 0
        self._dirty = True
        return predicted

    # -- persistence -----------------------------------------------------------
    def snapshot(self) -> bytes:
        return pickle.dumps(
            (
                _SNAPSHOT_FORMAT,
                self.blend.model_dump(),
                self.pipeline,
                self.auc,
                self.labels_seen,
                self.positives,
            ),
            protocol=pickle.HIGHEST_PROTOCOL,
        )

    @classmethod
    def from_snapshot(cls, raw: bytes, blend: ModelBlend | None = None) -> ChurnModel:
        """Load a trainer snapshot; ``blend`` overrides the trust settings it was saved with."""
        fmt, blend_data, pipeline, auc, labels_seen, positives = pickle.loads(raw)
        if fmt != _SNAPSHOT_FORMAT:
            raise ValueError(f"unknown churn model snapshot format {fmt!r}")
        model = cls(blend if blend is not None else ModelBlend.model_validate(blend_data))
        model.pipeline = pipeline
        model.auc = auc
        model.labels_seen = int(labels_seen)
        model.positives = int(positives)
        model._dirty = True
        return model
