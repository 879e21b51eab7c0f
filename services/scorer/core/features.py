"""Features: pure functions of (state, now). Every window is in event time.

``compute_features`` returns a flat ``dict[str, float]``; a feature whose data
is missing is simply absent (components then treat it as "no data", not as
zero), while ``model_vector`` fills gaps with neutral values plus ``has_*``
flags so the churn model always sees the same columns.
"""

from __future__ import annotations

from healthstream.contract import PRIORITIES
from services.scorer.core.numeric import round_to
from services.scorer.core.scorecard import Scorecard
from services.scorer.core.state import DAY, AccountState

PRIORITY_INDEX = {name: index for index, name in enumerate(PRIORITIES)}

#: Columns of the churn model, in a fixed order (pending label snapshots store vectors).
MODEL_FEATURES: tuple[str, ...] = (
    "days_inactive",
    "recency_ratio",
    "usage_7d",
    "usage_28d",
    "usage_trend",
    "active_days_28d",
    "active_days_total",
    "typical_gap_days",
    "active_users_28d",
    "feature_breadth_28d",
    "open_tickets",
    "over_sla_tickets",
    "over_sla_high_urgent",
    "ticket_trend",
    "csat",
    "nps",
    "payment_failures_30d",
    "past_due",
    "downgrade",
    "mrr_change_pct",
    "days_to_renewal",
    "account_age_days",
    "ttfv_days",
    "has_usage",
    "has_tickets",
    "has_sentiment",
    "has_billing",
)

# Value a model column takes when its feature is absent (neutral, not alarming).
_MODEL_DEFAULTS: dict[str, float] = {
    "days_inactive": 0.0,
    "recency_ratio": 0.0,
    "usage_trend": 0.0,
    "typical_gap_days": 0.0,
    "ticket_trend": 0.0,
    "csat": 4.0,
    "nps": 7.0,
    "mrr_change_pct": 0.0,
    "days_to_renewal": 365.0,
    "ttfv_days": 0.0,
}


#: (column, neutral default) pairs, in ``MODEL_FEATURES`` order.
_MODEL_COLUMNS = tuple((name, round(_MODEL_DEFAULTS.get(name, 0.0), 2)) for name in MODEL_FEATURES)


def window_sum(ring: list[int], ring_day: int, now_day: int, days: int, skip: int = 0) -> int:
    """Sum of the ``days`` days ending ``skip`` days before ``now_day``.

    ``ring[i]`` holds day ``ring_day - i``; days outside the ring count as 0.
    """
    lo, hi = _span(len(ring), ring_day, now_day - skip, days)
    return sum(ring[lo:hi]) if hi > lo else 0


def _span(size: int, ring_day: int, newest: int, days: int) -> tuple[int, int]:
    """Ring slice [lo, hi) of the ``days`` days ending at day ``newest``."""
    return max(0, ring_day - newest), min(size, ring_day - newest + days)


def recent_count(table: dict[int, int], first_day: int) -> int:
    """How many keys were last seen on or after ``first_day`` (usually all of them)."""
    days = table.values()
    if min(days) >= first_day:
        return len(table)
    return sum(day >= first_day for day in days)


def _engagement(f: dict[str, float], state: AccountState, day_ago: int) -> None:
    users = state.users
    if users:
        f["active_users_28d"] = active_users = float(recent_count(users, day_ago))
        if state.seats:
            f["active_user_ratio"] = active_users / state.seats
    if state.features_used:
        f["feature_breadth_28d"] = float(recent_count(state.features_used, day_ago))


def _tickets(state: AccountState, now: float, sc: Scorecard) -> tuple[list[int], list[int], float]:
    """Open and past-SLA tickets by priority, and the age of the oldest high/urgent past SLA."""
    sla = sc.sla_hours
    limits = (sla.low * 3600, sla.normal * 3600, sla.high * 3600, sla.urgent * 3600)
    open_by = [0, 0, 0, 0]
    over_by = [0, 0, 0, 0]
    oldest_over = 0.0
    for priority, opened in state.tickets.values():
        p = int(priority)
        open_by[p] += 1
        age = now - opened
        if age > limits[p]:
            over_by[p] += 1
            if p >= 2 and age > oldest_over:
                oldest_over = age
    return open_by, over_by, oldest_over


