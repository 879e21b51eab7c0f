"""Portfolio figures against a hand-computed case (docs/portfolio.md, "Worked example").

The fixture (tests/fixtures/portfolio_20_accounts.ndjson) has 20 accounts over
January-April 2024; plans cost starter 100, growth 200, enterprise 500 a month.

- a01-a12 signed up in December 2023 (cohort 2023-12): 12 customers, MRR 2 800
  at the start of January (a01 100, a02 100, a03 200, a04 200, a05 500,
  a06 500, a07 200, a08 100, a09 200, a10 100, a11 500, a12 100).
- January: a06 500 -> 800 (+300 expansion); a07 cancels (200 churned); a13
  (starter 100) and a14 (growth 200) sign up.
- February: a02 starter -> growth 100 -> 200 (+100); a04 cancels (200); a15
  (growth 200) and a16 (starter 100) sign up.
- March: a03 growth -> starter 200 -> 100 (-100 contraction); a09 200 -> 300 ->
  250 (nets to +50); a14 cancels (200); a07 comes back on starter (100
  reactivation); a17 (enterprise 500) signs up; a18 signs up (starter 100) and
  cancels within the month, so it is never a customer at a month end.
- April: a08 cancels (100); a11 enterprise -> growth 500 -> 200 (-300); a15
  growth -> enterprise 200 -> 500 (+300); a19 (growth 200) and a20 (starter 100)
  sign up.

Noise the figures must ignore: a CRM sync (``account.updated`` with mrr 200)
of the canceled a04 in March, a renewal at the same MRR, an invoice and a
failed payment, and one redelivered ``subscription.updated``.
"""

from __future__ import annotations

import random
from fractions import Fraction
from pathlib import Path
from typing import Any

import orjson
import pytest

from healthstream.contract import parse_rfc3339
from services.alerts import portfolio
from services.alerts.portfolio import GroupBy, Period

FIXTURE = Path(__file__).parents[2] / "fixtures" / "portfolio_20_accounts.ndjson"


def load_changes() -> list[portfolio.Change]:
    changes = []
    for line in FIXTURE.read_text().splitlines():
        event = orjson.loads(line)
        change = portfolio.change_of(
            event["event_id"],
            event["account_id"],
            event["name"],
            parse_rfc3339(event["occurred_at"]),
            event.get("properties") or {},
        )
        if change is not None:
            changes.append(change)
    return changes


def r(numerator: int, denominator: int) -> float:
    """A ratio as the API rounds it (6 decimals), from exact integers."""
    return round(float(Fraction(numerator, denominator)), 6)


def expected(
    start: tuple[int, int],
    end: tuple[int, int],
    moves: tuple[int, int, int],
    money: dict[str, int],
) -> dict[str, Any]:
    """Figures from (accounts, MRR) at start and end, (new, churned, reactivated), movements."""
    (accounts_start, mrr_start), (accounts_end, mrr_end) = start, end
    new, churned, reactivated = moves
    m = {
        "new_mrr": 0,
        "reactivation_mrr": 0,
        "expansion_mrr": 0,
        "contraction_mrr": 0,
        "churned_mrr": 0,
    } | money
    # The movements explain the change of MRR exactly: a check on the hand computation.
    assert mrr_start + m["new_mrr"] + m["reactivation_mrr"] + m["expansion_mrr"] - m[
        "contraction_mrr"
    ] - m["churned_mrr"] == (mrr_end)
    assert accounts_start - churned + new + reactivated == accounts_end
    ratios: dict[str, float | None] = {
        "logo_churn": None,
        "grr": None,
        "nrr": None,
        "net_revenue_churn": None,
    }
    if accounts_start:
        exp, con, chu = m["expansion_mrr"], m["contraction_mrr"], m["churned_mrr"]
        ratios = {
            "logo_churn": r(churned, accounts_start),
            "grr": r(mrr_start - con - chu, mrr_start),
            "nrr": r(mrr_start + exp - con - chu, mrr_start),
            "net_revenue_churn": r(chu + con - exp, mrr_start),
        }
    return {
        "accounts_start": accounts_start,
        "accounts_end": accounts_end,
        "new": new,
        "churned": churned,
        "reactivated": reactivated,
        "mrr_start": float(mrr_start),
        "mrr_end": float(mrr_end),
        **{key: float(value) for key, value in m.items()},
        **ratios,
    }


