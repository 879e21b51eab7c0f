"""Online churn model: a river pipeline with progressive validation and earned trust.

Why StandardScaler | LogisticRegression: the features are a few dozen bounded
numbers whose effect on churn is close to monotone, labels arrive slowly and
out of any i.i.d. order, and the model must be cheap to apply on every event.
A scaled logistic regression learns stably from few labels, its probabilities
are usable for blending as-is, and it collapses to one dot product: ``_compile``
folds the scaler into the weights so scoring costs ~1 us instead of river's
~15 us per call. (Other river models were not yet compared on real
labels; docs/scoring.md says what to measure.)

How much the health score trusts the model is not a rule of labels seen: the
:class:`~services.scorer.core.blend.BlendSelector` re-chooses the weight from
how well the scorecard, the model and their mixtures ranked the recent labelled
examples (``learn_one`` feeds it the prediction made before learning).

Snapshots are a pickle of the pipeline plus counters: the river objects are
plain Python, pickle round-trips them exactly, and the only producer is our own
trainer on a compacted internal topic (never untrusted input).
"""

from __future__ import annotations

import math
import pickle
from typing import Any

from river import compose, linear_model, metrics, optim, preprocessing

from services.scorer.core.blend import BlendSelector
from services.scorer.core.scorecard import ModelBlend

_SNAPSHOT_FORMAT = 2
#: Counts and durations whose meaning flattens as they grow (the second active day says
#: more than the fiftieth, day 20 of silence more than day 200): the model sees
#: ``log1p`` of them. Raw, a few heavy-tailed columns swamp the rest: on CDNOW the model
#: alone ranked 0.724 (validation task) and 0.617 (test) with raw columns, 0.740 and
#: 0.767 with these (docs/scoring.md).
LOG_COLUMNS = frozenset(
    {
        "days_inactive",
        "recency_ratio",
        "usage_7d",
        "usage_28d",
        "active_days_28d",
        "active_days_total",
        "typical_gap_days",
        "active_users_28d",
        "feature_breadth_28d",
        "account_age_days",
        "ttfv_days",
        "open_tickets",
        "over_sla_tickets",
    }
)


def model_inputs(features: dict[str, float]) -> dict[str, float]:
    """The model's view of a feature vector: ``LOG_COLUMNS`` as ``log1p`` (of >= 0)."""
    return {
        name: (math.log1p(value) if value > 0 else 0.0) if name in LOG_COLUMNS else value
        for name, value in features.items()
    }


# river leaves this class unannotated; an Any alias keeps mypy --strict and plain mypy agreeing.
_ROLLING_AUC: Any = metrics.RollingROCAUC


class ChurnModel:
    """Predicts P(churn) from a feature dict; learns one labelled example at a time."""

    def __init__(self, blend: ModelBlend | None = None) -> None:
        self.blend = blend if blend is not None else ModelBlend()
        self.pipeline: Any = compose.Pipeline(
            compose.FuncTransformer(model_inputs),
            preprocessing.StandardScaler(),
            linear_model.LogisticRegression(optimizer=optim.SGD(0.05), l2=1e-4),
        )
        self.auc: Any = _ROLLING_AUC(window_size=self.blend.auc_window)
        self.labels_seen = 0
        self.positives = 0
        self.selector = BlendSelector(self.blend)
        self._const = 0.0
        self._coefs: dict[str, float] = {}
        self._log_coefs: dict[str, float] = {}
        self._dirty = True

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
        """Weight of the model in the health score, as last earned on recent outcomes.

        0 until ``min_labels`` examples with a scorecard score (and enough of
        each class) were seen; then whichever mixture ranked the recent window
        best (see :class:`BlendSelector`). A plain attribute read: the engine
        asks on every score.
        """
        return self.selector.weight

    def blend_reason(self) -> dict[str, float | None]:
        """Why the weight is what it is: rolling AUCs of each part and of the mix, same window."""
        sel = self.selector
        return {
            "weight": sel.weight,
            "auc_scorecard": sel.auc_scorecard,
            "auc_model": sel.auc_model,
            "auc_health": sel.auc_health,
            "window": float(len(sel.recent)),
        }

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
        self._coefs = {k: v for k, v in coefs.items() if k not in LOG_COLUMNS}
        self._log_coefs = {k: v for k, v in coefs.items() if k in LOG_COLUMNS}
        self._const = const
        self._dirty = False

    def predict_proba_one(self, features: dict[str, float]) -> float:
        """P(churn); equal (to float rounding) to the river pipeline's own prediction."""
        if self._dirty:
            self._compile()
        z = self._const
        get = features.get
        for name, coef in self._coefs.items():
            z += coef * get(name, 0.0)
        log1p = math.log1p
        for name, coef in self._log_coefs.items():
            value = get(name, 0.0)
            if value > 0:
                z += coef * log1p(value)
        if z < -30:
            return 0.0
        if z > 30:
            return 1.0
        return 1.0 / (1.0 + math.exp(-z))

    # -- learning --------------------------------------------------------------
    def learn_one(
        self, features: dict[str, float], label: int, scorecard: float | None = None
    ) -> float:
        """Progressive validation: predict, update the rolling AUC and the blend, then learn.

        ``scorecard``: the scorecard score taken with ``features`` (examples from
        before it was recorded have none and teach the model only). Returns the
        prediction made before learning.
        """
        predicted = self.predict_proba_one(features) if self.labels_seen else 0.5
        self.auc.update(bool(label), predicted)
        if scorecard is not None:
            self.selector.observe(scorecard, predicted, label)
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
                self.selector,
            ),
            protocol=pickle.HIGHEST_PROTOCOL,
        )

    @classmethod
    def from_snapshot(cls, raw: bytes, blend: ModelBlend | None = None) -> ChurnModel:
        """Load a trainer snapshot; ``blend`` overrides the blend settings it was saved with.

        A format-1 snapshot (raw inputs, before the blend was earned) loads as a
        fresh model: its weights were learned on other inputs, and the blend
        gives the model no weight until it earns it again.
        """
        data = pickle.loads(raw)
        fmt = data[0]
        if fmt not in (1, _SNAPSHOT_FORMAT):
            raise ValueError(f"unknown churn model snapshot format {fmt!r}")
        blend_data, pipeline, auc, labels_seen, positives = data[1:6]
        saved = ModelBlend.model_validate(_known(blend_data))
        model = cls(blend if blend is not None else saved)
        if fmt == 1:
            return model
        model.pipeline = pipeline
        model.auc = auc
        model.labels_seen = int(labels_seen)
        model.positives = int(positives)
        selector: BlendSelector = data[6]
        model.selector = selector if model.blend == saved else selector.resized(model.blend)
        model._dirty = True
        return model


def _known(blend_data: dict[str, Any]) -> dict[str, Any]:
    """Blend settings of a snapshot, without fields this version no longer has."""
    return {k: v for k, v in blend_data.items() if k in ModelBlend.model_fields}
