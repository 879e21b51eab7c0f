"""The evaluation report: one HTML page and PNG plots a CS leader can read.

The page leads with the answer to "does a low score come before churn, and how
early?" in plain words, then shows the evidence (ROC, churn rate by band,
calibration, score distributions, lead times) and finally the method, so a
sceptical reader can check how the numbers were made.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: no display on servers and CI
import matplotlib.pyplot as plt
import numpy as np

from evaluation.analysis import LABELS
from evaluation.metrics import roc_curve

COLORS = {
    "health": "#1b7f5a",
    "churn_probability": "#6a4cc2",
    "scorecard": "#d08a1e",
    "model_probability": "#c23b3b",
    "recency_baseline": "#888888",
    "frequency_baseline": "#bbbbbb",
}


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


def plot_roc(plot: dict[str, Any], summary: dict[str, Any], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 5))
    for name in summary["auc"]:
        fpr, tpr, _ = roc_curve(plot["labels"], plot["risks"][name])
        auc = summary["auc"][name]
        width = 2.4 if name == "health" else 1.3
        ax.plot(fpr, tpr, color=COLORS[name], lw=width, label=f"{LABELS[name]} ({_fmt(auc)})")
    ax.plot([0, 1], [0, 1], ls=":", color="#444444", lw=1, label="Coin flip (0.500)")
    ax.set_xlabel("Share of retained accounts flagged (false positive rate)")
    ax.set_ylabel("Share of churners flagged (true positive rate)")
    ax.set_title("Who is ranked at risk first? ROC curves (AUC)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_calibration(summary: dict[str, Any], path: Path) -> None:
    bins = summary["calibration"]["bins"]
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.plot([0, 1], [0, 1], ls=":", color="#444444", lw=1, label="Perfect calibration")
    if bins:
        predicted = [b["mean_predicted"] for b in bins]
        observed = [b["observed_rate"] for b in bins]
        sizes = [20 + 200 * b["count"] / max(x["count"] for x in bins) for b in bins]
        ax.plot(predicted, observed, color=COLORS["churn_probability"], lw=1.5)
        ax.scatter(
            predicted, observed, s=sizes, color=COLORS["churn_probability"], label="Accounts"
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("Predicted churn probability")
    ax.set_ylabel("Observed churn rate")
    brier = _fmt(summary["calibration"]["brier"])
    ax.set_title(f"Calibration (Brier {brier}; dot size = accounts)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_distribution(plot: dict[str, Any], path: Path) -> None:
    health = plot["health"]
    labels = plot["labels"]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    edges = np.linspace(0, 100, 41)
    for value, name, color in ((0, "Retained", "#1b7f5a"), (1, "Churned", "#c23b3b")):
        data = health[labels == value]
        if len(data):
            weights = np.full(len(data), 100.0 / len(data))
            ax.hist(data, bins=edges.tolist(), weights=weights, alpha=0.55, color=color, label=name)
    ax.set_xlabel("Health score at the cutoff")
    ax.set_ylabel("% of the group")
    ax.set_title("Health at the cutoff, by what happened next")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_lead_time(plot: dict[str, Any], summary: dict[str, Any], path: Path) -> None:
    """With cancellations: days of warning before each. Without (purchase logs): how soon
    after each churner's last activity the first alert came, which is the honest question
    there (an inactivity alert cannot precede the silence it reports)."""
    lead = plot["lead_days"]
    by_cancellation = summary["alerts"]["lead_time"]["basis"] == "cancellation"
    values = lead if by_cancellation else -lead
    fig, ax = plt.subplots(figsize=(7, 4.2))
    if len(values):
        low = min(-30.0, float(np.floor(values.min() / 10) * 10))
        high = max(30.0, float(np.ceil(values.max() / 10) * 10))
        ax.hist(values, bins=np.arange(low, high + 10, 10).tolist(), color="#6a4cc2", alpha=0.8)
        if by_cancellation:
            ax.axvline(30, color="#c23b3b", ls="--", lw=1, label="30 days")
        else:
            ax.axvline(0, color="#444444", ls=":", lw=1, label="Last activity")
        ax.legend()
    else:
        ax.text(0.5, 0.5, "No churner was alerted", ha="center", va="center")
    if by_cancellation:
        ax.set_xlabel("Days from the first alert to the cancellation (more = earlier warning)")
        ax.set_title("How early did the first alert come?")
    else:
        ax.set_xlabel("Days from the last activity to the first alert (negative = before it)")
        ax.set_title("How soon after a churner went quiet did the first alert come?")
    ax.set_ylabel("Churned accounts")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_lift(summary: dict[str, Any], path: Path) -> None:
    """Churn rate of each tenth of the accounts, riskiest tenth first, as a multiple of average."""
    deciles = summary["lift_by_decile"]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    x = np.arange(1, 11)
    health = [v if v is not None else 0.0 for v in deciles["health"]]
    ax.bar(x, health, color=COLORS["health"], alpha=0.85, label=LABELS["health"])
    recency = deciles["recency_baseline"]
    if all(v is not None for v in recency):
        ax.plot(x, recency, color="#444444", marker="o", lw=1, label=LABELS["recency_baseline"])
    ax.axhline(1.0, color="#c23b3b", ls=":", lw=1, label="Average account (1.0)")
    ax.set_xticks(x)
    ax.set_xticklabels([f"{10 * i - 9}-{10 * i}%" for i in x], fontsize=7)
    ax.set_xlabel("Accounts ranked from riskiest (left) to safest (right), by tenths")
    ax.set_ylabel("Churn rate / average churn rate")
    ax.set_title("Lift: how much more often does each tenth churn?")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_blend(summary: dict[str, Any], path: Path) -> None:
    """The model's weight in the health score over time, with the rolling AUCs behind it."""
    blend = summary.get("blend") or {}
    history = blend.get("history") or []
    fig, ax = plt.subplots(figsize=(7, 4.2))
    if history:
        days = [(p["at"] - history[0]["at"]) / 86400.0 for p in history]
        ax.step(
            days,
            [p["weight"] for p in history],
            where="post",
            color="#1b7f5a",
            lw=2,
            label="Model weight in the health score",
        )
        for key, name, color in (
            ("auc_scorecard", "scorecard", COLORS["scorecard"]),
            ("auc_model", "model", COLORS["model_probability"]),
        ):
            values = [np.nan if p[key] is None else p[key] for p in history]
            ax.plot(days, values, color=color, lw=1, label=f"Rolling AUC, {name} alone")
        run = summary.get("run", {})
        cutoff = run.get("cutoff_ts")
        if cutoff is not None:
            ax.axvline(
                (cutoff - history[0]["at"]) / 86400.0, color="#444444", ls=":", lw=1, label="Cutoff"
            )
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8, loc="lower right")
    else:
        ax.text(0.5, 0.5, "No blend refit (no model, or too few labels)", ha="center", va="center")
    ax.set_xlabel("Days since the first blend refit (event time)")
    ax.set_ylabel("Weight / rolling AUC")
    ax.set_title("How much the health score trusts the churn model, and why")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _blend_text(summary: dict[str, Any]) -> str:
    """One paragraph: the weight at the cutoff and the recent-outcome AUCs that chose it."""
    at = (summary.get("blend") or {}).get("at_cutoff")
    if not at:
        return "<p>No churn model ran (<code>--no-learning</code>): health is the scorecard.</p>"
    weight = at.get("weight") or 0.0
    card, model, mixed = at.get("auc_scorecard"), at.get("auc_model"), at.get("auc_health")
    if card is None or model is None:
        return (
            "<p>At the cutoff the blend had not yet seen enough labelled examples of both "
            "outcomes: health was the scorecard alone (model weight 0).</p>"
        )
    lead = "the churn model weighs most" if weight >= 0.5 else "the scorecard weighs most"
    return (
        f"<p>At the cutoff {lead}: model weight <b>{weight:.2f}</b>, chosen because, over "
        f"the {int(at.get('window') or 0):,} most recent labelled examples known then, the "
        f"scorecard alone ranked outcomes with rolling AUC {_fmt(card)}, the model alone "
        f"{_fmt(model)} and this mixture {_fmt(mixed)} (the best of the candidate weights "
        "0, 0.05, ..., 1). Those labels are the model's own short-horizon churn labels, "
        "not this report's outcome window: the weight is earned online, never on the test."
        "</p>"
    )


