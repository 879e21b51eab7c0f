"""A realistic, deterministic SaaS event generator with latent churn drivers.

Why a simulator at all: real logs with tickets, invoices, surveys *and* known
cancellation reasons are not publicly available. The simulator gives demos,
tests and benchmarks every event type the scorer understands, plus a ground
truth (who cancels, when, and why) to measure how early the score notices.

Model, in short (all randomness comes from one ``random.Random`` per account,
seeded from ``(seed, account index)``, so a seed always yields the same file):

- Accounts have a size (seats, log-normal), a plan and MRR derived from it, a
  CSM, a billing day and an annual renewal date. Some exist at the start (a CRM
  sync ``account.updated``), the others sign up during the window
  (``account.created`` + ``subscription.created``) and ramp up over ~3 weeks.
- Usage: each active seat logs in on a day with a probability shaped by a
  weekly seasonality (weekends are quiet) and then uses a few features.
- Tickets open at a rate that grows with size; priorities low..urgent;
  resolution times are log-normal per priority; some resolutions are followed
  by a CSAT survey. NPS surveys arrive about once a quarter.
- Billing: a monthly invoice; payments occasionally fail and are retried.
- Renewals at the renewal date (``subscription.renewed``); plan changes
  (upgrades for growing accounts, downgrades as a churn symptom).
- A churner has one latent *driver* (disengagement, support friction, payment
  trouble, champion loss, price/downgrade). From ``decline_start`` (35-120 days
  before the cancellation) the driver shapes the signals progressively, then
  ``subscription.canceled`` is emitted and the account goes silent.
- Retained accounts sometimes have a temporary scare (a dip that recovers), so
  the task is not trivially separable.

Events are yielded in event-time order (day by day, sorted inside a day).

Identifiers (``event_id``, ticket and invoice ids) carry the run's tag, made of
the seed and the window (start, days, churn rate): the same run always yields
the same ids, so re-sending a file is deduplicated, while two different runs
never share an id, so sending a second file adds its events rather than having
ingest drop them as duplicates of the first.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from healthstream.contract import PRIORITIES

DRIVERS = ("disengagement", "support_friction", "payment_trouble", "champion_loss", "downgrade")
PLANS = (("starter", 25.0), ("growth", 40.0), ("enterprise", 60.0))
PRIORITY_WEIGHTS = (0.35, 0.45, 0.15, 0.05)
# Median resolution hours per priority for a normal account.
RESOLUTION_HOURS = {"low": 60.0, "normal": 30.0, "high": 10.0, "urgent": 4.0}
# Monday..Sunday activity factors: the weekly seasonality of B2B software.
WEEKDAY_FACTOR = (1.0, 1.05, 1.05, 1.0, 0.9, 0.22, 0.18)
FEATURES = (
    "dashboard",
    "reports",
    "export",
    "alerts",
    "integrations",
    "api",
    "sharing",
    "automation",
    "admin",
    "search",
    "billing_portal",
    "mobile",
)
CSMS = ("ana@example.com", "ben@example.com", "chen@example.com", "dita@example.com")
DAY = 86400


_CLOCK: list[str] = []


def _clock() -> list[str]:
    """All 86,400 "HH:MM:SSZ" strings, built once: formatting is the generator's hot spot."""
    if not _CLOCK:
        _CLOCK.extend(
            f"{h:02d}:{m:02d}:{s:02d}Z" for h in range(24) for m in range(60) for s in range(60)
        )
    return _CLOCK


@dataclass
class Truth:
    """What really happened to one account: the answer key for evaluation."""

    account_id: str
    plan: str
    seats: int
    churned: bool = False
    cancel_date: str | None = None
    driver: str | None = None
    decline_start: str | None = None
    signup_date: str | None = None
    scare: bool = False

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Account:
    index: int
    account_id: str
    rng: random.Random
    seats: int
    plan: str
    mrr: float
    csm: str
    adoption: float
    breadth: tuple[str, ...]
    billing_dom: int
    signup_day: int
    renewal_day: int
    pre_existing: bool
    cancel_day: int | None
    driver: str | None
    decline_start: int | None
    scare_day: int | None
    truth: Truth
    tag: str = ""
    seq: int = 0
    open_tickets: int = 0
    pending: list[tuple[float, int, dict[str, Any]]] = field(default_factory=list)
    downgraded: bool = False
    canceled: bool = False

    def next_id(self) -> str:
        self.seq += 1
        return f"{self.account_id}-{self.tag}-{self.seq}"


