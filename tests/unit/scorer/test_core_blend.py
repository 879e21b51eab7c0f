"""The earned blend: the health score follows whichever part ranks recent outcomes better."""

from __future__ import annotations

import math
import pickle
import random

import numpy as np
import pytest
from core_helpers import DAY, T0, Driver, usage

from services.scorer.core import ChurnModel, Scorecard, TrainingExample
from services.scorer.core.blend import BlendSelector, mix, rank_auc
from services.scorer.core.scorecard import ModelBlend

Row = tuple[dict[str, float], float, int]


def _stream(n: int, seed: int, *, card_informative: bool, model_informative: bool) -> list[Row]:
    """(model features, scorecard score, label): each part sees the latent risk, or noise."""
    rnd = random.Random(seed)
    rows: list[Row] = []
    for _ in range(n):
        risk = rnd.gauss(0.0, 1.0)
        label = int(rnd.random() < 1.0 / (1.0 + math.exp(-(2.0 * risk - 1.0))))
        seen = risk if model_informative else rnd.gauss(0.0, 1.0)
        features = {
            "days_inactive": max(0.0, 10.0 + 6.0 * seen + rnd.gauss(0.0, 3.0)),
            "usage_7d": max(0.0, 20.0 - 8.0 * seen + rnd.gauss(0.0, 4.0)),
            "has_usage": 1.0,
        }
        if card_informative:
            card = min(100.0, max(0.0, 60.0 - 15.0 * risk + rnd.gauss(0.0, 8.0)))
        else:
            card = rnd.uniform(0.0, 100.0)
        rows.append((features, card, label))
    return rows


def _train_and_test(
    card_informative: bool, model_informative: bool
) -> tuple[ChurnModel, dict[str, float]]:
    model = ChurnModel()  # shipped blend settings
    for features, card, label in _stream(
        3000, 11, card_informative=card_informative, model_informative=model_informative
    ):
        model.learn_one(features, label, card)
    held_out = _stream(
        4000, 12, card_informative=card_informative, model_informative=model_informative
    )
    y = np.array([label for _, _, label in held_out], dtype=np.int8)
    card = np.array([c for _, c, _ in held_out])
    model_p = np.array([model.predict_proba_one(f) for f, _, _ in held_out])
    weight = model.trusted_weight()
    health = np.array([mix(c, p, weight) for c, p in zip(card, model_p, strict=True)])
    return model, {
        "scorecard": rank_auc(y, -card),
        "model": rank_auc(y, model_p),
        "health": rank_auc(y, -health),
    }


def test_uninformative_scorecard_informative_model_health_follows_the_model() -> None:
    model, auc = _train_and_test(card_informative=False, model_informative=True)
    assert auc["scorecard"] == pytest.approx(0.5, abs=0.03)
    assert auc["model"] > 0.75
    assert model.trusted_weight() >= 0.8
    assert auc["health"] >= auc["model"] - 0.01


def test_informative_scorecard_uninformative_model_health_follows_the_scorecard() -> None:
    model, auc = _train_and_test(card_informative=True, model_informative=False)
    assert auc["model"] == pytest.approx(0.5, abs=0.05)
    assert auc["scorecard"] > 0.75
    assert model.trusted_weight() <= 0.1
    assert auc["health"] >= auc["scorecard"] - 0.01


def test_both_informative_the_mix_beats_each_part() -> None:
    model, auc = _train_and_test(card_informative=True, model_informative=True)
    assert 0 < model.trusted_weight() < 1
    assert auc["health"] > max(auc["scorecard"], auc["model"])


def test_the_weight_at_any_moment_depends_only_on_labels_known_by_then() -> None:
    """Flip every label after the 1500th: no weight chosen up to then may change."""
    rows = _stream(3000, 5, card_informative=False, model_informative=True)
    flipped = rows[:1500] + [(f, c, 1 - y) for f, c, y in rows[1500:]]
    traces = []
    for stream in (rows, flipped):
        model = ChurnModel()
        seen = []
        for features, card, label in stream:
            model.learn_one(features, label, card)
            seen.append((model.trusted_weight(), model.blend_reason()["auc_model"]))
        traces.append(seen)
    assert traces[0][:1500] == traces[1][:1500]
    assert traces[0][1499][0] > 0  # not vacuous: the model had earned weight by then
    assert traces[0][-1] != traces[1][-1]  # and the flipped future does reach the blend


def test_no_weight_before_enough_labels_of_both_outcomes() -> None:
    model = ChurnModel(ModelBlend(min_labels=100, min_class_labels=20, refit_every=10))
    rows = _stream(99, 3, card_informative=False, model_informative=True)
    for features, card, label in rows:
        model.learn_one(features, label, card)
    assert model.trusted_weight() == 0.0
    only_retained = ChurnModel(ModelBlend(min_labels=10, refit_every=10))
    for features, card, _ in rows:
        only_retained.learn_one(features, 0, card)
    assert only_retained.trusted_weight() == 0.0
    assert only_retained.blend_reason()["auc_model"] is None


