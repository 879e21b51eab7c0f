"""Portfolio figures (logo churn, GRR, NRR, MRR movements, cohorts) from billing facts.

Pure: no I/O, no clock. The store (``portfolio_store``) keeps each account's
MRR-relevant events and the monthly facts folded from them; the API and the
gauges hand those facts to :func:`report` and :func:`cohort_table`. A batch
recomputation from raw events (:func:`fold` over everything) and the live
figures therefore go through the same code, and formulas live in one place
(docs/portfolio.md explains them with a worked example).

Money is kept in integer cents so that sums and differences are exact; the
ratios are computed once from those integers. Months are integer indices
(``year * 12 + month - 1``) and every boundary is a calendar month in UTC.

Everything is a snapshot comparison: a period's figures compare each
account's MRR at the start of the period (the end of the month before) with
its MRR at the end, which is what the standard formulas define (``customers at
start who are not customers at end``). Movements inside the period net out per
account: an upgrade and a downgrade in the same month count as their sum.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

#: Billing events that state the subscription's MRR (``properties.mrr``).
SUBSCRIPTION_EVENTS = frozenset(
    {
        "subscription.created",
        "subscription.updated",
        "subscription.renewed",
        "subscription.reactivated",
    }
)
#: Ends the subscription: MRR becomes 0 whatever ``properties.mrr`` says (the MRR lost).
CANCEL_EVENT = "subscription.canceled"
#: Account facts: plan, segment, owner; their ``mrr`` counts only before any billing event.
ACCOUNT_EVENTS = frozenset({"account.created", "account.updated"})
RELEVANT_EVENTS = SUBSCRIPTION_EVENTS | {CANCEL_EVENT} | ACCOUNT_EVENTS


class Period(StrEnum):
    MONTH = "month"
    QUARTER = "quarter"


class GroupBy(StrEnum):
    COHORT = "cohort"
    SEGMENT = "segment"
    PLAN = "plan"
    CSM = "csm"
    TEAM = "team"


# ---------------------------------------------------------------- months


def month_of(moment: datetime) -> int:
    """The UTC calendar month of ``moment`` as an index (``year * 12 + month - 1``)."""
    utc = moment.astimezone(UTC)
    return utc.year * 12 + utc.month - 1


def month_label(month: int) -> str:
    return f"{month // 12:04d}-{month % 12 + 1:02d}"


def month_start(month: int) -> datetime:
    return datetime(month // 12, month % 12 + 1, 1, tzinfo=UTC)


def quarter_label(first_month: int) -> str:
    return f"{first_month // 12:04d}-Q{first_month % 12 // 3 + 1}"


_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER = re.compile(r"^(\d{4})-[Qq]([1-4])$")


def parse_month(text: str) -> int:
    """``YYYY-MM`` as a month index; ValueError says what is wrong."""
    match = _MONTH.match(text)
    if not match or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 1:
        raise ValueError("must be a month as YYYY-MM, e.g. 2024-03")
    return int(match.group(1)) * 12 + int(match.group(2)) - 1


def parse_period_start(text: str, period: Period) -> int:
    """The first month of the period named by ``text`` (``YYYY-MM``, or ``YYYY-Qn`` for quarters).

    A month given with ``period=quarter`` stands for the quarter containing it.
    """
    if period is Period.QUARTER:
        match = _QUARTER.match(text)
        if match:
            if int(match.group(1)) < 1:
                raise ValueError("must be a quarter as YYYY-Qn or a month as YYYY-MM")
            return int(match.group(1)) * 12 + (int(match.group(2)) - 1) * 3
        try:
            month = parse_month(text)
        except ValueError:
            raise ValueError("must be a quarter as YYYY-Qn or a month as YYYY-MM") from None
        return month - month % 3
    return parse_month(text)


def period_windows(period: Period, first: int, last: int) -> list[tuple[str, int, int]]:
    """(label, first month, last month) of every period from ``first`` to ``last`` (starts)."""
    step = 3 if period is Period.QUARTER else 1
    windows = []
    for start in range(first, last + 1, step):
        label = quarter_label(start) if step == 3 else month_label(start)
        windows.append((label, start, start + step - 1))
    return windows


# ---------------------------------------------------------------- facts


def to_cents(value: Any) -> int | None:
    """A finite, non-negative MRR in cents; None when the value is no number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if value != value or value in (float("inf"), float("-inf")):
        return None
    return max(0, round(value * 100))