#: Month by month (see the module docstring for every movement).
MONTHS = {
    # 12 customers, 2800; +a13 +a14 (300 new), a06 +300, a07 -200 churned.
    "2024-01": expected(
        (12, 2800),
        (13, 3200),
        (2, 1, 0),
        {"new_mrr": 300, "expansion_mrr": 300, "churned_mrr": 200},
    ),
    # +a15 +a16 (300 new), a02 +100, a04 -200 churned.
    "2024-02": expected(
        (13, 3200),
        (14, 3400),
        (2, 1, 0),
        {"new_mrr": 300, "expansion_mrr": 100, "churned_mrr": 200},
    ),
    # +a17 (500 new; a18 came and went), a07 back (100), a09 +50, a03 -100, a14 -200.
    "2024-03": expected(
        (14, 3400),
        (15, 3750),
        (1, 1, 1),
        {
            "new_mrr": 500,
            "reactivation_mrr": 100,
            "expansion_mrr": 50,
            "contraction_mrr": 100,
            "churned_mrr": 200,
        },
    ),
    # +a19 +a20 (300 new), a15 +300, a11 -300, a08 -100 churned.
    "2024-04": expected(
        (15, 3750),
        (16, 3950),
        (2, 1, 0),
        {"new_mrr": 300, "expansion_mrr": 300, "contraction_mrr": 300, "churned_mrr": 100},
    ),
}

#: Q1 compares the end of December with the end of March, account by account:
#: a07 was a customer at both ends (200 -> 100), so on that basis it is a 100
#: contraction, not a churn and a reactivation; a14 came and went inside the
#: quarter and counts nowhere. New: a13 100, a15 200, a16 100, a17 500 = 900.
#: Expansion: a02 +100, a06 +300, a09 +50 = 450. Contraction: a03 100 + a07 100.
QUARTERS = {
    "2024-Q1": expected(
        (12, 2800),
        (15, 3750),
        (4, 1, 0),
        {"new_mrr": 900, "expansion_mrr": 450, "contraction_mrr": 200, "churned_mrr": 200},
    ),
    # Nothing happens after April: Q2 so far is April.
    "2024-Q2": MONTHS["2024-04"],
}


def strip(period: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in period.items() if k not in ("period", "start", "end", "groups", "key")}


def facts() -> list[portfolio.AccountFacts]:
    return list(portfolio.fold_all(load_changes()).values())


def test_monthly_figures_match_the_hand_computation() -> None:
    first, last = portfolio.parse_month("2024-01"), portfolio.parse_month("2024-04")
    periods = [p.as_dict() for p in portfolio.report(facts(), Period.MONTH, first, last)]
    assert [p["period"] for p in periods] == list(MONTHS)
    for period in periods:
        assert strip(period) == MONTHS[period["period"]], period["period"]
    assert periods[0]["start"] == "2024-01-01T00:00:00Z"
    assert periods[0]["end"] == "2024-02-01T00:00:00Z"
    # January's ratios, spelled out: 1/12, 2600/2800, 2900/2800, -100/2800.
    assert periods[0]["logo_churn"] == 0.083333
    assert periods[0]["grr"] == 0.928571
    assert periods[0]["nrr"] == 1.035714
    assert periods[0]["net_revenue_churn"] == -0.035714


def test_quarterly_figures_compare_quarter_ends() -> None:
    first = portfolio.parse_period_start("2024-Q1", Period.QUARTER)
    last = portfolio.parse_period_start("2024-05", Period.QUARTER)  # the quarter containing May
    periods = [p.as_dict() for p in portfolio.report(facts(), Period.QUARTER, first, last)]
    assert [p["period"] for p in periods] == list(QUARTERS)
    for period in periods:
        assert strip(period) == QUARTERS[period["period"]], period["period"]
    # Net revenue churn below zero: expansion (450) beat contraction + churn (400).
    assert periods[0]["net_revenue_churn"] == r(-50, 2800) == -0.017857


def test_april_by_plan_counts_movements_where_accounts_started() -> None:
    """Plans at the start of April: starter a01 a03 a07 a08 a10 a12 a13 a16 (8 x 100);
    growth a02 200, a09 250, a15 200 (650); enterprise a05 500, a06 800, a11 500, a17 500
    (2300). a15's upgrade counts in growth, a11's downgrade in enterprise; new accounts
    count in their plan at the end (a19 growth, a20 starter)."""
    april = portfolio.parse_month("2024-04")
    key = portfolio.group_key(GroupBy.PLAN)
    (report,) = portfolio.report(facts(), Period.MONTH, april, april, key)
    groups = {g["key"]: strip(g) for g in report.as_dict()["groups"]}
    assert groups == {
        "enterprise": expected((4, 2300), (4, 2000), (0, 0, 0), {"contraction_mrr": 300}),
        "growth": expected((3, 650), (4, 1150), (1, 0, 0), {"new_mrr": 200, "expansion_mrr": 300}),
        "starter": expected((8, 800), (8, 800), (1, 1, 0), {"new_mrr": 100, "churned_mrr": 100}),
    }
    assert groups["growth"]["nrr"] == r(950, 650) == 1.461538