def run_tag(seed: int, start: date, days: int, churn_rate: float) -> str:
    """``s<seed>-<6 hex>``: readable seed, plus a digest of the window it simulates."""
    window = f"{start.isoformat()}|{days}|{churn_rate!r}".encode()
    return f"s{seed}-{hashlib.blake2b(window, digest_size=3).hexdigest()}"


def _plan_for(seats: int) -> tuple[str, float]:
    if seats < 10:
        return PLANS[0]
    if seats < 50:
        return PLANS[1]
    return PLANS[2]


def _poisson(rng: random.Random, lam: float) -> int:
    """Knuth's method: fine for the small rates used here and cheap."""
    if lam <= 0:
        return 0
    limit = math.exp(-lam)
    k = 0
    p = rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


class Simulator:
    """Generate ``days`` days of events for ``accounts`` accounts from ``seed``.

    ``churn_rate`` is the share of accounts that carry a churn driver; the
    cancellation date is spread so that roughly that share cancels within the
    window (some cancel just after it and are not counted as churned).
    """

    def __init__(
        self,
        accounts: int,
        days: int,
        seed: int = 0,
        start: date = date(2024, 1, 1),
        churn_rate: float = 0.25,
    ) -> None:
        if accounts < 1:
            raise ValueError("accounts must be at least 1")
        if days < 1:
            raise ValueError("days must be at least 1")
        if not 0.0 <= churn_rate <= 1.0:
            raise ValueError("churn_rate must be between 0 and 1")
        self.n_accounts = accounts
        self.days = days
        self.seed = seed
        self.start = start
        self.churn_rate = churn_rate
        self.start_ts = int(datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp())
        self._prefixes: dict[int, str] = {}
        self.tag = run_tag(seed, start, days, churn_rate)
        self.accounts = [self._make_account(i) for i in range(accounts)]

    # -- account set-up -------------------------------------------------------------
    def _make_account(self, index: int) -> _Account:
        rng = random.Random(self.seed * 1_000_003 + index)
        account_id = f"acct-{index + 1:06d}"
        seats = max(1, min(500, round(rng.lognormvariate(math.log(8), 1.0))))
        plan, per_seat = _plan_for(seats)
        pre_existing = rng.random() < 0.7
        signup_day = 0 if pre_existing else rng.randrange(0, max(1, self.days * 2 // 3))
        renewal_day = rng.randrange(1, 366) if pre_existing else signup_day + 365
        cancel_day = driver = decline_start = None
        if rng.random() < self.churn_rate:
            driver = rng.choice(DRIVERS)
            earliest = signup_day + 60
            cancel_day = rng.randrange(earliest, max(earliest + 1, self.days + 45))
            decline_start = max(signup_day + 20, cancel_day - rng.randrange(35, 121))
        scare_day = None
        if cancel_day is None and rng.random() < 0.15:
            scare_day = rng.randrange(0, self.days)
        truth = Truth(account_id=account_id, plan=plan, seats=seats, scare=scare_day is not None)
        if not pre_existing:
            truth.signup_date = self._date(signup_day).isoformat()
        if cancel_day is not None and cancel_day < self.days:
            truth.churned = True
            truth.cancel_date = self._date(cancel_day).isoformat()
            truth.driver = driver
            truth.decline_start = self._date(decline_start or 0).isoformat()
        return _Account(
            index=index,
            account_id=account_id,
            rng=rng,
            seats=seats,
            plan=plan,
            mrr=round(seats * per_seat, 2),
            csm=CSMS[index % len(CSMS)],
            adoption=rng.uniform(0.45, 0.9),
            breadth=tuple(rng.sample(FEATURES, rng.randrange(3, len(FEATURES) + 1))),
            billing_dom=rng.randrange(0, 28),
            signup_day=signup_day,
            renewal_day=renewal_day,
            pre_existing=pre_existing,
            cancel_day=cancel_day,
            driver=driver,
            decline_start=decline_start,
            scare_day=scare_day,
            truth=truth,
            tag=self.tag,
        )

    def _date(self, day: int) -> date:
        return self.start + timedelta(days=day)

    def truth(self) -> dict[str, Any]:
        """The ground truth of the whole run (JSON-ready)."""
        accounts = [a.truth.as_dict() for a in self.accounts]
        churned = sum(1 for a in accounts if a["churned"])
        return {
            "seed": self.seed,
            "run_tag": self.tag,
            "accounts": self.n_accounts,
            "days": self.days,
            "start": self.start.isoformat(),
            "end": self._date(self.days).isoformat(),
            "churned": churned,
            "churn_rate": churned / self.n_accounts,
            "truth": accounts,
        }

    # -- event helpers --------------------------------------------------------------
    def _event(
        self, acct: _Account, ts: float, etype: str, name: str, props: dict[str, Any]
    ) -> dict[str, Any]:
        stamp = self._stamp(int(ts))
        return {
            "event_id": acct.next_id(),
            "account_id": acct.account_id,
            "type": etype,
            "name": name,
            "occurred_at": stamp,
            "source": "simulator",
            "properties": props,
        }

    def _stamp(self, ts: int) -> str:
        """RFC 3339 UTC timestamp; a cached date prefix makes this ~10x cheaper than strftime."""
        day, secs = divmod(ts - self.start_ts, DAY)
        prefix = self._prefixes.get(day)
        if prefix is None:
            prefix = (self.start + timedelta(days=day)).isoformat() + "T"
            self._prefixes[day] = prefix
        return prefix + _clock()[secs]

    def _schedule(
        self, acct: _Account, ts: float, etype: str, name: str, props: dict[str, Any]
    ) -> None:
        heapq.heappush(acct.pending, (ts, acct.seq, {"t": etype, "n": name, "p": props}))
        acct.seq += 1

    def _progress(self, acct: _Account, day: int) -> float:
        """0 before the decline starts, rising to 1 at the cancellation."""
        if acct.decline_start is None or acct.cancel_day is None or day < acct.decline_start:
            return 0.0
        span = max(1, acct.cancel_day - acct.decline_start)
        return min(1.0, (day - acct.decline_start) / span)

    # -- one account-day ------------------------------------------------------------
    def _account_day(self, acct: _Account, day: int) -> list[tuple[float, dict[str, Any]]]:
        rng = acct.rng
        day_ts = self.start_ts + day * DAY
        out: list[tuple[float, dict[str, Any]]] = []

        def emit(ts: float, etype: str, name: str, props: dict[str, Any]) -> None:
            out.append((ts, self._event(acct, ts, etype, name, props)))

        random_ = rng.random

        def work_time() -> float:
            return day_ts + 25200 + int(random_() * 46800)  # 07:00-20:00

        if day < acct.signup_day or acct.canceled:
            return out
        renewal = self._date(acct.renewal_day).isoformat()
        if day == acct.signup_day:
            base = {"plan": acct.plan, "mrr": acct.mrr, "csm": acct.csm, "renewal_date": renewal}
            ts: float = day_ts + 6 * 3600 + rng.randrange(0, 3600)
            if acct.pre_existing:
                emit(ts, "account", "account.updated", {**base, "seats": acct.seats})
            else:
                emit(ts, "account", "account.created", {**base, "seats": acct.seats})
                emit(ts + 60, "billing", "subscription.created", {**base, "currency": "USD"})

        progress = self._progress(acct, day)
        driver = acct.driver if progress > 0 else None
        scare = acct.scare_day is not None and 0 <= day - acct.scare_day < 21

        # Cancellation: the last event of a churner.
        if acct.cancel_day is not None and day == acct.cancel_day:
            emit(
                work_time(),
                "billing",
                "subscription.canceled",
                {"plan": acct.plan, "mrr": acct.mrr, "currency": "USD"},
            )
            acct.canceled = True
            acct.pending.clear()
            return out

        # -- usage ---------------------------------------------------------------
        weekday = self._date(day).weekday()
        ramp = min(1.0, 0.25 + (day - acct.signup_day) / 21) if not acct.pre_existing else 1.0
        usage = 1.0
        if driver == "disengagement":
            usage = 1.0 - 0.85 * progress
        elif driver == "support_friction":
            usage = 1.0 - 0.5 * progress
        elif driver == "payment_trouble":
            usage = 1.0 - 0.35 * progress
        elif driver == "champion_loss":
            usage = 0.35 if progress > 0.25 else 1.0 - progress
        elif driver == "downgrade":
            usage = 1.0 - 0.55 * progress
        if scare:
            usage *= 0.55
        p_login = 0.72 * WEEKDAY_FACTOR[weekday] * usage * ramp
        active_seats = max(1, round(acct.seats * acct.adoption))
        breadth = acct.breadth
        if driver in ("disengagement", "champion_loss") and progress > 0.3:
            breadth = breadth[: max(1, len(breadth) // 3)]
        n_breadth = len(breadth)
        for user in range(active_seats):
            if random_() >= p_login:
                continue
            uid = f"u{user + 1}"
            ts = work_time()
            emit(ts, "usage", "login", {"user_id": uid})
            for _ in range(_poisson(rng, 2.0)):
                ts += 30 + int(random_() * 1770)
                feature = breadth[int(random_() * n_breadth)]
                emit(ts, "usage", "feature.used", {"user_id": uid, "feature": feature})

        # -- tickets -------------------------------------------------------------
        rate = 0.03 + 0.004 * acct.seats
        slow = 1.0
        if driver == "support_friction":
            rate *= 1.0 + 4.0 * progress
            slow = 1.0 + 5.0 * progress
        if scare:
            rate *= 2.0
        if weekday >= 5:
            rate *= 0.3
        for _ in range(_poisson(rng, min(rate, 5.0))):
            weights = PRIORITY_WEIGHTS
            if driver == "support_friction":
                weights = (0.1, 0.35, 0.35, 0.2)
            priority = rng.choices(PRIORITIES, weights)[0]
            ticket_id = f"T-{acct.account_id}-{acct.tag}-{acct.seq}"
            ts = work_time()
            emit(ts, "ticket", "ticket.opened", {"ticket_id": ticket_id, "priority": priority})
            acct.open_tickets += 1
            hours = rng.lognormvariate(math.log(RESOLUTION_HOURS[priority] * slow), 0.8)
            if rng.random() < 0.3:
                self._schedule(
                    acct,
                    ts + hours * 1800,
                    "ticket",
                    "ticket.updated",
                    {"ticket_id": ticket_id, "priority": priority, "status": "pending"},
                )
            resolved = ts + hours * 3600
            self._schedule(
                acct,
                resolved,
                "ticket",
                "ticket.resolved",
                {"ticket_id": ticket_id, "priority": priority, "status": "solved"},
            )
            if rng.random() < 0.45:
                if driver == "support_friction" and progress > 0.2:
                    score = rng.choice((1, 1, 2, 2, 3))
                else:
                    score = rng.choice((3, 4, 4, 5, 5, 5))
                self._schedule(
                    acct,
                    resolved + rng.randrange(600, 6 * 3600),
                    "feedback",
                    "csat.response",
                    {"score": score, "ticket_id": ticket_id},
                )

        # -- billing -------------------------------------------------------------
        if day > acct.signup_day and (day - acct.signup_day) % 30 == acct.billing_dom % 30:
            p_fail = 0.02
            if driver == "payment_trouble":
                p_fail = 0.3 + 0.6 * progress
            ts = day_ts + 3 * 3600 + rng.randrange(0, 3600)
            props = {
                "amount": acct.mrr,
                "currency": "USD",
                "invoice_id": f"I-{acct.tag}-{acct.seq}",
            }
            if rng.random() < p_fail:
                emit(ts, "billing", "payment.failed", {**props, "status": "past_due"})
                retry_ok = rng.random() < (0.85 if driver != "payment_trouble" else 0.3)
                name = "invoice.paid" if retry_ok else "payment.failed"
                status = "paid" if retry_ok else "past_due"
                self._schedule(acct, ts + 3 * DAY, "billing", name, {**props, "status": status})
            else:
                emit(ts, "billing", "invoice.paid", {**props, "status": "paid"})

        # -- plan changes ----------------------------------------------------------
        if driver == "downgrade" and progress > 0.3 and not acct.downgraded:
            acct.downgraded = True
            old = acct.mrr
            acct.mrr = round(acct.mrr * 0.5, 2)
            lower = PLANS[max(0, [p for p, _ in PLANS].index(acct.plan) - 1)][0]
            emit(
                work_time(),
                "billing",
                "subscription.updated",
                {"plan": lower, "mrr": acct.mrr, "previous_mrr": old, "currency": "USD"},
            )
            acct.plan = lower
        elif driver is None and rng.random() < 0.0015:
            old = acct.mrr
            acct.seats += max(1, acct.seats // 5)
            acct.mrr = round(acct.mrr * 1.2, 2)
            emit(
                work_time(),
                "billing",
                "subscription.updated",
                {"plan": acct.plan, "mrr": acct.mrr, "previous_mrr": old, "currency": "USD"},
            )

        # -- NPS about once a quarter ------------------------------------------------
        if rng.random() < 1 / 90:
            if driver in ("champion_loss", "downgrade", "support_friction") and progress > 0.15:
                score = rng.randrange(0, 6)
            elif driver is not None:
                score = rng.randrange(3, 9)
            elif scare:
                score = rng.randrange(4, 9)
            else:
                score = rng.choice((6, 7, 8, 8, 9, 9, 9, 10, 10))
            emit(work_time(), "feedback", "nps.response", {"score": score})

        # -- renewal ---------------------------------------------------------------
        renews = acct.cancel_day is None or (
            acct.decline_start is not None and day < acct.decline_start
        )
        if day == acct.renewal_day and renews:
            acct.renewal_day += 365
            emit(
                day_ts + 2 * 3600,
                "billing",
                "subscription.renewed",
                {
                    "plan": acct.plan,
                    "mrr": acct.mrr,
                    "currency": "USD",
                    "renewal_date": self._date(acct.renewal_day).isoformat(),
                },
            )
        self._drain_pending(acct, day_ts + DAY, emit)
        return out

    @staticmethod
    def _drain_pending(acct: _Account, end_ts: float, emit: Any) -> None:
        """Emit scheduled events (resolutions, retries, surveys) that fall before ``end_ts``.

        Done after the day's own events so that something scheduled for later the
        same day is not emitted a day late (and out of order).
        """
        while acct.pending and acct.pending[0][0] < end_ts:
            ts, _, spec = heapq.heappop(acct.pending)
            if spec["n"] == "ticket.resolved":
                acct.open_tickets = max(0, acct.open_tickets - 1)
            emit(ts, spec["t"], spec["n"], spec["p"])

    def events(self) -> Iterator[dict[str, Any]]:
        """All events of all accounts in event-time order."""
        for day in range(self.days):
            batch: list[tuple[float, int, dict[str, Any]]] = []
            for acct in self.accounts:
                for n, (ts, event) in enumerate(self._account_day(acct, day)):
                    batch.append((ts, acct.index * 1_000_000 + n, event))
            batch.sort(key=lambda item: (item[0], item[1]))
            for _, _, event in batch:
                yield event


def generate(
    accounts: int,
    days: int,
    seed: int = 0,
    start: date = date(2024, 1, 1),
    churn_rate: float = 0.25,
) -> Iterator[dict[str, Any]]:
    """Yield canonical event dicts in time order; deterministic for a seed.

    The benchmarks call this directly; use :class:`Simulator` to get the truth too.
    """
    return Simulator(accounts, days, seed=seed, start=start, churn_rate=churn_rate).events()
