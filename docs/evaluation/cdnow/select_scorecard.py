"""Choose the CDNOW scorecard on the *early* data only (validation), never on the test window.

Validation task: score at 1997-06-30, churn = no purchase in (1997-06-30, 1997-09-30].
No event after 1997-09-30 (the test cutoff) is ever applied: the runner ignores events
after ``VALIDATION_END`` and stops reading the file at the first one past the allowed
lateness (24 h), so the test window (1997-10-01 .. 1998-06-30) is never read.

Step 1 (scorecard): replay once without learning, keep every account's state at the
validation cutoff, then score those states under each candidate usage configuration
and rank candidates by the ROC AUC of the scorecard score.
Step 2 (model, ``model`` argument): per label horizon, one replay with online learning
up to the validation cutoff; print the model's labels, rolling AUC, the AUC of the
model alone, the weight the blend earned online and the health AUC with it (and,
for comparison, with fixed weights).
The choices and their figures are in README.md here.

Run from the repository root (the NDJSON comes from ``healthstream datasets cdnow``):
    .venv/bin/python docs/evaluation/cdnow/select_scorecard.py /tmp/cdnow.ndjson
    .venv/bin/python docs/evaluation/cdnow/select_scorecard.py /tmp/cdnow.ndjson model
"""

from __future__ import annotations

import itertools
import sys

import numpy as np

from evaluation.cli import parse_moment
from evaluation.metrics import roc_auc
from evaluation.runner import EvaluationRunner, churn_label
from services.scorer.core import (
    AccountState,
    ChurnModel,
    Scorecard,
    ScoringEngine,
    load_scorecard,
)
from services.scorer.core.blend import mix
from services.scorer.core.features import model_vector, vector_features
from simulator.ndjson import iter_lines

VALIDATION_CUTOFF = parse_moment("1997-06-30")
VALIDATION_END = parse_moment("1997-09-30")


class FreezingRunner(EvaluationRunner):
    """Also keeps every state (and the model) exactly as they were at the cutoff."""

    frozen: dict[str, bytes]
    model_at_cutoff: bytes | None = None

    def _take_snapshot(self) -> None:
        super()._take_snapshot()
        assert self.snapshots is not None
        self.frozen = {a: self.states[a].to_bytes() for a in self.snapshots}
        if self.model is not None:
            self.model_at_cutoff = self.model.snapshot()


def states_at_cutoff(
    path: str, scorecard: Scorecard, learn: bool
) -> tuple[dict[str, bytes], dict[str, int], bytes | None]:
    runner = FreezingRunner(scorecard, VALIDATION_CUTOFF, VALIDATION_END, tick_hours=0, learn=learn)
    result = runner.run(iter_lines(path))
    labels = {a: churn_label(result.tracks[a], result.cutoff, result.end) for a in result.snapshots}
    return runner.frozen, labels, runner.model_at_cutoff


def candidate(base: Scorecard | None = None, section: str = "usage", **values: float) -> Scorecard:
    base = base or load_scorecard(None)
    return base.model_copy(update={section: getattr(base, section).model_copy(update=values)})


def step1_usage(path: str) -> None:
    frozen, labels, _ = states_at_cutoff(path, load_scorecard(None), learn=False)
    ids = sorted(labels)
    y = np.array([labels[a] for a in ids])
    states = {a: AccountState.from_bytes(frozen[a]) for a in ids}
    usage = load_scorecard(None).usage
    print(
        f"validation accounts {len(ids)}, churn rate {y.mean():.3f}; grid over the shipped "
        f"usage settings (recency_weight {usage.recency_weight}, trend never applies here)"
    )
    grid = itertools.product(
        (3, 14, 30, 60),  # min_expected_gap_days
        (4, 8, 16),  # recency_zero_ratio
        (0.2, 0.5),  # frequency_weight (recency 0.5)
        (10, 20),  # frequency_target_active_days
        (56, 0),  # frequency_min_age_days
    )
    rows = []
    for gap, zero, fw, target, min_age in grid:
        sc = candidate(
            min_expected_gap_days=gap,
            recency_zero_ratio=zero,
            frequency_weight=fw,
            frequency_target_active_days=target,
            frequency_min_age_days=min_age,
        )
        engine = ScoringEngine(sc)
        risk = np.array([-engine.score(states[a], VALIDATION_CUTOFF).scorecard_score for a in ids])
        rows.append((roc_auc(y, risk), gap, zero, fw, target, min_age))
    rows.sort(reverse=True)
    print("auc   gap zero freq_w target min_age")
    for row in rows[:15]:
        print(f"{row[0]:.4f} {row[1]:>3} {row[2]:>4} {row[3]:>6} {row[4]:>6} {row[5]:>7}")
    print("default (3, 4, 0.2, 10, 56):", [r[0] for r in rows if r[1:] == (3, 4, 0.2, 10, 56)])


def step2_model(path: str, usage: dict[str, float], horizons: list[float]) -> None:
    """Per label horizon: one replay with learning; then the earned and fixed blends offline."""
    for horizon in horizons:
        sc = candidate(candidate(None, "usage", **usage), "labels", horizon_days=horizon)
        frozen, labels, model_raw = states_at_cutoff(path, sc, learn=True)
        assert model_raw is not None
        ids = sorted(labels)
        y = np.array([labels[a] for a in ids])
        states = {a: AccountState.from_bytes(frozen[a]) for a in ids}
        model = ChurnModel.from_snapshot(model_raw)
        engine = ScoringEngine(sc, model)
        results = [engine.score(states[a], VALIDATION_CUTOFF) for a in ids]
        vectors = [vector_features(model_vector(r.features)) for r in results]
        p_alone = np.array([model.predict_proba_one(v) for v in vectors])
        card = np.array([r.scorecard_score for r in results])
        reason = model.blend_reason()
        print(
            f"horizon {horizon}: labels {model.labels_seen}, "
            f"rolling AUC {model.rolling_auc:.4f}, model alone AUC {roc_auc(y, p_alone):.4f}, "
            f"scorecard AUC {roc_auc(y, -card):.4f}, earned weight {reason['weight']:.2f} "
            f"-> health AUC {roc_auc(y, np.array([-r.score for r in results])):.4f}"
        )
        # For transparency, the health AUC had the weight been fixed instead of earned.
        for weight in (0.0, 0.25, 0.5, 0.75, 1.0):
            health = np.array([mix(c, p, weight) for c, p in zip(card, p_alone, strict=True)])
            print(f"  fixed weight {weight}: health {roc_auc(y, -health):.4f}")


if __name__ == "__main__":
    if sys.argv[2:3] == ["model"]:
        chosen = {
            "min_expected_gap_days": 30,
            "recency_zero_ratio": 16,
            "frequency_weight": 0.5,
            "frequency_target_active_days": 20,
        }
        step2_model(sys.argv[1], chosen, [float(h) for h in sys.argv[3:]] or [60.0, 90.0, 120.0])
    else:
        step1_usage(sys.argv[1])
