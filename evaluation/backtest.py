"""Backtest: replay one history through the scoring core with two scorecards side by side.

A scorecard change is a change of production behaviour; this answers "what would it have
done on our own history?" before it ships. Both scorecards see exactly the same events in
the same order, each through its own :class:`~evaluation.runner.EvaluationRunner` (the
production ``ScoringEngine``, with its own online model), so every difference in the
figures comes from the scorecard and nothing else.

Per scorecard it reports what ``healthstream evaluate`` reports (ROC AUC, PR AUC, lift,
calibration, alert precision and lead time, from :func:`evaluation.analysis.analyse`) plus
every alert that would have fired, counted per ISO week and per reason, and alert
precision per reason. As a diff: the change of each figure, a paired bootstrap interval
for the change of the health AUC, and the accounts whose band at the cutoff would change,
with the top reasons on each side. :func:`gate` turns the diff into a verdict for CI.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson

from evaluation.analysis import analyse, risk_arrays
from evaluation.metrics import roc_auc
from evaluation.runner import DAY, EvaluationRunner, RunResult, churn_label
from services.scorer.core import Alert, DriverItem, Scorecard
from services.scorer.core.events import parse_timestamp

BANDS = ("red", "yellow", "green")
BAND_RANK = {"red": 0, "yellow": 1, "green": 2}


class AlertLog:
    """Every alert one scorecard raised, counted by ISO week (Monday, UTC) and reason.

    Memory grows with weeks x reasons, never with alerts.
    """

    def __init__(self) -> None:
        self.by_week: dict[str, Counter[str]] = {}
        self.by_reason: Counter[str] = Counter()
        self.total = 0

    def __call__(self, alert: Alert) -> None:
        moment = datetime.fromtimestamp(float(alert.occurred_at), UTC)
        monday = (moment - timedelta(days=moment.weekday())).strftime("%Y-%m-%d")
        reason = str(alert.reason)
        self.by_week.setdefault(monday, Counter())[reason] += 1
        self.by_reason[reason] += 1
        self.total += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_reason": dict(sorted(self.by_reason.items(), key=lambda kv: (-kv[1], kv[0]))),
            "by_week": {
                week: dict(sorted(counts.items())) for week, counts in sorted(self.by_week.items())
            },
        }


@dataclass
class Side:
    """One scorecard in the comparison."""

    name: str
    label: str  # where the scorecard came from, for the report
    scorecard: Scorecard
    runner: EvaluationRunner
    alerts: AlertLog = field(default_factory=AlertLog)
    result: RunResult | None = None


def make_side(
    name: str,
    label: str,
    scorecard: Scorecard,
    *,
    cutoff: float,
    end: float | None,
    tick_hours: float,
    learn: bool,
    strict: bool,
) -> Side:
    log = AlertLog()
    runner = EvaluationRunner(
        scorecard,
        cutoff=cutoff,
        end=end,
        tick_hours=tick_hours,
        learn=learn,
        strict=strict,
        on_alert=log,
    )
    return Side(name=name, label=label, scorecard=scorecard, runner=runner, alerts=log)


def replay_side_by_side(
    sides: list[Side],
    lines: Iterable[tuple[int, bytes]],
    *,
    start: float | None = None,
    progress: Callable[[int], Any] | None = None,
) -> int:
    """Feed every line to every side, in file order; events before ``start`` are skipped.

    Returns how many lines were skipped for being before ``start``. Reading stops once
    every side is past its end (see :meth:`EvaluationRunner.run`).
    """
    skipped = 0
    for number, raw in lines:
        if start is not None and occurred_at(raw) < start:
            skipped += 1
        else:
            for side in sides:
                if not side.runner.past_end:
                    side.runner.feed(number, raw)
        if progress is not None:
            progress(1)
        if all(side.runner.past_end for side in sides):
            break
    for side in sides:
        side.result = side.runner.finish()
    return skipped


def occurred_at(raw: bytes) -> float:
    """Event time of a raw line, or +inf when it has none (the runner then rejects it)."""
    try:
        return parse_timestamp(orjson.loads(raw)["occurred_at"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return math.inf


# -- per scorecard -------------------------------------------------------------------------
def alert_precision_by_reason(
    result: RunResult, labels: dict[str, int], window_days: float
) -> dict[str, dict[str, Any]]:
    """For each reason: accounts with such an alert in the window before the cutoff, and the
    share of them that churned afterwards (precision of that reason against later churn)."""
    cutoff = result.cutoff
    window = window_days * DAY
    flagged: dict[str, set[str]] = {}
    for account_id in labels:
        for t, reason in result.tracks[account_id].alert_times:
            if cutoff - window < t <= cutoff:
                flagged.setdefault(reason, set()).add(account_id)
    out: dict[str, dict[str, Any]] = {}
    for reason in sorted(flagged):
        accounts = flagged[reason]
        churned = sum(labels[a] for a in accounts)
        out[reason] = {"accounts": len(accounts), "precision": churned / len(accounts)}
    return out


def summarise_side(
    side: Side, *, alert_window_days: float, lead_lookback_days: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``evaluate``'s summary of one scorecard, plus all alerts per week and reason."""
    assert side.result is not None
    summary, plot = analyse(
        side.result, alert_window_days=alert_window_days, lead_lookback_days=lead_lookback_days
    )
    ids, y, _ = risk_arrays(side.result)
    labels = {a: int(v) for a, v in zip(ids, y, strict=True)}
    summary["alerts"]["fired"] = side.alerts.as_dict()
    summary["alerts"]["precision_by_reason"] = alert_precision_by_reason(
        side.result, labels, alert_window_days
    )
    summary["scorecard"] = {"path": side.label, "version": side.scorecard.version}
    return summary, plot