def test_examples_without_a_scorecard_score_teach_the_model_but_not_the_blend() -> None:
    model = ChurnModel(ModelBlend(min_labels=10, min_class_labels=2, refit_every=10))
    for features, _, label in _stream(300, 4, card_informative=False, model_informative=True):
        model.learn_one(features, label)
    assert model.labels_seen == 300 and model.selector.observed == 0
    assert model.trusted_weight() == 0.0


def test_rank_auc_counts_ties_half() -> None:
    y = np.array([1, 0, 1, 0], dtype=np.int8)
    # pairs (positive, negative): (.9, .9) tie 1/2, (.9, .1) 1, (.5, .9) 0, (.5, .1) 1
    assert rank_auc(y, np.array([0.9, 0.9, 0.5, 0.1])) == pytest.approx(2.5 / 4)
    assert math.isnan(rank_auc(np.array([1, 1], dtype=np.int8), np.array([0.1, 0.2])))


def test_the_switch_margin_keeps_a_near_equal_weight() -> None:
    selector = BlendSelector(ModelBlend(min_labels=1, min_class_labels=1, switch_margin=0.1))
    rnd = random.Random(8)
    for _ in range(200):
        label = rnd.random() < 0.5
        card = 40.0 if label else 60.0
        selector.observe(card + rnd.gauss(0, 5), 0.6 if label else 0.4, int(label))
    selector.refit()
    assert selector.weight == 0.0  # the model ranks a little better, not by 0.1 AUC
    assert selector.auc_model is not None and selector.auc_scorecard is not None
    assert selector.auc_model > selector.auc_scorecard


def test_snapshot_keeps_the_blend_and_reads_the_previous_format() -> None:
    model = ChurnModel()
    for features, card, label in _stream(600, 6, card_informative=False, model_informative=True):
        model.learn_one(features, label, card)
    assert model.trusted_weight() > 0
    copy = ChurnModel.from_snapshot(model.snapshot())
    assert copy.trusted_weight() == model.trusted_weight()
    assert copy.blend_reason() == model.blend_reason()
    other = ChurnModel.from_snapshot(model.snapshot(), ModelBlend(max_weight=0.3))
    assert other.trusted_weight() <= 0.3 and len(other.selector.recent) == 600
    old_blend = {"min_labels": 200, "min_auc": 0.65, "full_trust_auc": 0.85, "max_weight": 0.5}
    old = pickle.dumps((1, old_blend, model.pipeline, model.auc, 600, model.positives))
    loaded = ChurnModel.from_snapshot(old)  # learned on raw inputs: starts afresh
    assert loaded.labels_seen == 0 and loaded.trusted_weight() == 0.0
    assert loaded.blend.min_labels == 200 and loaded.blend.max_weight == 0.5


def test_training_examples_carry_the_scorecard_score_from_their_features_time() -> None:
    """The example's scorecard score is the one at the snapshot, not when the label came."""
    d = Driver()
    d.send(usage(0.3, user_id="u0", feature="f0"))  # the first event takes a snapshot
    assert d.state is not None
    first = d.state.pending[0]
    at_snapshot = d.engine.score(d.state, first[0]).scorecard_score  # the state back then
    d.daily_usage(1, 20)  # more users and features: the score rose above it, then fell
    out = d.tick(55)  # the label came with a long silence: the score has fallen since
    examples = [x for x in out.examples if x.ts_features == first[0]]
    assert len(examples) == 1
    example = examples[0]
    later = d.engine.score(d.state, T0 + 55 * DAY).scorecard_score
    assert example.scorecard == pytest.approx(at_snapshot, abs=0.01)
    assert later < at_snapshot - 10
    assert TrainingExample.from_json_bytes(example.to_json_bytes()) == example


def test_when_the_model_weighs_most_a_driver_says_so() -> None:
    model = ChurnModel(ModelBlend(min_labels=50, min_class_labels=5, refit_every=10))
    rnd = random.Random(3)
    for _ in range(400):
        churn = rnd.random() < 0.3
        f = {"days_inactive": rnd.uniform(10, 40) if churn else rnd.uniform(0, 12)}
        model.learn_one(f, int(churn), rnd.uniform(0, 100))
    assert model.trusted_weight() >= 0.5
    d = Driver(Scorecard(max_drivers=1), model=model)
    d.daily_usage(0, 10)
    health = d.engine.score(d.state, T0 + 30 * DAY)  # type: ignore[arg-type]
    assert [x.feature for x in health.drivers] == ["churn_model"]
    auc = model.selector.auc_model
    assert auc is not None
    assert f"right {auc:.0%} of the time on recent outcomes, it weighs most" in (
        health.drivers[0].sentence
    )
