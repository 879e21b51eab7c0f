"""Label timing (no future leakage) and the river churn model wrapper."""

from __future__ import annotations

import itertools
import random

import pytest
from core_helpers import DAY, T0, Driver, ev, usage

from services.scorer.core import ChurnModel, Scorecard, ScoringEngine, TrainingExample
from services.scorer.core.features import MODEL_FEATURES, model_vector, vector_features
from services.scorer.core.scorecard import ModelBlend


def _examples(d: Driver) -> list[TrainingExample]:
    return [x for o in d.outcomes for x in o.examples]


def test_cancel_labels_churn_when_it_happens_with_features_from_before() -> None:
    d = Driver()
    d.send(usage(0))
    snapshot_features = vector_features(model_vector(d.features(0)))
    d.send(usage(2), usage(3))
    out = d.send(ev("billing", "subscription.canceled", 5))
    assert [(x.label, x.ts_features, x.ts_label) for x in out.examples] == [(1, T0, T0 + 5 * DAY)]
    # Features are those of day 0: nothing from the later events leaked in.
    assert out.examples[0].features == snapshot_features


def test_renewal_labels_retained() -> None:
    d = Driver()
    d.send(usage(0))
    out = d.send(ev("billing", "subscription.renewed", 10))
    assert [x.label for x in out.examples] == [0]


def test_inactivity_label_is_known_only_after_the_horizon() -> None:
    d = Driver()  # horizon 30 days
    d.send(usage(0))
    assert d.tick(29.9).examples == []
    out = d.tick(30)
    assert [(x.label, x.ts_label) for x in out.examples] == [(1, T0 + 30 * DAY)]


def test_usage_within_the_horizon_labels_retained_at_the_horizon() -> None:
    d = Driver()
    d.send(usage(0))
    d.send(usage(12))  # activity after the snapshot, inside (t, t + 30 d]
    assert _examples(d) == []
    out = d.send(usage(31))  # first event after the horizon: the label is known now
    first = out.examples[0]
    assert (first.label, first.ts_features, first.ts_label) == (0, T0, T0 + 30 * DAY)


def test_snapshots_are_bounded_and_spaced() -> None:
    d = Driver()
    d.daily_usage(0, 29)
    assert d.state is not None
    times = [(snap[0] - T0) / DAY for snap in d.state.pending]
    assert len(times) == 3 and times[0] == pytest.approx(0.3)
    assert all(b - a >= 10 - 1e-9 for a, b in itertools.pairwise(times))


def test_a_late_event_never_snapshots_at_its_own_time() -> None:
    d = Driver()
    d.send(usage(0), usage(0.9))
    assert d.state is not None
    assert [snap[0] for snap in d.state.pending] == [T0]
    d.send(usage(10.5), usage(10.2))  # the second is late (within lateness)
    assert [snap[0] for snap in d.state.pending] == [T0, T0 + 10.5 * DAY]


def test_labels_never_use_information_from_after_the_label_time() -> None:
    """Whatever arrives after ts_label cannot change an emitted example."""
    a, b = Driver(), Driver()
    for d in (a, b):
        d.send(usage(0), usage(5))
    a.send(usage(40))
    b.send(usage(40), ev("billing", "subscription.canceled", 41))
    first_a, first_b = _examples(a)[0], _examples(b)[0]
    assert (first_a.label, first_a.features) == (first_b.label, first_b.features)


# ----------------------------------------------------------------------- model
def _synthetic(n: int, seed: int = 7) -> list[tuple[dict[str, float], int]]:
    rnd = random.Random(seed)
    rows = []
    for _ in range(n):
        churn = rnd.random() < 0.3
        inactive = rnd.uniform(10, 40) if churn else rnd.uniform(0, 12)
        f = {name: 0.0 for name in MODEL_FEATURES}
        f.update(days_inactive=inactive, usage_7d=rnd.uniform(0, 5 if churn else 30))
        rows.append((f, int(churn)))
    return rows


def test_model_progressive_validation_earns_trust() -> None:
    blend = ModelBlend(min_labels=50, min_class_labels=5, refit_every=10)
    model = ChurnModel(blend)
    noise = random.Random(1)  # a scorecard that knows nothing: the model earns the weight
    assert model.rolling_auc is None and model.trusted_weight() == 0
    for i, (f, y) in enumerate(_synthetic(400)):
        model.learn_one(f, y, noise.uniform(0, 100))
        if i == 30:
            assert model.trusted_weight() == 0  # not enough labels yet
    assert model.labels_seen == 400
    auc = model.rolling_auc
    assert auc is not None and auc > 0.9
    assert 0 < model.trusted_weight() <= blend.max_weight


def test_fast_prediction_matches_the_river_pipeline() -> None:
    model = ChurnModel()
    for f, y in _synthetic(300):
        model.learn_one(f, y)
    for f, _ in _synthetic(20, seed=9):
        expected = model.pipeline.predict_proba_one(f)[True]
        assert model.predict_proba_one(f) == pytest.approx(expected, abs=1e-9)


def test_snapshot_round_trip() -> None:
    model = ChurnModel()
    for f, y in _synthetic(120):
        model.learn_one(f, y)
    copy = ChurnModel.from_snapshot(model.snapshot())
    probe = _synthetic(5, seed=3)
    assert [copy.predict_proba_one(f) for f, _ in probe] == [
        model.predict_proba_one(f) for f, _ in probe
    ]
    assert (copy.labels_seen, copy.rolling_auc, copy.version) == (
        model.labels_seen,
        model.rolling_auc,
        model.version,
    )
    with pytest.raises(ValueError):
        ChurnModel.from_snapshot(__import__("pickle").dumps((99,) + (None,) * 5))


def test_trusted_model_blends_into_the_score_and_can_raise_a_risk_alert() -> None:
    blend = ModelBlend(min_labels=50, min_class_labels=5, refit_every=10, max_weight=0.5)
    model = ChurnModel(blend)
    noise = random.Random(2)
    for f, y in _synthetic(300):
        model.learn_one(f, y, noise.uniform(0, 100))
    auc = model.rolling_auc
    assert auc is not None
    # A noise scorecard: every step of weight towards the model ranks better, up to the cap.
    assert model.trusted_weight() == pytest.approx(0.5)
    card = Scorecard(model=blend)
    d = Driver(card, model=model)
    d.daily_usage(0, 10)
    d.tick(30)  # 20 days inactive: the model sees churn
    last = d.engine.score(d.state, T0 + 30 * DAY)  # type: ignore[arg-type]
    assert last.model_version.startswith(card.version + "+lr-")
    assert last.score != last.scorecard_score  # the trusted model moved the score
    assert last.churn_probability > 0.5
    assert "model_risk_spike" in d.alerts


def test_learn_inline_trains_from_emitted_examples() -> None:
    model = ChurnModel()
    engine = ScoringEngine(Scorecard(), model, learn_inline=True)
    state = None
    for day in (0, 40, 80):
        state = engine.apply(state, usage(day)).state
    assert model.labels_seen == 2  # the snapshots at day 0 and 40 were labelled by inactivity
