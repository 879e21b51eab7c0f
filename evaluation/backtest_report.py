"""The backtest report: one page comparing two scorecards, in the evaluation report's style.

It leads with the verdict and the gate's checks (what CI decided and why), then the
figures side by side with plots, alerts per week and per reason, and the accounts whose
band would change with the reasons on each side. Each scorecard's full evaluation
report (``evaluation.report``) is written next to it, in ``baseline/`` and ``proposed/``.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: no display on servers and CI
import matplotlib.pyplot as plt
import numpy as np

from evaluation.metrics import roc_curve
from evaluation.report import CSS, _fmt, _pct, write_report

SIDES = ("baseline", "proposed")
SIDE_COLORS = {"baseline": "#888888", "proposed": "#1b7f5a"}
SIDE_NAMES = {"baseline": "Baseline", "proposed": "Proposed"}
VERDICT_TEXT = {
    "worse": "Worse: the proposed scorecard fails the gate. Do not ship it as it is.",
    "same": "Not worse: the proposed scorecard passes the gate, without a clear gain in ranking.",
    "better": "Better: the proposed scorecard passes the gate and ranks churn risk better.",
}
BAND_COLORS = {"red": "#c23b3b", "yellow": "#b38a10", "green": "#1b7f5a"}


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_roc(document: dict[str, Any], plots: dict[str, Any], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 5))
    for side in SIDES:
        plot = plots[side]
        fpr, tpr, _ = roc_curve(plot["labels"], plot["risks"]["health"])
        auc = document[side]["auc"]["health"]
        ax.plot(
            fpr, tpr, color=SIDE_COLORS[side], lw=2.2, label=f"{SIDE_NAMES[side]} ({_fmt(auc)})"
        )
    fpr, tpr, _ = roc_curve(
        plots["baseline"]["labels"], plots["baseline"]["risks"]["recency_baseline"]
    )
    recency = document["baseline"]["auc"]["recency_baseline"]
    ax.plot(
        fpr,
        tpr,
        color="#bbbbbb",
        lw=1,
        ls="--",
        label=f"Days since last activity ({_fmt(recency)})",
    )
    ax.plot([0, 1], [0, 1], ls=":", color="#444444", lw=1, label="Coin flip (0.500)")
    ax.set_xlabel("Share of retained accounts flagged (false positive rate)")
    ax.set_ylabel("Share of churners flagged (true positive rate)")
    ax.set_title("Health score ROC curves (AUC)")
    ax.legend(loc="lower right", fontsize=8)
    _save(fig, path)


def plot_lift(document: dict[str, Any], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    x = np.arange(1, 11)
    for i, side in enumerate(SIDES):
        values = [v if v is not None else 0.0 for v in document[side]["lift_by_decile"]["health"]]
        ax.bar(
            x + (i - 0.5) * 0.4, values, width=0.4, color=SIDE_COLORS[side], label=SIDE_NAMES[side]
        )
    ax.axhline(1.0, color="#c23b3b", ls=":", lw=1, label="Average account (1.0)")
    ax.set_xticks(x)
    ax.set_xticklabels([f"{10 * i - 9}-{10 * i}%" for i in x], fontsize=7)
    ax.set_xlabel("Accounts ranked from riskiest (left) to safest (right), by tenths")
    ax.set_ylabel("Churn rate / average churn rate")
    ax.set_title("Lift by tenth of the ranking")
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_weekly(document: dict[str, Any], path: Path) -> None:
    weeks = document["alerts_per_week"]
    fig, ax = plt.subplots(figsize=(8, 3.8))
    if weeks:
        x = np.arange(len(weeks))
        for side in SIDES:
            ax.plot(
                x, [w[side] for w in weeks], color=SIDE_COLORS[side], lw=1.6, label=SIDE_NAMES[side]
            )
        step = max(1, len(weeks) // 10)
        ax.set_xticks(x[::step])
        ax.set_xticklabels([w["week"] for w in weeks][::step], rotation=30, fontsize=7)
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "No alert fired", ha="center", va="center")
    ax.set_ylabel("Alerts fired")
    ax.set_title("Alerts that would have fired, per week (Monday)")
    _save(fig, path)


def plot_reasons(document: dict[str, Any], path: Path) -> None:
    reasons = document["reasons"]
    names = sorted(reasons, key=lambda r: -max(reasons[r]["fired"].values()))
    fig, ax = plt.subplots(figsize=(7, 0.5 * max(3, len(names)) + 1.2))
    if names:
        y = np.arange(len(names))
        for i, side in enumerate(SIDES):
            counts = [reasons[r]["fired"][side] for r in names]
            ax.barh(
                y + (i - 0.5) * 0.4,
                counts,
                height=0.4,
                color=SIDE_COLORS[side],
                label=SIDE_NAMES[side],
            )
        ax.set_yticks(y)
        ax.set_yticklabels(names, fontsize=8)
        ax.invert_yaxis()
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "No alert fired", ha="center", va="center")
    ax.set_xlabel("Alerts fired in the whole replay")
    ax.set_title("Alerts per reason")
    _save(fig, path)


def plot_calibration(document: dict[str, Any], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.plot([0, 1], [0, 1], ls=":", color="#444444", lw=1, label="Perfect calibration")
    for side in SIDES:
        bins = document[side]["calibration"]["bins"]
        if bins:
            predicted = [b["mean_predicted"] for b in bins]
            observed = [b["observed_rate"] for b in bins]
            brier = _fmt(document[side]["calibration"]["brier"])
            ax.plot(predicted, observed, marker="o", color=SIDE_COLORS[side], lw=1.5,
                    label=f"{SIDE_NAMES[side]} (Brier {brier})")  # fmt: skip
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("Predicted churn probability")
    ax.set_ylabel("Observed churn rate")
    ax.set_title("Calibration of the churn probability")
    ax.legend(loc="upper left", fontsize=8)
    _save(fig, path)


def plot_lead(document: dict[str, Any], plots: dict[str, Any], path: Path) -> None:
    by_cancellation = document["baseline"]["alerts"]["lead_time"]["basis"] == "cancellation"
    fig, ax = plt.subplots(figsize=(7, 4.2))
    series = {
        s: plots[s]["lead_days"] if by_cancellation else -plots[s]["lead_days"] for s in SIDES
    }
    values = np.concatenate([series[s] for s in SIDES])
    if len(values):
        low = min(-30.0, float(np.floor(values.min() / 10) * 10))
        high = max(30.0, float(np.ceil(values.max() / 10) * 10))
        edges = np.arange(low, high + 10, 10).tolist()
        for side in SIDES:
            if len(series[side]):
                ax.hist(
                    series[side],
                    bins=edges,
                    color=SIDE_COLORS[side],
                    alpha=0.55,
                    label=SIDE_NAMES[side],
                )
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "No churner was alerted", ha="center", va="center")
    if by_cancellation:
        ax.set_xlabel("Days from the first alert to the cancellation (more = earlier warning)")
    else:
        ax.set_xlabel("Days from the last activity to the first alert (negative = before it)")
    ax.set_ylabel("Churned accounts")
    ax.set_title("Lead time of the first alert")
    _save(fig, path)


# -- tables --------------------------------------------------------------------------------
def _num(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _delta(row: dict[str, Any], digits: int = 3) -> str:
    delta = row["delta"]
    if delta is None:
        return "n/a"
    if abs(delta) < 0.5 * 10**-digits:  # rounds to zero: no "better" or "worse" to read
        return f"{0.0:+.{digits}f}"
    mark = {True: " <span class='good'>better</span>", False: " <span class='bad'>worse</span>"}
    return f"{delta:+.{digits}f}{mark.get(row['better'], '')}"


def _checks_table(document: dict[str, Any]) -> str:
    rows = []
    for check in document["checks"]:
        css = {"fail": "bad", "pass": "good"}.get(check["status"], "muted")
        worse = check["worsening"]
        rows.append(
            f"<tr><td>{html.escape(check['label'])}</td>"
            f"<td>{'n/a' if worse is None else f'{worse:+.3f}'}</td>"
            f"<td>{check['max_worsening']:g}</td>"
            f"<td class='{css}'>{check['status']}</td></tr>"
        )
    return (
        "<table><tr><th>Gate check</th><th>Worsening</th><th>Allowed</th><th>Result</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _figures_table(document: dict[str, Any]) -> str:
    rows = []
    for row in document["diff"].values():
        digits = 0 if row["label"].startswith("Alerts fired") else 3
        rows.append(
            f"<tr><td>{html.escape(row['label'])}</td><td>{_num(row['baseline'], digits)}</td>"
            f"<td>{_num(row['proposed'], digits)}</td><td>{_delta(row, digits)}</td></tr>"
        )
    return (
        "<table><tr><th>Figure</th><th>Baseline</th><th>Proposed</th><th>Change</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _reasons_table(document: dict[str, Any]) -> str:
    rows = []
    for reason, row in document["reasons"].items():
        rows.append(
            f"<tr><td>{html.escape(reason)}</td>"
            f"<td>{row['fired']['baseline']:,}</td><td>{row['fired']['proposed']:,}</td>"
            f"<td>{row['alerted_accounts']['baseline']:,}</td>"
            f"<td>{row['alerted_accounts']['proposed']:,}</td>"
            f"<td>{_pct(row['precision']['baseline'])}</td>"
            f"<td>{_pct(row['precision']['proposed'])}</td></tr>"
        )
    if not rows:
        return "<p>Neither scorecard raised an alert.</p>"
    return (
        "<table><tr><th rowspan=2>Reason</th><th colspan=2>Alerts fired (whole replay)</th>"
        "<th colspan=2>Accounts alerted before the cutoff</th><th colspan=2>Precision</th></tr>"
        "<tr><th>baseline</th><th>proposed</th><th>baseline</th><th>proposed</th>"
        "<th>baseline</th><th>proposed</th></tr>" + "".join(rows) + "</table>"
    )


def _matrix_table(changes: dict[str, Any]) -> str:
    bands = ("red", "yellow", "green")
    head = "".join(f"<th>{b}</th>" for b in bands)
    rows = []
    for before in bands:
        cells = []
        for after in bands:
            cell = changes["matrix"][before][after]
            rate = cell["churned"] / cell["accounts"] if cell["accounts"] else None
            style = "" if before == after else " class='moved'"
            cells.append(
                f"<td{style}>{cell['accounts']:,} "
                f"<span class='muted'>({_pct(rate)} churned)</span></td>"
            )
        rows.append(f"<tr><td>{before}</td>{''.join(cells)}</tr>")
    return (
        f"<table><tr><th>baseline band &darr; / proposed band &rarr;</th>{head}</tr>"
        + "".join(rows)
        + "</table>"
    )


def _drivers_text(side: dict[str, Any]) -> str:
    drivers = side["drivers"][:2]
    if not drivers:
        return "<span class='muted'>no drivers</span>"
    return "; ".join(html.escape(f"{d['sentence']} ({d['contribution']:+.1f})") for d in drivers)


def _accounts_table(changes: dict[str, Any]) -> str:
    rows = []
    for move in changes["accounts"]:
        b, p = move["baseline"], move["proposed"]
        rows.append(
            f"<tr><td>{html.escape(move['account_id'])}</td>"
            f"<td style='color:{BAND_COLORS[b['band']]}'>{b['score']:.0f} {b['band']}</td>"
            f"<td style='color:{BAND_COLORS[p['band']]}'>{p['score']:.0f} {p['band']}</td>"
            f"<td>{'churned' if move['churned'] else 'stayed'}</td>"
            f"<td class='left'>{_drivers_text(b)}</td><td class='left'>{_drivers_text(p)}</td></tr>"
        )
    if not rows:
        return "<p>No account changes band.</p>"
    return (
        "<table><tr><th>Account</th><th>Baseline</th><th>Proposed</th><th>Then</th>"
        "<th>Top reasons, baseline</th><th>Top reasons, proposed</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _reasons_list(items: list[dict[str, Any]]) -> str:
    if not items:
        return "<li class='muted'>none</li>"
    return "".join(
        f"<li><code>{html.escape(i['reason'])}</code>: {i['accounts']:,} accounts "
        f"<span class='muted'>(e.g. &ldquo;{html.escape(i['example'])}&rdquo;)</span></li>"
        for i in items
    )


def _moved(group: dict[str, Any], where: str) -> str:
    if not group["accounts"]:
        return f"none to {where} band"
    return (
        f"{group['accounts']:,} to {where} band, of which {_pct(group['churn_rate'])} churned "
        "afterwards"
    )


EXTRA_CSS = """
.good{color:#1b7f5a;font-weight:600}.bad{color:#c23b3b;font-weight:600}
td.left{text-align:left;font-size:.85em}td.moved{background:#fff6e0}
.verdict{font-size:1.25em;padding:.6em .9em;border-radius:4px}
.verdict.worse{background:#fbe9e9}.verdict.same{background:#f3f3f3}.verdict.better{background:#e7f5ee}
"""


def write_backtest_report(
    document: dict[str, Any], plots: dict[str, Any], out_dir: Path, title: str = "backtest"
) -> list[Path]:
    """Write ``index.html``, its PNGs and both scorecards' evaluation reports; returns the
    files of the comparison page."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "roc": out_dir / "roc.png",
        "lift": out_dir / "lift_by_decile.png",
        "weekly": out_dir / "alerts_per_week.png",
        "reasons": out_dir / "alerts_by_reason.png",
        "calibration": out_dir / "calibration.png",
        "lead": out_dir / "lead_time.png",
    }
    plot_roc(document, plots, files["roc"])
    plot_lift(document, files["lift"])
    plot_weekly(document, files["weekly"])
    plot_reasons(document, files["reasons"])
    plot_calibration(document, files["calibration"])
    plot_lead(document, plots, files["lead"])
    run = document.get("run", {})
    for side in SIDES:
        summary = dict(document[side])
        summary["run"] = {
            **run,
            "events_file": run.get("source", {}).get("events_file", "topics"),
            "config": document[side]["scorecard"]["path"],
            "scorecard_version": document[side]["scorecard"]["version"],
        }
        write_report(summary, plots[side], out_dir / side, title=f"{title}: {side} scorecard")
    verdict = document["verdict"]
    diff = document["diff"]
    changes = document["band_changes"]
    interval = diff["auc"].get("interval")
    interval_text = (
        f" (95% paired bootstrap interval of the change: {interval['low']:+.3f} to "
        f"{interval['high']:+.3f}, {interval['resamples']} resamples)"
        if interval
        else ""
    )
    down, up = changes["down"], changes["up"]
    changed_share = changes["changed"] / changes["scored"] if changes["scored"] else None
    cards = {side: document[side]["scorecard"] for side in SIDES}
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{html.escape(title)}: is the proposed scorecard better?</title>
<style>{CSS}{EXTRA_CSS}</style></head><body>
<h1>{html.escape(title)}: is the proposed scorecard better?</h1>
<p class="muted">Baseline <code>{html.escape(cards["baseline"]["path"])}</code> (version
{html.escape(cards["baseline"]["version"])}) &middot; proposed
<code>{html.escape(cards["proposed"]["path"])}</code> (version
{html.escape(cards["proposed"]["version"])}) &middot; scores at the cutoff
{html.escape(str(run.get("cutoff", "")))}, outcomes until {html.escape(str(run.get("end", "")))}</p>
<h2>The verdict</h2>
<p class="verdict {verdict}"><b>{html.escape(VERDICT_TEXT[verdict])}</b></p>
<p>Both scorecards replayed the same {run.get("events", 0):,} events through the production
scoring core. Of {document["baseline"]["accounts"]:,} accounts scored at the cutoff,
{_pct(document["baseline"]["churn_rate"])} churned afterwards. Health ROC AUC went from
{_fmt(diff["auc"]["baseline"])} to {_fmt(diff["auc"]["proposed"])}{interval_text}.
{changes["changed"]:,} accounts ({_pct(changed_share)}) would change band:
{_moved(down, "a riskier")} and {_moved(up, "a safer")}.</p>
{_checks_table(document)}
<p class="muted">Exit status 1 when a check fails (the figure got worse than the baseline by more
than allowed), else 0. "Better" means the health AUC rose by more than the AUC allowance.</p>
<h2>Figures side by side</h2>
{_figures_table(document)}
<div class="grid"><img src="roc.png" alt="ROC curves of both scorecards">
<img src="lift_by_decile.png" alt="Lift by decile, both scorecards"></div>
<div class="grid"><img src="calibration.png" alt="Calibration, both scorecards">
<img src="lead_time.png" alt="Lead time of the first alert, both scorecards"></div>
<h2>Alerts that would have fired</h2>
<img src="alerts_per_week.png" alt="Alerts per week, both scorecards">
<img src="alerts_by_reason.png" alt="Alerts per reason, both scorecards">
{_reasons_table(document)}
<p class="muted">Precision per reason: among the accounts with an alert of that reason in the
{document["baseline"]["alerts"]["window_days"]:.0f} days before the cutoff, the share that
churned afterwards (all accounts: {_pct(document["baseline"]["churn_rate"])}).</p>
<h2>Accounts whose band would change</h2>
{_matrix_table(changes)}
<div class="grid"><div><b>Moved to a riskier band: most common strongest negative
driver (proposed)</b>
<ul>{_reasons_list(changes["top_reasons"]["down"])}</ul></div>
<div><b>Moved to a safer band: the baseline's strongest negative driver, now weighed less</b>
<ul>{_reasons_list(changes["top_reasons"]["up"])}</ul></div></div>
<p>The {len(changes["accounts"]):,} largest score changes among them:</p>
{_accounts_table(changes)}
<h2>Method</h2>
<ul>
<li><b>Same code as production, side by side.</b> Every event is fed, in event time, to two
instances of the production scoring core (<code>services/scorer/core</code>), one per
scorecard, each with its own online churn model; nothing else differs between them.</li>
<li><b>Label and cutoff</b> as in <code>healthstream evaluate</code>: scores frozen at the
cutoff, churn = no activity after it (or an explicit cancellation).</li>
<li><b>Full reports</b> of each scorecard: <a href="baseline/index.html">baseline</a>,
<a href="proposed/index.html">proposed</a>.</li>
</ul>
<p>Reproduce:</p><pre>{html.escape(str(run.get("command", "")))}</pre>
</body></html>
"""
    index = out_dir / "index.html"
    index.write_text(page, encoding="utf-8")
    return [index, *files.values()]