def plot_bands(summary: dict[str, Any], path: Path) -> None:
    bands = summary["bands"]
    names = [b for b in ("red", "yellow", "green") if bands[b]["accounts"]]
    rates = [100 * (bands[b]["churn_rate"] or 0) for b in names]
    fig, ax = plt.subplots(figsize=(5, 3.6))
    colors = {"red": "#c23b3b", "yellow": "#e0b12a", "green": "#1b7f5a"}
    bars = ax.bar(names, rates, color=[colors[b] for b in names])
    for bar, band in zip(bars, names, strict=True):
        ax.annotate(
            f"{bands[band]['accounts']} accts",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.axhline(100 * summary["churn_rate"], color="#444444", ls=":", lw=1, label="All accounts")
    ax.set_ylabel("Churn rate (%)")
    ax.set_title("Churn rate by health band at the cutoff")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _verdict(auc: float | None, best_baseline: float | None) -> str:
    """One plain sentence a CS leader can repeat (thresholds are the usual rules of thumb)."""
    if auc is None:
        return "There is not enough data to say whether a low score came before churn."
    if auc >= 0.7:
        strength = "Yes: a low health score clearly came before churn"
    elif auc >= 0.6:
        strength = "Partly: a low health score came before churn more often than not"
    else:
        strength = "No: the health score barely separated churners from retained accounts"
    if best_baseline is None:
        return strength + "."
    diff = auc - best_baseline
    if diff > 0.005:
        versus = f"and it ranked risk better than the best single signal (+{diff:.3f} AUC)"
    elif diff >= -0.005:
        versus = "about as well as the best single signal"
    else:
        versus = f"but less well than the best single signal ({diff:+.3f} AUC)"
    return f"{strength}, {versus}."


def _lead_sentence(summary: dict[str, Any]) -> str:
    """How early: against explicit cancellations when the data has them, else at the cutoff."""
    lead = summary["alerts"]["lead_time"]
    alerts = summary["alerts"]
    if lead["churners"] and lead["basis"] == "cancellation":
        median = lead["median_days"]
        early = summary.get("early_warning")
        score_text = ""
        if early:
            score_text = (
                f"<p><b>How early?</b> {early['days_before']:.0f} days before cancelling, the "
                f"typical cancelling account's health was already among the riskiest "
                f"<b>{_pct(early['median_riskiest_share'])}</b> of all accounts (median); "
                f"{_pct(early['in_riskiest_25pct'])} of them were in the riskiest quarter and "
                f"{_pct(early['in_riskiest_10pct'])} in the riskiest tenth "
                f"({early['measured']:,} cancellations measured).</p>"
            )
        return score_text + (
            f"<p><b>{'Alerts:' if early else 'How early?'}</b> "
            f"{_pct(lead['caught_30d_share'])} of the "
            f"{lead['churners']:,} accounts that cancelled had an alert at least 30 days "
            f"before cancelling, and {_pct(lead['caught_share'])} within the "
            f"{lead['lookback_days']:.0f} days before"
            + (f" (median lead time {median:.0f} days)" if median is not None else "")
            + f". The price of that early warning: {_pct(lead['retained_alerted_share'])} of "
            f"accounts that stayed also had an alert in a {lead['lookback_days']:.0f}-day "
            "window.</p>"
        )
    reach = alerts["flagged"] / summary["accounts"] if summary["accounts"] else None
    caveat = (
        ", so here the ranking says more than the alerts"
        if reach is not None and reach > 0.5
        else ""
    )
    return (
        "<p><b>How early?</b> This data has no cancellation events (a customer simply stops "
        "buying), so lead time is measured at the cutoff: every score was taken on the cutoff "
        "day, before any of the outcome window. Of the churners, "
        f"{_pct(alerts['recall'])} had an alert in the {alerts['window_days']:.0f} days before "
        f"the cutoff; {_pct(alerts['precision'])} of the alerted accounts churned (against "
        f"{_pct(summary['churn_rate'])} of all accounts; alerts reached {_pct(reach)} of all "
        f"accounts in that window{caveat})." + _after_last_activity(lead) + "</p>"
    )


def _after_last_activity(lead: dict[str, Any]) -> str:
    median = lead["median_days"]
    if median is None or not lead["churners"]:
        return ""
    when = f"{-median:.0f} days after" if median < 0 else f"{median:.0f} days before"
    return (
        f" Measured from each churner's last activity, the first alert came a median of "
        f"{when} it ({_pct(lead['caught_share'])} of churners had one): the score notices "
        "silence once an account is overdue against its own rhythm."
    )


def _headline(summary: dict[str, Any]) -> str:
    auc = summary["auc"]
    lift = summary["lift_top_decile"]["health"]
    bands = summary["bands"]
    baselines = [v for k, v in auc.items() if k.endswith("_baseline") and v is not None]
    best = max(baselines) if baselines else None
    parts = [
        f"<p class='big'><b>{html.escape(_verdict(auc['health'], best))}</b></p>",
        f"<p>Of {summary['accounts']:,} accounts scored at the cutoff, "
        f"{_pct(summary['churn_rate'])} churned afterwards. Pick one account that churned and "
        f"one that stayed: the churner had the lower health score <b>{_pct(auc['health'])}</b> "
        f"of the time (ROC AUC {_fmt(auc['health'])}; days since last activity alone: "
        f"{_fmt(auc['recency_baseline'])}; number of events alone: "
        f"{_fmt(auc['frequency_baseline'])}; the scorecard without the learned model: "
        f"{_fmt(auc['scorecard'])}).</p>",
    ]
    if lift is not None:
        parts.append(
            f"<p>The 10% of accounts with the lowest health churned "
            f"<b>{lift:.2f}&times;</b> as often as the average account "
            f"({_pct(min(1.0, lift * summary['churn_rate']))} vs "
            f"{_pct(summary['churn_rate'])}).</p>"
        )
    red = bands["red"]
    green = bands["green"]
    if red["accounts"] and green["accounts"]:
        parts.append(
            f"<p>Accounts in the red band at the cutoff churned at {_pct(red['churn_rate'])}, "
            f"green ones at {_pct(green['churn_rate'])}; the red band held "
            f"{_pct(red.get('share_of_churners'))} of all the accounts that went on to churn.</p>"
        )
    parts.append(_lead_sentence(summary))
    return "\n".join(parts)


def _table(summary: dict[str, Any]) -> str:
    rows = []
    for name in summary["auc"]:
        rows.append(
            "<tr>"
            f"<td>{html.escape(LABELS[name])}</td>"
            f"<td>{_fmt(summary['auc'][name])}</td>"
            f"<td>{_fmt(summary['pr_auc'][name])}</td>"
            f"<td>{_fmt(summary['lift_top_decile'][name], 2)}</td>"
            "</tr>"
        )
    return (
        "<table><tr><th>Ranking by</th><th>ROC AUC</th><th>PR AUC</th>"
        "<th>Lift, riskiest 10%</th></tr>" + "".join(rows) + "</table>"
    )


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:980px;margin:2em auto;
color:#222;line-height:1.45;padding:0 1em}
h1{font-size:1.6em}h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.big{font-size:1.15em}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ddd;padding:.35em .7em;text-align:right}
td:first-child,th:first-child{text-align:left}img{max-width:100%;margin:.5em 0}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:1em}
code,pre{background:#f5f5f5;padding:.1em .3em;border-radius:3px}pre{padding:.7em;overflow-x:auto}
.muted{color:#666;font-size:.9em}
"""


def _notes_html(notes: str | None) -> str:
    """Plain-text notes (paragraphs separated by blank lines), escaped: never raw HTML."""
    if not notes:
        return (
            "<p>No selection notes were given for this run (<code>--notes</code>). Nothing in "
            "the evaluation itself is fitted to the outcomes it reports: the scorecard is read "
            "from the file named below, and the online model learns only from labels known "
            "before each moment.</p>"
        )
    paragraphs = [p.strip() for p in notes.split("\n\n") if p.strip()]
    return "".join(f"<p>{html.escape(' '.join(p.split()))}</p>" for p in paragraphs)


def write_report(
    summary: dict[str, Any],
    plot: dict[str, Any],
    out_dir: Path,
    title: str = "healthstream",
    notes: str | None = None,
) -> list[Path]:
    """Write ``index.html`` and the PNGs into ``out_dir``; returns the files written.

    ``notes``: how the scorecard and model settings were chosen (shown under Method),
    because a reader cannot trust an AUC without knowing it was not tuned on the test.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "roc": out_dir / "roc.png",
        "lift": out_dir / "lift_by_decile.png",
        "bands": out_dir / "bands.png",
        "distribution": out_dir / "score_distribution.png",
        "calibration": out_dir / "calibration.png",
        "lead": out_dir / "lead_time.png",
        "blend": out_dir / "blend_weight.png",
    }
    plot_roc(plot, summary, files["roc"])
    plot_lift(summary, files["lift"])
    plot_bands(summary, files["bands"])
    plot_distribution(plot, files["distribution"])
    plot_calibration(summary, files["calibration"])
    plot_lead_time(plot, summary, files["lead"])
    plot_blend(summary, files["blend"])
    run = summary.get("run", {})
    alerts = summary["alerts"]
    lead = alerts["lead_time"]
    model = summary.get("model") or {}
    command = run.get("command", "")
    target = "cancellation" if lead["basis"] == "cancellation" else "last activity"
    if lead["basis"] == "cancellation":
        lead_text = (
            f"Each cancellation is matched with the account's first alert in the "
            f"{lead['lookback_days']:.0f} days before it; the histogram shows how many days "
            f"ahead that alert came (median {_fmt(lead['median_days'], 0)} days; "
            f"{lead['caught']:,} of {lead['churners']:,} cancellations had one)."
        )
    else:
        lead_text = (
            "Without cancellation events there is no moment of churn to warn ahead of; "
            "instead, the histogram shows how many days after each churner's last activity "
            f"its first alert (from {lead['lookback_days']:.0f} days before that activity up "
            "to the cutoff) came: an inactivity alert cannot come before the silence it "
            f"reports. {lead['caught']:,} of {lead['churners']:,} churners had one."
        )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{html.escape(title)}: does a low health score come before churn?</title>
<style>{CSS}</style></head><body>
<h1>{html.escape(title)}: does a low health score come before churn?</h1>
<p class="muted">Events: {html.escape(str(run.get("events_file", "")))} &middot;
scores taken at the cutoff {html.escape(str(run.get("cutoff", "")))} &middot; outcomes
observed until {html.escape(str(run.get("end", "")))}</p>
<h2>The answer</h2>
{_headline(summary)}
<h2>Ranking quality</h2>
<p>Every account active before the cutoff is scored <em>at</em> the cutoff with only what was
known then. ROC AUC is the chance that a random churner is ranked riskier than a random
retained account (0.5 = coin flip, 1.0 = perfect). PR AUC is the average precision of the
risk list (a list in random order scores the churn rate, {_fmt(summary["churn_rate"])}).
Lift is how many times more often the riskiest 10% churn than the average account.</p>
{_table(summary)}
<div class="grid"><img src="roc.png" alt="ROC curves"><img src="lift_by_decile.png"
alt="Lift by decile"></div>
<h2>Scorecard or model: which does the health score trust?</h2>
<p>health = (1 &minus; weight) &times; scorecard + weight &times; 100 &times; (1 &minus; model
churn probability). The weight is re-chosen online every few dozen labels, from how well
each candidate mixture ranked the most recent labelled examples (each scored by the
scorecard as it stood then and by the model before it learned that label).</p>
{_blend_text(summary)}
<img src="blend_weight.png" alt="Model weight in the health score over time">
<h2>Do low scores mean churn?</h2>
<div class="grid"><img src="score_distribution.png" alt="Health score distribution by outcome">
<img src="bands.png" alt="Churn rate by band"></div>
<h2>Can the churn probability be taken at face value?</h2>
<p>Brier score {_fmt(summary["calibration"]["brier"])}, expected calibration error
{_fmt(summary["calibration"]["ece"])}. Points on the diagonal mean "30% predicted" really
churned 30% of the time; points above it mean the risk was underestimated.</p>
<img src="calibration.png" alt="Calibration of the churn probability">
<h2>Alerts: how precise, how early?</h2>
<p>Accounts with an alert in the {alerts["window_days"]:.0f} days before the cutoff:
{alerts["flagged"]:,}. Precision (they churned): {_pct(alerts["precision"])};
recall (churners alerted): {_pct(alerts["recall"])}. Precision is worth comparing with the
churn rate of all accounts ({_pct(summary["churn_rate"])}): alerts add information only to the
extent they beat it. {lead_text}</p>
<img src="lead_time.png" alt="Days from the first alert to the {target}">
<h2>Method</h2>
<ul>
<li><b>Same code as production.</b> The events were replayed in event time through the
production scoring core (<code>services/scorer/core</code>), with the online churn model
learning each label at the moment it became known (progressive validation: predict, then
learn).</li>
<li><b>Label.</b> <em>Churned</em> = active before the cutoff and no activity in
(cutoff, end], or an explicit cancellation in that window. Accounts already cancelled, or
first seen after the cutoff, are not scored.</li>
<li><b>No leakage.</b> Every score is frozen at the cutoff, before the first later event is
applied; later events are only used for the label (and for lead times on cancellations). A
test replaces the whole future with a hostile one and checks that no score changes.</li>
<li><b>Early warning by the score.</b> For each cancellation, the account's health at the
last periodic timer at least 30 days before it, ranked among the health of every account not
cancelled at that moment (only when the data has cancellations and timers run).</li>
<li><b>Baselines.</b> One signal each: days since the last activity, and the number of
events before the cutoff.</li>
<li><b>Model at the cutoff.</b> {html.escape(str(model.get("version", "n/a")))}, labels seen
{model.get("labels_seen", "n/a")}, rolling AUC {_fmt(model.get("rolling_auc"))}, blend weight
{_fmt(model.get("trusted_weight"))} (health = (1 &minus; weight) &times; scorecard + weight
&times; model; the weight is earned on recent labels, see above). "Churn model alone" ranks
by the model's probability at the cutoff whatever its weight.</li>
<li><b>Scorecard.</b> <code>{html.escape(str(run.get("config", "")))}</code> (version
{html.escape(str(run.get("scorecard_version", "")))}).</li>
<li><b>Events.</b> {run.get("events", 0):,} applied, {run.get("invalid", 0)} invalid,
{run.get("duplicates", 0)} duplicates, {run.get("ignored_after_end", 0)} after the end;
{run.get("seconds", "?")} s.</li>
</ul>
<h3>How the settings were chosen</h3>
{_notes_html(notes)}
<p>Reproduce:</p><pre>{html.escape(command)}</pre>
</body></html>
"""
    index = out_dir / "index.html"
    index.write_text(page, encoding="utf-8")
    return [index, *files.values()]
