"""The evaluation's view of the blend: model alone, weight over time, and no leakage."""

from __future__ import annotations

import functools
import itertools
from pathlib import Path

import orjson

from evaluation.analysis import analyse
from evaluation.cli import parse_moment
from evaluation.report import write_report
from evaluation.runner import EvaluationRunner, RunResult
from services.scorer.core import load_scorecard
from services.scorer.core.scorecard import Labels, ModelBlend
from simulator import generate

CUTOFF = parse_moment("2024-03-31")


def _run(events: list[dict]) -> RunResult:
    base = load_scorecard(None)
    # An eager blend, so that a short replay already refits it many times before the cutoff.
    card = base.model_copy(
        update={
            "model": ModelBlend(min_labels=20, min_class_labels=2, refit_every=5),
            "labels": Labels(horizon_days=3, snapshot_interval_days=1, max_pending=3),
        }
    )
    runner = EvaluationRunner(card, CUTOFF, None)
    return runner.run(enumerate((orjson.dumps(e) for e in events), start=1))


@functools.cache
def _events() -> tuple[list[dict], list[dict]]:
    base = list(itertools.islice(generate(12, 110, 9), 40_000))
    before = [e for e in base if parse_moment(e["occurred_at"]) <= CUTOFF]
    return base, before


@functools.cache
def _base_run() -> RunResult:
    return _run(_events()[0])


def test_the_model_and_blend_at_the_cutoff_ignore_the_future() -> None:
    _, before = _events()
    hostile = [  # every account cancels right after the cutoff
        {
            "event_id": f"h{n}",
            "account_id": account,
            "type": "billing",
            "name": "subscription.canceled",
            "occurred_at": "2024-04-02T10:00:00Z",
            "properties": {},
        }
        for n, account in enumerate(sorted({e["account_id"] for e in before}))
    ]
    original, changed = _base_run(), _run(before + hostile)
    assert original.model == changed.model
    assert original.model["blend"]["auc_model"] is not None  # the blend had refitted
    probabilities = {a: s.model_probability for a, s in original.snapshots.items()}
    assert probabilities == {a: s.model_probability for a, s in changed.snapshots.items()}
    assert all(p is not None for p in probabilities.values())
    up_to_cutoff = [p for p in original.blend_history if p.ts <= CUTOFF]
    assert up_to_cutoff
    assert up_to_cutoff == [p for p in changed.blend_history if p.ts <= CUTOFF]


def test_the_report_shows_model_alone_and_the_blend_weight(tmp_path: Path) -> None:
    summary, plot = analyse(_base_run())
    assert "model_probability" in summary["auc"]
    blend = summary["blend"]
    assert blend["history"] and blend["at_cutoff"]["window"] > 0
    files = write_report(summary, plot, tmp_path)
    page = (tmp_path / "index.html").read_text()
    assert "Churn model alone" in page
    assert "which does the health score trust?" in page
    assert f"model weight <b>{blend['at_cutoff']['weight']:.2f}</b>" in page
    assert (tmp_path / "blend_weight.png") in files
    assert (tmp_path / "blend_weight.png").stat().st_size > 1000