# -- the diff ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Figure:
    """One compared figure: where it lives in a summary and which direction is better."""

    key: str
    label: str
    path: tuple[str, ...]
    higher_is_better: bool


FIGURES = (
    Figure("auc", "Health ROC AUC", ("auc", "health"), True),
    Figure("pr_auc", "Health PR AUC", ("pr_auc", "health"), True),
    Figure("lift", "Lift, riskiest 10%", ("lift_top_decile", "health"), True),
    Figure("brier", "Brier score (churn probability)", ("calibration", "brier"), False),
    Figure("ece", "Calibration error (churn probability)", ("calibration", "ece"), False),
    Figure("alert_precision", "Alert precision (alerted accounts that churned)",
           ("alerts", "precision"), True),
    Figure("alert_recall", "Alert recall (churners alerted)", ("alerts", "recall"), True),
    Figure("alerts_fired", "Alerts fired in the whole replay", ("alerts", "fired", "total"),
           False),
    Figure("lead_days", "Median lead time (days)", ("alerts", "lead_time", "median_days"), True),
    Figure("caught_share", "Churners with an alert in the lookback",
           ("alerts", "lead_time", "caught_share"), True),
    Figure("retained_alerted_share", "Retained accounts alerted in the lookback",
           ("alerts", "lead_time", "retained_alerted_share"), False),
)  # fmt: skip