def refresh_features(
    previous: dict[str, float], state: AccountState, now: float, sc: Scorecard
) -> dict[str, float] | None:
    """``compute_features(state, now)`` from the features of the last score, for the engine's
    engagement-only re-score; ``None`` when that shortcut does not apply.

    Valid only when everything since the last score was same-day, in-order usage
    before any step in time (``ScoringEngine`` checks that): then the day-granular
    features and all counts except users and features are unchanged, and only
    engagement and the features that move with the clock itself are recomputed,
    with the same code as ``compute_features``. A hypothesis test compares the
    engine with and without the shortcut.
    """
    if ("active_users_28d" in previous) != bool(state.users) or (
        "feature_breadth_28d" in previous
    ) != bool(state.features_used):
        return None  # a feature group appears: keep compute_features' key order
    f = previous.copy()
    _engagement(f, state, int(now // DAY) - 27)
    first = state.first_value_ts
    if first is not None and "usage_history_days" in f:
        f["usage_history_days"] = (now - first) / DAY
    past_due = state.past_due_since
    if past_due is not None and "days_past_due" in f:
        f["days_past_due"] = max(0.0, (now - past_due) / DAY)
    if "oldest_over_sla_hours" in f:
        f["oldest_over_sla_hours"] = _tickets(state, now, sc)[2] / 3600
    return f


def compute_features(state: AccountState, now: float, sc: Scorecard) -> dict[str, float]:
    """All features of ``state`` as of event time ``now``."""
    f: dict[str, float] = {}
    now_day = int(now // DAY)
    day_ago = now_day - 27  # first day of the 28-day window
    # -- usage ---------------------------------------------------------------
    last_usage = state.last_usage_ts
    if last_usage is not None:
        ring = state.usage_ring
        # Complete days only (yesterday and before): a half-finished "today" would make
        # every account look like it is declining each morning. ``off`` is yesterday's
        # ring index; the slices are ``window_sum``'s spans written out (hot path).
        off = state.usage_day - now_day + 1
        lo = off if off > 0 else 0
        days28 = ring[lo : off + 28] if off + 28 > 0 else []
        u28 = sum(days28)
        u7 = sum(ring[lo : off + 7]) if off + 7 > 0 else 0
        f["has_usage"] = 1.0
        f["usage_7d"] = float(u7)
        f["usage_28d"] = float(u28)
        f["days_inactive"] = inactive = max(0.0, (now - last_usage) / DAY)
        f["active_days_28d"] = float(len(days28) - days28.count(0))
        total = state.active_days_total
        f["active_days_total"] = float(total)
        first = state.first_value_ts
        if total >= 2 and first is not None:
            span = int(last_usage // DAY) - int(first // DAY)
            f["typical_gap_days"] = gap = span / (total - 1)
        else:
            gap = 0.0
        f["recency_ratio"] = inactive / max(gap, sc.usage.min_expected_gap_days)
        if u28:
            f["usage_trend"] = (u7 / 7.0) / (u28 / 28.0) - 1.0
        if first is not None:
            f["usage_history_days"] = (now - first) / DAY
    # -- engagement ----------------------------------------------------------
    _engagement(f, state, day_ago)
    # -- support -------------------------------------------------------------
    if state.tickets_total or state.tickets:
        f["has_tickets"] = 1.0
        open_by, over_by, oldest_over = _tickets(state, now, sc)
        f["open_tickets"] = float(sum(open_by))
        f["over_sla_tickets"] = float(sum(over_by))
        f["over_sla_high_urgent"] = float(over_by[2] + over_by[3])
        if oldest_over:
            f["oldest_over_sla_hours"] = oldest_over / 3600
        for p, name in enumerate(PRIORITIES):
            if open_by[p]:
                f[f"open_{name}"] = float(open_by[p])
            if over_by[p]:
                f[f"over_sla_{name}"] = float(over_by[p])
        t7 = window_sum(state.ticket_ring, state.ticket_day, now_day, 7)
        t28 = window_sum(
            state.ticket_ring, state.ticket_day, now_day, 28
        )  # incl. today: rare events
        f["tickets_7d"] = float(t7)
        f["tickets_28d"] = float(t28)
        if t28:
            f["ticket_trend"] = (t7 / 7.0) / (t28 / 28.0) - 1.0
    # -- sentiment -----------------------------------------------------------
    if state.csat is not None:
        f["csat"] = float(state.csat)
        f["has_sentiment"] = 1.0
    if state.nps is not None:
        f["nps"] = float(state.nps)
        f["has_sentiment"] = 1.0
    # -- billing -------------------------------------------------------------
    failures = 0
    horizon = now - 30 * DAY
    for ts in state.failures:
        if horizon < ts <= now:
            failures += 1
    has_billing = (
        state.mrr is not None
        or failures > 0
        or state.past_due_since is not None
        or state.canceled_ts is not None
        or state.downgrade_ts is not None
        or state.plan is not None
    )
    if has_billing:
        f["has_billing"] = 1.0
        f["payment_failures_30d"] = float(failures)
        past_due = state.past_due_since
        f["past_due"] = 1.0 if past_due is not None else 0.0
        if past_due is not None:
            f["days_past_due"] = max(0.0, (now - past_due) / DAY)
        down = state.downgrade_ts
        recent_down = down is not None and now - down <= sc.billing.downgrade_memory_days * DAY
        f["downgrade"] = 1.0 if recent_down else 0.0
        if recent_down:
            f["mrr_change_pct"] = -100.0 * state.downgrade_pct
        elif state.mrr is not None and state.mrr_prev:
            f["mrr_change_pct"] = 100.0 * (state.mrr - state.mrr_prev) / state.mrr_prev
        if state.mrr is not None:
            f["mrr"] = float(state.mrr)
        canceled = state.canceled_ts is not None and (
            state.renewed_ts is None or state.renewed_ts < state.canceled_ts
        )
        f["canceled"] = 1.0 if canceled else 0.0
    # -- lifecycle -----------------------------------------------------------
    # Calendar days (they change at midnight only, which keeps scores stable within a day).
    if state.renewal_ts is not None:
        f["days_to_renewal"] = float(int(state.renewal_ts // DAY) - now_day)
    born = state.created_ts if state.created_ts is not None else state.first_ts
    f["account_age_days"] = float(max(0, now_day - int(born // DAY)))
    if state.created_ts is not None:
        f["has_created"] = 1.0
        if state.first_value_ts is not None:
            f["ttfv_days"] = max(0.0, (state.first_value_ts - state.created_ts) / DAY)
    return f


def stable_until(state: AccountState, now: float, sc: Scorecard) -> float:
    """Event time until which the score at ``now`` cannot change without new information.

    Everything time-dependent in the features is either day-granular (windows,
    calendar-day ages) or a step at a known time: a ticket reaching its SLA, a
    payment failure leaving the 30-day window, a downgrade being forgotten, the
    usage history reaching the trend minimum. The engine uses this to skip
    re-scoring same-day usage events (a hypothesis test checks it changes nothing).
    """
    until = (int(now // DAY) + 1) * DAY
    steps: list[float] = []
    if state.first_value_ts is not None:
        steps.append(state.first_value_ts + sc.usage.trend_min_history_days * DAY)
    sla = sc.sla_hours
    limits = (sla.low * 3600, sla.normal * 3600, sla.high * 3600, sla.urgent * 3600)
    for priority, opened in state.tickets.values():
        steps.append(opened + limits[int(priority)])
    for ts in state.failures:
        steps.append(ts + 30 * DAY)
    if state.downgrade_ts is not None:
        steps.append(state.downgrade_ts + sc.billing.downgrade_memory_days * DAY)
    for step in steps:
        if now < step < until:
            until = step
    return until


def model_vector(features: dict[str, float]) -> list[float]:
    """The fixed model columns of ``features`` (absent -> neutral default, rounded for storage)."""
    get = features.get
    return [
        default if (value := get(name)) is None else round_to(value, 100.0)
        for name, default in _MODEL_COLUMNS
    ]


def vector_features(vector: list[float]) -> dict[str, float]:
    return dict(zip(MODEL_FEATURES, vector, strict=True))