def test_q1_by_cohort() -> None:
    q1 = portfolio.parse_period_start("2024-Q1", Period.QUARTER)
    key = portfolio.group_key(GroupBy.COHORT)
    (report,) = portfolio.report(facts(), Period.QUARTER, q1, q1, key)
    groups = {g["key"]: strip(g) for g in report.as_dict()["groups"]}
    assert groups == {
        # a01-a12: all Q1 movements of the quarter total except the new accounts.
        "2023-12": expected(
            (12, 2800),
            (11, 2850),
            (0, 1, 0),
            {"expansion_mrr": 450, "contraction_mrr": 200, "churned_mrr": 200},
        ),
        "2024-01": expected((0, 0), (1, 100), (1, 0, 0), {"new_mrr": 100}),  # a13 (a14 left)
        "2024-02": expected((0, 0), (2, 300), (2, 0, 0), {"new_mrr": 300}),  # a15, a16
        "2024-03": expected((0, 0), (1, 500), (1, 0, 0), {"new_mrr": 500}),  # a17 (a18 left)
    }


def test_owner_groups_come_from_the_caller() -> None:
    """csm/team groups use the owner now (the store's), not the events' history."""
    owners = {f"a{n:02d}": ("ana" if n % 2 else "ben") for n in range(1, 21)}
    april = portfolio.parse_month("2024-04")
    key = portfolio.group_key(GroupBy.CSM, owners)
    (report,) = portfolio.report(facts(), Period.MONTH, april, april, key)
    groups = {g["key"]: g for g in report.as_dict()["groups"]}
    # Odd accounts customers at the start of April: a01 a03 a05 a07 a09 a11 a13 a15 a17.
    assert groups["ana"]["accounts_start"] == 9
    assert groups["ana"]["mrr_start"] == 100 + 100 + 500 + 100 + 250 + 500 + 100 + 200 + 500
    assert groups["ben"]["accounts_start"] == 6  # a02 a06 a08 a10 a12 a16


def test_cohort_triangle() -> None:
    """Cohort base = MRR at the end of the signup month; a18 (March) never counts as retained.

    2023-12: 12 logos / 2800, then end of Jan 11 / 2900 (a07 out, a06 +300), Feb 10 / 2800
    (a04 out, a02 +100), Mar 11 / 2850 (a07 back at 100, a03 -100, a09 +50), Apr 10 / 2450
    (a08 out, a11 -300).
    """
    rows = portfolio.cohort_table(
        facts(), portfolio.parse_month("2023-12"), portfolio.parse_month("2024-04")
    )
    table = {
        row["cohort"]: (row["accounts"], row["mrr"], [(c["logos"], c["mrr"]) for c in row["cells"]])
        for row in rows
    }
    assert table == {
        "2023-12": (12, 2800, [(12, 2800), (11, 2900), (10, 2800), (11, 2850), (10, 2450)]),
        "2024-01": (2, 300, [(2, 300), (2, 300), (1, 100), (1, 100)]),
        "2024-02": (2, 300, [(2, 300), (2, 300), (2, 600)]),
        "2024-03": (2, 500, [(1, 500), (1, 500)]),
        "2024-04": (2, 300, [(2, 300)]),
    }
    nrr = {row["cohort"]: [c["nrr"] for c in row["cells"]] for row in rows}
    assert nrr["2023-12"] == [1.0, r(2900, 2800), 1.0, r(2850, 2800), 0.875]
    assert nrr["2024-01"] == [1.0, 1.0, r(1, 3), r(1, 3)]
    assert nrr["2024-02"] == [1.0, 1.0, 2.0]
    retention = {row["cohort"]: [c["logo_retention"] for c in row["cells"]] for row in rows}
    assert retention["2024-03"] == [0.5, 0.5]


def test_arrival_order_does_not_matter() -> None:
    changes = load_changes()
    batch = portfolio.fold_all(changes)
    shuffled = changes[:]
    random.Random(7).shuffle(shuffled)
    assert portfolio.fold_all(shuffled) == batch


def test_a_stale_crm_sync_does_not_revive_a_canceled_account() -> None:
    a04 = portfolio.fold_all(load_changes())["a04"]
    assert a04.mrr_at_end_of(portfolio.parse_month("2024-03")) == 0


@pytest.mark.parametrize(
    ("text", "period", "month"),
    [
        ("2024-03", Period.MONTH, "2024-03"),
        ("2024-03", Period.QUARTER, "2024-01"),
        ("2024-Q4", Period.QUARTER, "2024-10"),
        ("2024-q2", Period.QUARTER, "2024-04"),
    ],
)
def test_period_starts(text: str, period: Period, month: str) -> None:
    assert portfolio.month_label(portfolio.parse_period_start(text, period)) == month


@pytest.mark.parametrize(
    ("text", "period"),
    [
        ("2024-13", Period.MONTH),
        ("2024-00", Period.MONTH),
        ("2024-Q1", Period.MONTH),
        ("24-01", Period.MONTH),
        ("2024-Q5", Period.QUARTER),
        ("0000-01", Period.MONTH),
        ("2024-01-01", Period.QUARTER),
    ],
)
def test_bad_periods_are_refused(text: str, period: Period) -> None:
    with pytest.raises(ValueError, match="must be"):
        portfolio.parse_period_start(text, period)