def _get(summary: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = summary
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def figure_diff(baseline: dict[str, Any], proposed: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every compared figure: baseline, proposed, change, and whether it got better."""
    out: dict[str, dict[str, Any]] = {}
    for fig in FIGURES:
        before = _get(baseline, fig.path)
        after = _get(proposed, fig.path)
        delta = None if before is None or after is None else after - before
        better = None
        if delta is not None and delta != 0:
            better = (delta > 0) == fig.higher_is_better
        out[fig.key] = {
            "label": fig.label,
            "baseline": before,
            "proposed": after,
            "delta": delta,
            "higher_is_better": fig.higher_is_better,
            "better": better,
        }
    return out


def reason_diff(baseline: dict[str, Any], proposed: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Alerts fired and precision per reason, side by side."""
    fired_b = baseline["alerts"]["fired"]["by_reason"]
    fired_p = proposed["alerts"]["fired"]["by_reason"]
    prec_b = baseline["alerts"]["precision_by_reason"]
    prec_p = proposed["alerts"]["precision_by_reason"]
    out: dict[str, dict[str, Any]] = {}
    for reason in sorted(set(fired_b) | set(fired_p) | set(prec_b) | set(prec_p)):
        before = prec_b.get(reason, {})
        after = prec_p.get(reason, {})
        out[reason] = {
            "fired": {"baseline": fired_b.get(reason, 0), "proposed": fired_p.get(reason, 0)},
            "alerted_accounts": {
                "baseline": before.get("accounts", 0),
                "proposed": after.get("accounts", 0),
            },
            "precision": {"baseline": before.get("precision"), "proposed": after.get("precision")},
        }
    return out


def weekly_diff(baseline: dict[str, Any], proposed: dict[str, Any]) -> list[dict[str, Any]]:
    """Alerts fired per week, both sides, every week either side fired in."""
    weeks_b = baseline["alerts"]["fired"]["by_week"]
    weeks_p = proposed["alerts"]["fired"]["by_week"]
    return [
        {
            "week": week,
            "baseline": sum(weeks_b.get(week, {}).values()),
            "proposed": sum(weeks_p.get(week, {}).values()),
        }
        for week in sorted(set(weeks_b) | set(weeks_p))
    ]


def paired_auc_interval(
    labels: np.ndarray,
    risk_baseline: np.ndarray,
    risk_proposed: np.ndarray,
    *,
    resamples: int = 200,
    seed: int = 0,
) -> dict[str, Any] | None:
    """95% paired bootstrap interval of AUC(proposed) - AUC(baseline).

    Paired: each resample draws the same accounts for both scorecards, so the interval
    is about the change, not the two AUCs' own noise. The seed only makes the report
    reproducible; the gate uses the point estimate, not this interval.
    """
    n = len(labels)
    if resamples <= 0 or n == 0 or labels.sum() in (0, n):
        return None
    rng = np.random.default_rng(seed)
    deltas = []
    for _ in range(resamples):
        pick = rng.integers(0, n, n)
        y = labels[pick]
        if y.sum() in (0, n):
            continue
        deltas.append(roc_auc(y, risk_proposed[pick]) - roc_auc(y, risk_baseline[pick]))
    if not deltas:
        return None
    low, high = np.percentile(np.array(deltas), [2.5, 97.5])
    return {"low": float(low), "high": float(high), "resamples": len(deltas), "seed": seed}


def _worst_driver(drivers: Iterable[DriverItem]) -> DriverItem | None:
    negative = [d for d in drivers if d.contribution < 0]
    return min(negative, key=lambda d: d.contribution) if negative else None


def _top(counts: Counter[str], examples: dict[str, str], n: int = 5) -> list[dict[str, Any]]:
    """The ``n`` most common reasons (``component/feature``), each with one example sentence."""
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return [{"reason": r, "accounts": c, "example": examples[r]} for r, c in ranked]


def _drivers(drivers: Iterable[Any]) -> list[dict[str, Any]]:
    return [driver.as_dict() for driver in drivers]


def band_changes(baseline: RunResult, proposed: RunResult, *, listed: int = 50) -> dict[str, Any]:
    """Accounts whose band at the cutoff differs between the scorecards.

    ``matrix[from][to]``: accounts (and how many of them churned) per pair of bands;
    ``down`` / ``up``: accounts moved to a riskier / safer band, with their churn rate (a
    good change moves churners down and the retained up); ``top_reasons``: the most
    common strongest negative driver (``component/feature``) on the proposed side among
    the accounts moved down, and on the baseline side among those moved up; ``accounts``:
    the ``listed`` largest moves (largest score change first), each with both sides'
    score, band and top reasons.
    """
    common = sorted(set(baseline.snapshots) & set(proposed.snapshots))
    matrix = {b: {a: {"accounts": 0, "churned": 0} for a in BANDS} for b in BANDS}
    moves: list[tuple[float, str, dict[str, Any]]] = []
    down: list[int] = []
    up: list[int] = []
    reasons_down: Counter[str] = Counter()
    reasons_up: Counter[str] = Counter()
    examples: dict[str, str] = {}
    for account_id in common:
        before = baseline.snapshots[account_id]
        after = proposed.snapshots[account_id]
        label = churn_label(baseline.tracks[account_id], baseline.cutoff, baseline.end)
        cell = matrix[before.band][after.band]
        cell["accounts"] += 1
        cell["churned"] += label
        if before.band == after.band:
            continue
        moved_down = BAND_RANK[after.band] < BAND_RANK[before.band]
        (down if moved_down else up).append(label)
        # Why it moved down: the proposed side's strongest negative driver; why it moved
        # up: the baseline's strongest negative driver, which the proposed side weighs less.
        worst = _worst_driver(after.drivers if moved_down else before.drivers)
        if worst is not None:
            key = f"{worst.component}/{worst.feature}"
            (reasons_down if moved_down else reasons_up)[key] += 1
            examples.setdefault(key, worst.sentence)
        moves.append(
            (
                -abs(after.health - before.health),
                account_id,
                {
                    "account_id": account_id,
                    "churned": bool(label),
                    "baseline": {
                        "score": before.health,
                        "band": before.band,
                        "drivers": _drivers(before.drivers),
                    },
                    "proposed": {
                        "score": after.health,
                        "band": after.band,
                        "drivers": _drivers(after.drivers),
                    },
                },
            )
        )
    moves.sort(key=lambda m: (m[0], m[1]))

    def _group(labels: list[int]) -> dict[str, Any]:
        return {
            "accounts": len(labels),
            "churn_rate": sum(labels) / len(labels) if labels else None,
        }

    return {
        "scored": len(common),
        "changed": len(moves),
        "down": _group(down),
        "up": _group(up),
        "matrix": matrix,
        "top_reasons": {
            "down": _top(reasons_down, examples),
            "up": _top(reasons_up, examples),
        },
        "accounts": [m[2] for m in moves[:listed]],
    }


# -- the gate ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Check:
    """Fail when ``figure`` gets worse than the baseline by more than ``max_worsening``."""

    figure: str
    max_worsening: float


def gate(diff: dict[str, dict[str, Any]], checks: Iterable[Check]) -> dict[str, Any]:
    """The verdict: ``worse`` when any check fails, ``better`` when the health AUC rose by
    more than its own allowance with nothing failing, else ``same``.

    A figure the baseline has and the proposed scorecard lost (e.g. no alert at all, so
    no lead time) fails its check; one neither side has is not applicable.
    """
    results = []
    failed = False
    for check in checks:
        row = diff[check.figure]
        before, after = row["baseline"], row["proposed"]
        if before is None and after is None:
            status, worsening = "n/a", None
        elif after is None:
            status, worsening = "fail", None
        elif before is None:
            status, worsening = "pass", None
        else:
            worsening = (before - after) if row["higher_is_better"] else (after - before)
            status = "fail" if worsening > check.max_worsening + 1e-12 else "pass"
        failed |= status == "fail"
        results.append(
            {
                "figure": check.figure,
                "label": row["label"],
                "max_worsening": check.max_worsening,
                "worsening": worsening,
                "status": status,
            }
        )
    auc = diff["auc"]["delta"]
    allowance = next((c.max_worsening for c in checks if c.figure == "auc"), 0.0)
    if failed:
        verdict = "worse"
    elif auc is not None and auc > allowance:
        verdict = "better"
    else:
        verdict = "same"
    return {"verdict": verdict, "passed": not failed, "checks": results}


def compare(
    baseline: Side,
    proposed: Side,
    checks: list[Check],
    *,
    alert_window_days: float = 30.0,
    lead_lookback_days: float = 90.0,
    listed: int = 50,
    resamples: int = 200,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both summaries, the diff and the verdict; and the arrays the plots need."""
    assert baseline.result is not None and proposed.result is not None
    options = {"alert_window_days": alert_window_days, "lead_lookback_days": lead_lookback_days}
    sum_b, plot_b = summarise_side(baseline, **options)
    sum_p, plot_p = summarise_side(proposed, **options)
    _, y_b, risks_b = risk_arrays(baseline.result)
    _, y_p, risks_p = risk_arrays(proposed.result)
    if not np.array_equal(y_b, y_p):  # labels come from events only, never the scorecard
        raise RuntimeError("the two replays disagree on churn labels")
    diff = figure_diff(sum_b, sum_p)
    diff["auc"]["interval"] = paired_auc_interval(
        y_b, risks_b["health"], risks_p["health"], resamples=resamples
    )
    verdict = gate(diff, checks)
    out = {
        "verdict": verdict["verdict"],
        "passed": verdict["passed"],
        "checks": verdict["checks"],
        "diff": diff,
        "reasons": reason_diff(sum_b, sum_p),
        "alerts_per_week": weekly_diff(sum_b, sum_p),
        "band_changes": band_changes(baseline.result, proposed.result, listed=listed),
        "baseline": sum_b,
        "proposed": sum_p,
    }
    return out, {"baseline": plot_b, "proposed": plot_p}