@dataclass(frozen=True)
class Change:
    """One event that may move an account's MRR or its plan, segment or owner."""

    event_id: str
    account_id: str
    occurred_at: datetime
    name: str
    mrr_cents: int | None = None
    plan: str | None = None
    segment: str | None = None
    csm: str | None = None


def change_of(
    event_id: str,
    account_id: str,
    name: str,
    occurred_at: datetime,
    properties: Mapping[str, Any],
) -> Change | None:
    """The portfolio's view of an event, or None when the event does not concern it."""
    if name not in RELEVANT_EVENTS:
        return None

    def text(key: str) -> str | None:
        value = properties.get(key)
        return value if isinstance(value, str) and value else None

    return Change(
        event_id=event_id,
        account_id=account_id,
        occurred_at=occurred_at.astimezone(UTC),
        name=name,
        mrr_cents=to_cents(properties.get("mrr")),
        plan=text("plan"),
        segment=text("segment"),
        csm=text("csm"),
    )


@dataclass(frozen=True)
class MonthFact:
    """An account at the end of ``month`` (for months in which one of its events happened)."""

    month: int
    mrr_cents: int
    plan: str | None = None
    segment: str | None = None
    csm: str | None = None


@dataclass(frozen=True)
class AccountFacts:
    """One account's monthly facts, oldest first; months without events carry the last one."""

    account_id: str
    #: First month in which the account paid (MRR > 0): its cohort. None = never a customer.
    signup_month: int | None
    months: tuple[MonthFact, ...] = ()
    _index: tuple[int, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", tuple(fact.month for fact in self.months))

    def at_end_of(self, month: int) -> MonthFact | None:
        """The account as it stood at the end of ``month`` (None: nothing known yet)."""
        position = bisect.bisect_right(self._index, month)
        return self.months[position - 1] if position else None

    def mrr_at_end_of(self, month: int) -> int:
        fact = self.at_end_of(month)
        return fact.mrr_cents if fact is not None else 0

    @property
    def mrr_cents(self) -> int:
        """MRR now (after every event known)."""
        return self.months[-1].mrr_cents if self.months else 0


def fold(account_id: str, changes: Iterable[Change]) -> AccountFacts:
    """Fold one account's changes (any order, duplicates allowed) into its monthly facts.

    Events are applied in event-time order (ties by event id), so the result
    does not depend on arrival order: a billing topic lagging behind the
    account topic, a replay or a backfill all give the same facts.

    - ``subscription.created|updated|renewed|reactivated`` set MRR to
      ``properties.mrr`` when it is a number (otherwise MRR stays);
    - ``subscription.canceled`` sets MRR to 0;
    - ``account.created|updated`` set plan, segment and owner, and their MRR
      only while no billing event has been seen for the account (a customer
      imported from the CRM before billing is connected): once billing speaks,
      a stale CRM sync never revives a canceled subscription.
    """
    unique = {change.event_id: change for change in changes}
    ordered = sorted(unique.values(), key=lambda c: (c.occurred_at, c.event_id))
    mrr = 0
    plan = segment = csm = None
    billing_seen = False
    signup: int | None = None
    months: dict[int, MonthFact] = {}
    for change in ordered:
        plan = change.plan or plan
        segment = change.segment or segment
        csm = change.csm or csm
        if change.name == CANCEL_EVENT:
            billing_seen = True
            mrr = 0
        elif change.name in SUBSCRIPTION_EVENTS:
            billing_seen = True
            if change.mrr_cents is not None:
                mrr = change.mrr_cents
        elif not billing_seen and change.mrr_cents is not None:
            mrr = change.mrr_cents
        month = month_of(change.occurred_at)
        if mrr > 0 and signup is None:
            signup = month
        months[month] = MonthFact(month, mrr, plan, segment, csm)
    return AccountFacts(account_id, signup, tuple(months[m] for m in sorted(months)))


def fold_all(changes: Iterable[Change]) -> dict[str, AccountFacts]:
    """Batch recomputation: every account's facts from all the raw changes."""
    by_account: dict[str, list[Change]] = {}
    for change in changes:
        by_account.setdefault(change.account_id, []).append(change)
    return {account: fold(account, items) for account, items in by_account.items()}


# ---------------------------------------------------------------- figures


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 6) if denominator else None


