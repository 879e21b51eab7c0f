"""End to end: simulate a small file, evaluate it through the CLI, check JSON and report."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from healthstream.cli import main
from simulator import generate
from simulator.ndjson import write_events

SCORES = {
    "health",
    "churn_probability",
    "scorecard",
    "model_probability",
    "recency_baseline",
    "frequency_baseline",
}


def test_evaluate_a_simulated_file(tmp_path: Path) -> None:
    events = tmp_path / "sim.ndjson"
    sim = ["simulate", "--accounts", "30", "--days", "150", "--seed", "4", "--quiet"]
    sim += ["--start", "2024-01-01"]  # a fixed window for the fixed cutoff below
    assert main([*sim, "--churn-rate", "0.5", "--out", str(events)]) == 0
    out = tmp_path / "out.json"
    report = tmp_path / "report"
    notes = tmp_path / "notes.txt"
    notes.write_text("Weights chosen on the <early> window only.\n\nSecond paragraph.")
    code = main(
        [
            "evaluate",
            "--events",
            str(events),
            "--cutoff",
            "2024-04-15",
            "--json",
            str(out),
            "--report",
            str(report),
            "--notes",
            str(notes),
            "--quiet",
        ]
    )
    assert code == 0
    summary = orjson.loads(out.read_bytes())
    assert summary["accounts"] > 20
    assert 0 < summary["churn_rate"] < 1
    for key in ("auc", "pr_auc", "lift_top_decile"):
        assert set(summary[key]) == SCORES
        assert all(summary[key][name] is not None for name in SCORES)
    assert all(0.0 <= summary["auc"][name] <= 1.0 for name in SCORES)
    assert set(summary["lift_by_decile"]) == SCORES
    deciles = summary["lift_by_decile"]["health"]
    assert len(deciles) == 10
    # Weighted by their sizes, the tenths' lifts average to 1 whatever the ranking.
    n = summary["accounts"]
    sizes = [round(n * (i + 1) / 10) - round(n * i / 10) for i in range(10)]
    assert sum(lift * size for lift, size in zip(deciles, sizes, strict=True)) / n == (
        pytest.approx(1.0)
    )
    assert {"precision", "recall", "lead_time"} <= set(summary["alerts"])
    assert summary["alerts"]["lead_time"]["basis"] == "cancellation"
    early = summary["early_warning"]
    assert 0 < early["measured"] <= early["cancellations"]
    assert 0.0 <= early["median_riskiest_share"] <= 1.0
    assert summary["calibration"]["bins"]
    assert summary["run"]["command"].startswith("healthstream evaluate")
    for name in (
        "index.html",
        "roc.png",
        "calibration.png",
        "score_distribution.png",
        "lead_time.png",
        "bands.png",
        "lift_by_decile.png",
    ):
        assert (report / name).stat().st_size > 1000, name
    page = (report / "index.html").read_text()
    assert "does a low health score come before churn" in page
    assert 'src="roc.png"' in page and 'src="lift_by_decile.png"' in page
    assert "Weights chosen on the &lt;early&gt; window only." in page  # escaped, not raw HTML
    assert "--notes" in summary["run"]["command"]


def test_evaluate_sorts_a_shuffled_file_to_the_same_result(tmp_path: Path) -> None:
    events = list(generate(8, 90, 8))
    ordered = tmp_path / "ordered.ndjson"
    write_events(events, ordered)
    shuffled = tmp_path / "shuffled.ndjson"
    mixed = events[:]
    random.Random(1).shuffle(mixed)
    write_events(mixed, shuffled)
    base = ["evaluate", "--cutoff", "2024-03-15", "--quiet", "--no-learning"]
    assert main([*base, "--events", str(shuffled)]) == 2  # refused: not sorted
    assert main([*base, "--events", str(ordered), "--json", str(tmp_path / "a.json")]) == 0
    assert (
        main([*base, "--events", str(shuffled), "--sort", "--json", str(tmp_path / "b.json")]) == 0
    )
    a = orjson.loads((tmp_path / "a.json").read_bytes())
    b = orjson.loads((tmp_path / "b.json").read_bytes())
    assert a["auc"] == b["auc"] and a["accounts"] == b["accounts"]


def test_evaluate_reports_a_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.ndjson"
    assert main(["evaluate", "--events", str(missing), "--cutoff", "2024-01-01"]) == 2


def test_evaluate_a_purchase_log_without_cancellations(tmp_path: Path) -> None:
    """CDNOW's first 400 customers: no cancellation events, so "how early" is measured
    against each churner's last purchase and the page says so."""
    from simulator.datasets import CDNOW_DEFAULT, cdnow_events

    with CDNOW_DEFAULT.open(encoding="ascii") as handle:
        lines = [
            line for line in handle if not line.split()[0].isdigit() or int(line.split()[0]) <= 400
        ]
    events = tmp_path / "cdnow-400.ndjson"
    write_events(cdnow_events(lines), events)
    out = tmp_path / "out.json"
    report = tmp_path / "report"
    args = ["evaluate", "--events", str(events), "--cutoff", "1997-09-30", "--tick-hours", "168"]
    assert main([*args, "--json", str(out), "--report", str(report), "--quiet"]) == 0
    summary = orjson.loads(out.read_bytes())
    assert summary["accounts"] == 400  # every customer bought in the first quarter
    assert summary["alerts"]["lead_time"]["basis"] == "last_activity"
    assert summary["early_warning"] is None  # no cancellations to look back from
    assert summary["auc"]["health"] > 0.6  # recency alone is ~0.76 on the full log
    page = (report / "index.html").read_text()
    assert "no cancellation events" in page
    assert "days after each churner's last activity" in page
