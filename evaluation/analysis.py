"""Turn a replay's cutoff snapshot and outcomes into the evaluation figures.

Every score is compared as a *risk* ranking (higher = more likely to churn):
health and the scorecard are negated (low health = risk), recency is days since
the last activity, frequency is negated activity count (few events = risk).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from evaluation.metrics import (
    calibration,
    lift_at,
    lift_by_group,
    pr_auc,
    roc_auc,
    roc_curve,
)
from evaluation.runner import DAY, EARLY_DAYS, RunResult, churn_label

SCORES = (
    "health",
    "churn_probability",
    "scorecard",
    "model_probability",
    "recency_baseline",
    "frequency_baseline",
)
LABELS = {
    "health": "Health score (low = risk)",
    "churn_probability": "Churn probability (blended)",
    "scorecard": "Scorecard alone",
    "model_probability": "Churn model alone",
    "recency_baseline": "Baseline: days since last activity",
    "frequency_baseline": "Baseline: number of events",
}


def _nan_to_none(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def risk_arrays(result: RunResult) -> tuple[list[str], np.ndarray, dict[str, np.ndarray]]:
    """Account ids, churn labels and one risk array per score, aligned."""
    ids = sorted(result.snapshots)
    snaps = [result.snapshots[a] for a in ids]
    labels = np.array(
        [churn_label(result.tracks[a], result.cutoff, result.end) for a in ids], dtype=np.int8
    )
    risks = {
        "health": -np.array([s.health for s in snaps], dtype=np.float64),
        "churn_probability": np.array([s.churn_probability for s in snaps], dtype=np.float64),
        "scorecard": -np.array([s.scorecard for s in snaps], dtype=np.float64),
        "recency_baseline": np.array([s.recency_days for s in snaps], dtype=np.float64),
        "frequency_baseline": -np.array([s.frequency for s in snaps], dtype=np.float64),
    }
    model = [s.model_probability for s in snaps]
    if snaps and all(p is not None for p in model):  # absent in runs without learning
        risks["model_probability"] = np.array(model, dtype=np.float64)
    return ids, labels, {name: risks[name] for name in SCORES if name in risks}


def alert_figures(
    result: RunResult, labels: dict[str, int], window_days: float, lookback_days: float
) -> tuple[dict[str, Any], np.ndarray]:
    """Alert precision/recall at the cutoff and lead time before churn.

    - At the cutoff: an account is *flagged* when it had any alert in the
      ``window_days`` before the cutoff. Precision = flagged accounts that churned;
      recall = churned accounts that were flagged.
    - Lead time: for explicit cancellations anywhere in the replay, days from the
      first alert in the ``lookback_days`` before the cancellation to the
      cancellation. A dataset without cancellations (e.g. CDNOW) measures against
      the last activity before the cutoff of each churned account instead, so an
      alert raised after a customer went quiet has a negative lead time.
    """
    cutoff = result.cutoff
    window = window_days * DAY
    lookback = lookback_days * DAY
    flagged: dict[str, bool] = {}
    for account_id in labels:
        times = result.tracks[account_id].alert_times
        flagged[account_id] = any(cutoff - window < t <= cutoff for t, _ in times)
    n_flagged = sum(flagged.values())
    churned = [a for a, y in labels.items() if y == 1]
    true_flags = sum(1 for a in churned if flagged[a])
    precision = true_flags / n_flagged if n_flagged else math.nan
    recall = true_flags / len(churned) if churned else math.nan

    leads: list[float] = []
    reasons: dict[str, int] = {}
    if result.cancellations:
        basis = "cancellation"
        targets = result.cancellations
        horizon = {a: ts for a, ts in targets}
    else:
        basis = "last_activity"
        horizon = {a: result.tracks[a].last_activity_ts for a in churned}
        targets = list(horizon.items())
    caught = 0
    for account_id, churn_ts in targets:
        limit = churn_ts if basis == "cancellation" else cutoff
        first = None
        for t, reason in result.tracks[account_id].alert_times:
            if churn_ts - lookback <= t <= limit:
                first = (t, reason)
                break
        if first is None:
            continue
        caught += 1
        leads.append((churn_ts - first[0]) / DAY)
        reasons[first[1]] = reasons.get(first[1], 0) + 1
    lead_array = np.array(leads, dtype=np.float64)
    n_targets = len(targets)
    # The noise floor for "caught": how many retained accounts had an alert in a
    # window of the same length (the lookback before the cutoff)? Catching every
    # churner means little if every retained account is alerted just as often.
    retained = [a for a, y in labels.items() if y == 0]
    noisy = sum(
        1
        for a in retained
        if any(cutoff - lookback < t <= cutoff for t, _ in result.tracks[a].alert_times)
    )
    return {
        "window_days": window_days,
        "flagged": n_flagged,
        "precision": _nan_to_none(precision),
        "recall": _nan_to_none(recall),
        "total_alerts": result.alerts,
        "lead_time": {
            "basis": basis,
            "lookback_days": lookback_days,
            "churners": n_targets,
            "caught": caught,
            "caught_share": caught / n_targets if n_targets else None,
            "retained_alerted_share": noisy / len(retained) if retained else None,
            "caught_30d_share": (
                float(np.sum(lead_array >= 30)) / n_targets if n_targets else None
            ),
            "median_days": float(np.median(lead_array)) if leads else None,
            "first_alert_reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
            "days_quartiles": (
                np.percentile(lead_array, [25, 50, 75]).round(1).tolist() if leads else None
            ),
        },
    }, lead_array


def early_warning(result: RunResult) -> dict[str, Any] | None:
    """Did the *score* (not only an alert) single out cancelling accounts a month ahead?

    For every cancellation with a periodic-tick score ``EARLY_DAYS`` or more before it:
    the share of live accounts that were at or below its health on that day. None when
    the data has no cancellations (e.g. purchase logs) or no periodic ticks ran.
    """
    ranks = result.early_ranks
    if not ranks:
        return None
    shares = np.array([r.riskiest_share for r in ranks], dtype=np.float64)
    health = np.array([r.health for r in ranks], dtype=np.float64)
    lead = np.array([(r.canceled_ts - r.scored_ts) / DAY for r in ranks], dtype=np.float64)
    return {
        "days_before": EARLY_DAYS,
        "cancellations": len({a for a, _ in result.cancellations}),
        "measured": len(ranks),
        "median_riskiest_share": float(np.median(shares)),
        "in_riskiest_10pct": float(np.mean(shares <= 0.10)),
        "in_riskiest_25pct": float(np.mean(shares <= 0.25)),
        "median_health": float(np.median(health)),
        "median_days_before": float(np.median(lead)),
    }


def blend_figures(result: RunResult) -> dict[str, Any] | None:
    """The model's weight in the health score over the replay, and why at the cutoff.

    Each point is a refit of the blend on the labels known at that event time:
    the weight chosen and the rolling AUCs (same recent window) that chose it.
    """
    if not result.model:
        return None
    history = [
        {
            "at": p.ts,
            "labels": p.labels,
            "weight": p.weight,
            "auc_scorecard": p.auc_scorecard,
            "auc_model": p.auc_model,
            "auc_health": p.auc_health,
        }
        for p in result.blend_history
    ]
    return {
        "at_cutoff": result.model.get("blend"),
        "history": history,
    }


def analyse(
    result: RunResult, *, alert_window_days: float = 30, lead_lookback_days: float = 90
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``OUT.json`` summary, and the raw arrays the plots need (kept out of the JSON)."""
    ids, y, risks = risk_arrays(result)
    n = len(ids)
    if n == 0:
        raise ValueError("no account was active before the cutoff")
    names = list(risks)
    auc = {name: _nan_to_none(roc_auc(y, risks[name])) for name in names}
    ap = {name: _nan_to_none(pr_auc(y, risks[name])) for name in names}
    lift = {name: _nan_to_none(lift_at(y, risks[name], 0.1)) for name in names}
    deciles = {name: [_nan_to_none(v) for v in lift_by_group(y, risks[name], 10)] for name in names}
    probs = risks["churn_probability"]
    table, brier, ece = calibration(y, np.clip(probs, 0.0, 1.0), bins=10)
    health = -risks["health"]
    bands: dict[str, dict[str, Any]] = {}
    for band in ("red", "yellow", "green"):
        mask = np.array([result.snapshots[a].band == band for a in ids], dtype=bool)
        count = int(mask.sum())
        bands[band] = {
            "accounts": count,
            "churn_rate": float(y[mask].mean()) if count else None,
            # recall of "this band means at risk": the share of all churners it holds
            "share_of_churners": float(y[mask].sum() / y.sum()) if y.sum() else None,
        }
    curves = {}
    for name in names:
        fpr, tpr, _ = roc_curve(y, risks[name])
        step = max(1, len(fpr) // 400)  # keep the JSON small
        curves[name] = {"fpr": fpr[::step].round(4).tolist(), "tpr": tpr[::step].round(4).tolist()}
    labels_by_id = {a: int(v) for a, v in zip(ids, y, strict=True)}
    alerts, lead_days = alert_figures(result, labels_by_id, alert_window_days, lead_lookback_days)
    plot_data = {"labels": y, "risks": risks, "health": health, "lead_days": lead_days}
    summary = {
        "accounts": n,
        "churned": int(y.sum()),
        "churn_rate": float(y.mean()),
        "auc": auc,
        "pr_auc": ap,
        "lift_top_decile": lift,
        "lift_by_decile": deciles,
        "calibration": {
            "brier": brier,
            "ece": ece,
            "bins": [
                {
                    "lower": b.lower,
                    "upper": b.upper,
                    "count": b.count,
                    "mean_predicted": b.mean_predicted,
                    "observed_rate": b.observed_rate,
                }
                for b in table
            ],
        },
        "bands": bands,
        "alerts": alerts,
        "early_warning": early_warning(result),
        "model": result.model,
        "blend": blend_figures(result),
        "curves": curves,
    }
    return summary, plot_data