@dataclass
class Figures:
    """One period's figures for a set of accounts; money in cents (see :meth:`as_dict`)."""

    accounts_start: int = 0
    accounts_end: int = 0
    new: int = 0
    churned: int = 0
    reactivated: int = 0
    mrr_start: int = 0
    mrr_end: int = 0
    new_mrr: int = 0
    reactivation_mrr: int = 0
    expansion_mrr: int = 0
    contraction_mrr: int = 0
    churned_mrr: int = 0

    def add(self, start: int, end: int, customer_before: bool) -> None:
        """One account: MRR at the start and at the end of the period (cents)."""
        if start > 0:
            self.accounts_start += 1
            self.mrr_start += start
            if end > 0:
                if end > start:
                    self.expansion_mrr += end - start
                else:
                    self.contraction_mrr += start - end
            else:
                self.churned += 1
                self.churned_mrr += start
        elif end > 0:
            if customer_before:
                self.reactivated += 1
                self.reactivation_mrr += end
            else:
                self.new += 1
                self.new_mrr += end
        if end > 0:
            self.accounts_end += 1
            self.mrr_end += end

    @property
    def logo_churn(self) -> float | None:
        return _ratio(self.churned, self.accounts_start)

    @property
    def grr(self) -> float | None:
        return _ratio(self.mrr_start - self.contraction_mrr - self.churned_mrr, self.mrr_start)

    @property
    def nrr(self) -> float | None:
        kept = self.mrr_start + self.expansion_mrr - self.contraction_mrr - self.churned_mrr
        return _ratio(kept, self.mrr_start)

    @property
    def net_revenue_churn(self) -> float | None:
        lost = self.churned_mrr + self.contraction_mrr - self.expansion_mrr
        return _ratio(lost, self.mrr_start)

    def as_dict(self) -> dict[str, Any]:
        """JSON shape: counts, money in currency units (2 decimals), ratios (6 decimals)."""
        return {
            "accounts_start": self.accounts_start,
            "accounts_end": self.accounts_end,
            "new": self.new,
            "churned": self.churned,
            "reactivated": self.reactivated,
            "mrr_start": self.mrr_start / 100,
            "mrr_end": self.mrr_end / 100,
            "new_mrr": self.new_mrr / 100,
            "reactivation_mrr": self.reactivation_mrr / 100,
            "expansion_mrr": self.expansion_mrr / 100,
            "contraction_mrr": self.contraction_mrr / 100,
            "churned_mrr": self.churned_mrr / 100,
            "logo_churn": self.logo_churn,
            "grr": self.grr,
            "nrr": self.nrr,
            "net_revenue_churn": self.net_revenue_churn,
        }


#: The group of an account in one period: (account, fact at start, fact at end) -> key.
GroupKey = Callable[[AccountFacts, MonthFact | None, MonthFact | None], str | None]


def group_key(group_by: GroupBy, owner_group: Mapping[str, str | None] | None = None) -> GroupKey:
    """How ``group_by`` assigns an account to a group within a period.

    - ``cohort``: the signup month (``YYYY-MM``), fixed for life;
    - ``plan`` / ``segment``: as at the start of the period for the accounts that
      were customers then (their movements count where they started), otherwise as
      at its end (new and reactivated accounts);
    - ``csm`` / ``team``: the account's owner now, from ``owner_group`` (the
      caller's current owner, or the owner's team): a book of business is judged
      as it is assigned today.
    """

    def key(account: AccountFacts, start: MonthFact | None, end: MonthFact | None) -> str | None:
        if group_by is GroupBy.COHORT:
            return month_label(account.signup_month) if account.signup_month is not None else None
        if group_by in (GroupBy.CSM, GroupBy.TEAM):
            return (owner_group or {}).get(account.account_id)
        fact = start if start is not None and start.mrr_cents > 0 else end
        if fact is None:
            return None
        return fact.plan if group_by is GroupBy.PLAN else fact.segment

    return key


