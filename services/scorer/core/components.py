"""Components 0-100 from features, plus the signals that explain them.

Each component returns its score and a list of signals ``(feature, delta,
sentence)``. For graded signals (usage, engagement, sentiment, lifecycle)
``delta`` is how far the signal moves the component from the scorecard's
neutral score; for penalty signals (support, billing) it is the points lost
against a clean record (a clean record itself is one positive signal). The
engine scales deltas by the component's (renormalised) weight to get each
driver's signed contribution to the health score. A component without data
returns ``None`` and is excluded from the weighted mean, so an account that
only sends usage (the CDNOW data) is judged on usage alone instead of being
dragged by empty components.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from services.scorer.core.scorecard import Scorecard

#: A sentence, or a function making it: only the top drivers' sentences are ever formatted.
Text = str | Callable[[], str]
Signal = tuple[str, float, Text]
ComponentResult = tuple[float, list[Signal]] | None


def _clip(value: float) -> float:
    return 0.0 if value < 0.0 else 100.0 if value > 100.0 else value


_PRIORITY_KEYS = tuple(
    (name, f"over_sla_{name}", f"open_{name}") for name in ("urgent", "high", "normal", "low")
)


def _count(n: float, noun: str) -> str:
    return f"{int(n)} {noun}" + ("" if n == 1 else "s")


def _days(value: float) -> str:
    n = round(value)
    return "1 day" if n == 1 else f"{n} days"


def _past_due(days: float) -> str:
    """What happened, not arithmetic: "since today" rather than "for 0 days"."""
    if round(days) < 1:
        return "invoice past due since today"
    return f"invoice past due for {_days(days)}"


def _first_value(days: float) -> str:
    if round(days) < 1:
        return "first value on the day of signup"
    return f"first value {_days(days)} after signup"


def text_of(text: Text) -> str:
    return text if isinstance(text, str) else text()


def _weighted(parts: list[tuple[str, float, float, Text]], neutral: float) -> ComponentResult:
    """Weighted mean of (feature, score, weight, sentence) sub-scores -> component + signals."""
    total = sum(weight for _, _, weight, _ in parts)
    if total <= 0:
        return None
    score = 0.0
    signals: list[Signal] = []
    for feature, sub, weight, sentence in parts:
        share = weight / total
        score += share * sub
        signals.append((feature, share * (sub - neutral), sentence))
    return _clip(score), signals


def usage(f: dict[str, float], sc: Scorecard) -> ComponentResult:
    """Recency against the account's own rhythm, lifetime frequency, and the 7 d vs 28 d trend.

    Recency and frequency work for sparse purchase data (an order every few
    months); the trend is only judged when there is enough recent activity for
    a 7-day window to mean something, and never in the first four weeks.
    """
    if "has_usage" not in f:
        return None
    cfg = sc.usage
    parts: list[tuple[str, float, float, Text]] = []
    inactive = f["days_inactive"]
    ratio = f["recency_ratio"]
    if ratio <= 1.0:
        recency = 100.0
    else:
        recency = _clip(100.0 * (1.0 - (ratio - 1.0) / (cfg.recency_zero_ratio - 1.0)))
    gap = f.get("typical_gap_days")
    sentence: Text
    if inactive < 1.0:
        sentence = "active in the last day"
    else:

        def sentence() -> str:
            rhythm = f" (usually every {_days(gap)})" if gap and gap >= 1.5 else ""
            return f"last active {_days(inactive)} ago{rhythm}"

    parts.append(("days_inactive", recency, cfg.recency_weight, sentence))
    age = f.get("account_age_days", 0.0)
    if age >= cfg.frequency_min_age_days:
        total = f["active_days_total"]
        target = cfg.frequency_target_active_days
        frequency = _clip(100.0 * math.log1p(total) / math.log1p(target))
        parts.append(
            (
                "active_days_total",
                frequency,
                cfg.frequency_weight,
                lambda: f"active on {int(total)} days so far",
            )
        )
    trend = f.get("usage_trend")
    if (
        trend is not None
        and f["active_days_28d"] >= cfg.trend_min_active_days_28d
        and f.get("usage_history_days", 0.0) >= cfg.trend_min_history_days
    ):
        score = 80.0 + 20.0 * min(trend, 1.0) if trend >= 0 else 80.0 * (1.0 + trend)
        pct = round(abs(trend) * 100)
        direction = "steady" if pct < 10 else "down" if trend < 0 else "up"

        def text() -> str:
            if direction == "steady":
                return "usage steady vs last 4 weeks"
            return f"usage {direction} {pct}% vs last 4 weeks"

        parts.append(("usage_trend", _clip(score), cfg.trend_weight, text))
    return _weighted(parts, sc.neutral_score)


def engagement(f: dict[str, float], sc: Scorecard, seats: int | None) -> ComponentResult:
    """Breadth of adoption: active users (vs seats when known) and features used, 28 days."""
    cfg = sc.engagement
    parts: list[tuple[str, float, float, Text]] = []
    users = f.get("active_users_28d")
    if users is not None:
        target = seats if seats else cfg.target_active_users
        parts.append(
            (
                "active_users_28d",
                _clip(100.0 * users / target),
                1.0,
                lambda: (
                    f"{int(users)} active users"
                    + (f" of {seats} seats" if seats else "")
                    + " in the last 4 weeks"
                ),
            )
        )
    breadth = f.get("feature_breadth_28d")
    if breadth is not None:
        parts.append(
            (
                "feature_breadth_28d",
                _clip(100.0 * breadth / cfg.target_features),
                1.0,
                lambda: f"{int(breadth)} features used in the last 4 weeks",
            )
        )
    return _weighted(parts, sc.neutral_score)


def _penalties(penalties: list[Signal], clear: Signal) -> tuple[float, list[Signal]]:
    """100 minus penalties; signals are the penalties (points lost vs a clean record, scaled
    down if the score clips at 0), or the single ``clear`` signal when there is none."""
    if not penalties:
        return 100.0, [clear]
    total = sum(-delta for _, delta, _ in penalties)
    score = 100.0 - total
    if score >= 0:
        return score, penalties
    # Clipped: scale penalties so they still add up to the distance from 100 to 0.
    scale = 100.0 / total
    return 0.0, [(name, delta * scale, text) for name, delta, text in penalties]


def support(f: dict[str, float], sc: Scorecard) -> ComponentResult:
    """Open tickets cost a little, tickets past SLA a lot, a rising ticket trend some more."""
    if "has_tickets" not in f:
        return None
    cfg = sc.support
    penalties: list[Signal] = []
    for name, over_key, open_key in _PRIORITY_KEYS:
        over = f.get(over_key, 0.0)
        still_open = f.get(open_key, 0.0) - over
        if over:
            penalties.append(
                (
                    "over_sla_tickets",
                    -over * getattr(cfg.past_sla_penalty, name),
                    f"{_count(over, name + ' ticket')} past SLA",
                )
            )
        if still_open:
            penalties.append(
                (
                    "open_tickets",
                    -still_open * getattr(cfg.open_penalty, name),
                    f"{int(still_open)} open {name} ticket{'' if still_open == 1 else 's'}",
                )
            )
    trend = f.get("ticket_trend")
    if (
        trend is not None
        and trend >= 1.0
        and f.get("tickets_7d", 0.0) >= cfg.rising_trend_min_tickets_7d
    ):
        penalties.append(
            (
                "ticket_trend",
                -cfg.rising_trend_penalty,
                lambda: f"ticket volume up {round(trend * 100)}% vs last 4 weeks",
            )
        )
    clear = ("open_tickets", 100.0 - sc.neutral_score, "no open support tickets")
    return _penalties(penalties, clear)


def billing(f: dict[str, float], sc: Scorecard) -> ComponentResult:
    """Payment failures (30 d), past due, a recent downgrade; a canceled subscription is 0."""
    if "has_billing" not in f:
        return None
    cfg = sc.billing
    if f.get("canceled"):
        return 0.0, [("canceled", -sc.neutral_score, "subscription canceled")]
    penalties: list[Signal] = []
    failures = f.get("payment_failures_30d", 0.0)
    if failures:
        penalties.append(
            (
                "payment_failures_30d",
                -failures * cfg.payment_failure_penalty,
                lambda: f"{_count(failures, 'payment failure')} in the last 30 days",
            )
        )
    if f.get("past_due"):
        penalties.append(
            (
                "past_due",
                -cfg.past_due_penalty,
                lambda: _past_due(f.get("days_past_due", 0.0)),
            )
        )
    if f.get("downgrade"):
        pct = round(-f.get("mrr_change_pct", 0.0))
        penalties.append(
            ("downgrade", -cfg.downgrade_penalty, lambda: f"downgraded: MRR down {pct}%")
        )
    clear = ("payment_failures_30d", 100.0 - sc.neutral_score, "billing in good standing")
    return _penalties(penalties, clear)


def sentiment(f: dict[str, float], sc: Scorecard) -> ComponentResult:
    """Latest NPS (0-10 -> 0-100) and CSAT (1-5 -> 0-100), equally weighted when both exist."""
    parts: list[tuple[str, float, float, Text]] = []
    nps = f.get("nps")
    if nps is not None:
        kind = "promoter" if nps >= 9 else "passive" if nps >= 7 else "detractor"
        parts.append(("nps", nps * 10.0, 1.0, lambda: f"NPS {nps:g} ({kind})"))
    csat = f.get("csat")
    if csat is not None:
        parts.append(("csat", (csat - 1.0) * 25.0, 1.0, lambda: f"CSAT {csat:g}/5"))
    return _weighted(parts, sc.neutral_score)


def lifecycle(f: dict[str, float], sc: Scorecard) -> ComponentResult:
    """Time to first value: fast activation is healthy; none after onboarding is alarming.

    A week-one account with little usage is normal, so during onboarding the
    account scores near neutral until it reaches first value.
    """
    if "has_created" not in f:
        return None
    cfg = sc.lifecycle
    age = f["account_age_days"]
    ttfv = f.get("ttfv_days")
    if ttfv is not None:
        if ttfv <= cfg.ttfv_target_days:
            score = 100.0
        else:
            span = max(cfg.ttfv_limit_days - cfg.ttfv_target_days, 1e-9)
            score = max(40.0, 100.0 - 60.0 * (ttfv - cfg.ttfv_target_days) / span)
        return score, [
            (
                "ttfv_days",
                score - sc.neutral_score,
                lambda: _first_value(ttfv),
            )
        ]
    text: Text
    if age <= cfg.onboarding_days:
        score = 80.0
        text = f"onboarding, day {int(age) + 1}: no product usage yet"
    else:
        span = max(cfg.ttfv_limit_days - cfg.onboarding_days, 1e-9)
        score = _clip(60.0 - 60.0 * (age - cfg.onboarding_days) / span)
        text = f"no product usage {_days(age)} after signup"
    return score, [("ttfv_days", score - sc.neutral_score, text)]
