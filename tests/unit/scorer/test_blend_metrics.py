"""The blend weight and the AUCs behind it, as the scorer and trainer export them."""

from __future__ import annotations

import math
import random

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from services.scorer.core import ChurnModel
from services.scorer.core.scorecard import ModelBlend
from services.scorer.metrics import ScorerMetrics, TrainerMetrics, export_blend


def _samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, s.labels.get("part", "")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if "blend" in s.name
    }


def test_before_any_model_the_weight_is_zero_and_the_aucs_unknown() -> None:
    registry = CollectorRegistry()
    ScorerMetrics(registry)
    samples = _samples(registry)
    assert samples[("healthstream_scorer_blend_model_weight", "")] == 0.0
    for part in ("scorecard", "model", "health"):
        assert math.isnan(samples[("healthstream_scorer_blend_rolling_auc", part)])


def test_an_earned_weight_and_its_reason_are_exported() -> None:
    model = ChurnModel(ModelBlend(min_labels=50, min_class_labels=5, refit_every=10))
    rnd = random.Random(4)
    for _ in range(300):
        churn = rnd.random() < 0.3
        features = {"days_inactive": rnd.uniform(10, 40) if churn else rnd.uniform(0, 12)}
        model.learn_one(features, int(churn), rnd.uniform(0, 100))
    reason = model.blend_reason()
    assert reason["weight"] and reason["weight"] > 0.5
    registry = CollectorRegistry()
    metrics = TrainerMetrics(registry)
    export_blend(metrics.blend_weight, metrics.blend_auc, reason)
    samples = _samples(registry)
    assert samples[("healthstream_trainer_blend_model_weight", "")] == reason["weight"]
    for part in ("scorecard", "model", "health"):
        value = samples[("healthstream_trainer_blend_rolling_auc", part)]
        assert value == reason[f"auc_{part}"]
    assert samples[("healthstream_trainer_blend_rolling_auc", "model")] > 0.9