@dataclass
class PeriodReport:
    label: str
    first_month: int
    last_month: int
    totals: Figures
    groups: dict[str | None, Figures]

    def as_dict(self) -> dict[str, Any]:
        ordered = sorted(self.groups.items(), key=lambda item: (item[0] is None, item[0] or ""))
        return {
            "period": self.label,
            "start": month_start(self.first_month).isoformat().replace("+00:00", "Z"),
            "end": month_start(self.last_month + 1).isoformat().replace("+00:00", "Z"),
            **self.totals.as_dict(),
            "groups": [{"key": key, **figures.as_dict()} for key, figures in ordered],
        }


def figures_for(
    accounts: Iterable[AccountFacts],
    first_month: int,
    last_month: int,
    key: GroupKey | None = None,
) -> tuple[Figures, dict[str | None, Figures]]:
    """Totals and per-group figures of the period of months ``first_month..last_month``."""
    totals = Figures()
    groups: dict[str | None, Figures] = {}
    for account in accounts:
        start_fact = account.at_end_of(first_month - 1)
        end_fact = account.at_end_of(last_month)
        start = start_fact.mrr_cents if start_fact is not None else 0
        end = end_fact.mrr_cents if end_fact is not None else 0
        if start == 0 and end == 0:
            continue
        before = account.signup_month is not None and account.signup_month < first_month
        totals.add(start, end, before)
        if key is not None:
            groups.setdefault(key(account, start_fact, end_fact), Figures()).add(start, end, before)
    return totals, groups


def report(
    accounts: Sequence[AccountFacts],
    period: Period,
    first: int,
    last: int,
    key: GroupKey | None = None,
) -> list[PeriodReport]:
    """Every period from the one starting at ``first`` to the one starting at ``last``."""
    reports = []
    for label, start, end in period_windows(period, first, last):
        totals, groups = figures_for(accounts, start, end, key)
        reports.append(PeriodReport(label, start, end, totals, groups))
    return reports


# ---------------------------------------------------------------- cohorts


def cohort_table(
    accounts: Iterable[AccountFacts], first_cohort: int, last_month: int
) -> list[dict[str, Any]]:
    """The classic triangle: signup month x months since signup -> logos and NRR.

    A cohort is every account whose first paid month is ``c``. Its base is its
    MRR at the end of month ``c``; cell ``k`` counts the cohort's accounts that
    are customers at the end of month ``c + k`` (reactivated ones included) and
    their MRR, with ``nrr = MRR(c + k) / MRR(c)``. Cohorts from
    ``first_cohort`` to ``last_month``, cells up to ``last_month``.
    """
    members: dict[int, list[AccountFacts]] = {}
    for account in accounts:
        c = account.signup_month
        if c is not None and first_cohort <= c <= last_month:
            members.setdefault(c, []).append(account)
    rows = []
    for cohort in sorted(members):
        cohort_accounts = members[cohort]
        base = sum(a.mrr_at_end_of(cohort) for a in cohort_accounts)
        cells = []
        for k in range(last_month - cohort + 1):
            mrrs = [a.mrr_at_end_of(cohort + k) for a in cohort_accounts]
            logos = sum(1 for m in mrrs if m > 0)
            mrr = sum(mrrs)
            cells.append(
                {
                    "months_since_signup": k,
                    "logos": logos,
                    "logo_retention": _ratio(logos, len(cohort_accounts)),
                    "mrr": mrr / 100,
                    "nrr": _ratio(mrr, base),
                }
            )
        rows.append(
            {
                "cohort": month_label(cohort),
                "accounts": len(cohort_accounts),
                "mrr": base / 100,
                "cells": cells,
            }
        )
    return rows
