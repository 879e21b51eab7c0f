"""The simulator: deterministic, time-ordered, schema-valid, and its churn is visible early."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from healthstream.cli import main
from schemas import Event
from simulator import Simulator, generate


def _ts(event: dict) -> float:
    return datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00")).timestamp()


@pytest.fixture(scope="module")
def run() -> tuple[Simulator, list[dict]]:
    sim = Simulator(60, 150, seed=11)
    return sim, list(sim.events())


def test_same_seed_same_events_other_seed_differs() -> None:
    first = [orjson.dumps(e) for e in itertools.islice(generate(20, 40, 5), 3000)]
    again = [orjson.dumps(e) for e in itertools.islice(generate(20, 40, 5), 3000)]
    other = [orjson.dumps(e) for e in itertools.islice(generate(20, 40, 6), 3000)]
    assert first == again
    assert first != other


def test_events_are_time_ordered_unique_and_valid(run: tuple[Simulator, list[dict]]) -> None:
    _, events = run
    stamps = [_ts(e) for e in events]
    assert stamps == sorted(stamps)
    assert len({e["event_id"] for e in events}) == len(events)
    for event in events:
        Event.model_validate(event)  # raises on any contract violation


def test_every_event_type_and_name_appears(run: tuple[Simulator, list[dict]]) -> None:
    _, events = run
    names = Counter(e["name"] for e in events)
    for name in (
        "login",
        "feature.used",
        "ticket.opened",
        "ticket.resolved",
        "invoice.paid",
        "payment.failed",
        "subscription.updated",
        "subscription.renewed",
        "subscription.canceled",
        "nps.response",
        "csat.response",
        "account.created",
        "account.updated",
    ):
        assert names[name] > 0, name
    priorities = {e["properties"]["priority"] for e in events if e["name"] == "ticket.opened"}
    assert priorities == {"low", "normal", "high", "urgent"}


def test_weekly_seasonality(run: tuple[Simulator, list[dict]]) -> None:
    _, events = run
    by_weekday = Counter(
        datetime.fromtimestamp(_ts(e), UTC).weekday() for e in events if e["name"] == "login"
    )
    weekday_mean = sum(by_weekday[d] for d in range(5)) / 5
    weekend_mean = (by_weekday[5] + by_weekday[6]) / 2
    assert weekend_mean < 0.4 * weekday_mean


def test_truth_matches_the_events(run: tuple[Simulator, list[dict]]) -> None:
    sim, events = run
    truth = sim.truth()
    cancels = {
        e["account_id"]: e["occurred_at"][:10]
        for e in events
        if e["name"] == "subscription.canceled"
    }
    churned = {t["account_id"]: t for t in truth["truth"] if t["churned"]}
    assert churned, "expected some churners in 150 days"
    assert set(cancels) == set(churned)
    last_seen: dict[str, str] = {}
    for event in events:
        last_seen[event["account_id"]] = event["occurred_at"]
    for account_id, row in churned.items():
        assert cancels[account_id] == row["cancel_date"]
        assert row["driver"] in (
            "disengagement",
            "support_friction",
            "payment_trouble",
            "champion_loss",
            "downgrade",
        )
        # Nothing happens after the cancellation.
        assert last_seen[account_id][:10] == row["cancel_date"]


def test_churners_fade_before_they_cancel() -> None:
    """Latent drivers must show in the signals: usage in the 3 weeks before the
    cancellation is well below the same account's usage 3-4 months earlier."""
    sim = Simulator(150, 240, seed=3, churn_rate=0.5)
    start = datetime(2024, 1, 1, tzinfo=UTC).timestamp()
    daily: dict[str, Counter[int]] = defaultdict(Counter)
    for event in sim.events():
        if event["type"] == "usage":
            daily[event["account_id"]][int((_ts(event) - start) // 86400)] += 1
    ratios = []
    for row in sim.truth()["truth"]:
        if not row["churned"] or row["driver"] == "payment_trouble":
            continue
        cancel = (date.fromisoformat(row["cancel_date"]) - date(2024, 1, 1)).days
        decline = (date.fromisoformat(row["decline_start"]) - date(2024, 1, 1)).days
        if decline < 28:
            continue
        before = sum(daily[row["account_id"]][d] for d in range(decline - 28, decline))
        late = sum(daily[row["account_id"]][d] for d in range(cancel - 21, cancel)) * 28 / 21
        if before > 0:
            ratios.append(late / before)
    assert len(ratios) >= 10
    ratios.sort()
    assert ratios[len(ratios) // 2] < 0.6


def test_bad_parameters_are_rejected() -> None:
    with pytest.raises(ValueError, match="accounts"):
        Simulator(0, 10)
    with pytest.raises(ValueError, match="churn_rate"):
        Simulator(5, 10, churn_rate=1.5)


def _ids(events: list[dict]) -> set[str]:
    ids = {e["event_id"] for e in events}
    ids |= {e["properties"]["ticket_id"] for e in events if "ticket_id" in e["properties"]}
    ids |= {e["properties"]["invoice_id"] for e in events if "invoice_id" in e["properties"]}
    return ids


def test_two_seeds_or_two_windows_never_share_an_id() -> None:
    seed_3 = list(generate(15, 40, 3))
    seed_7 = list(generate(15, 40, 7))
    later = list(generate(15, 40, 3, start=date(2024, 3, 1)))
    # Same accounts in all three runs: only the ids' run tag keeps them apart.
    assert {e["account_id"] for e in seed_3} == {e["account_id"] for e in seed_7}
    assert _ids(seed_3).isdisjoint(_ids(seed_7))
    assert _ids(seed_3).isdisjoint(_ids(later))
    assert [e["event_id"] for e in generate(15, 40, 3)] == [e["event_id"] for e in seed_3]


def test_simulate_defaults_to_a_history_ending_now(tmp_path: Path) -> None:
    out = tmp_path / "events.ndjson"
    before = datetime.now(UTC).date()
    assert main(["simulate", "--accounts", "20", "--days", "20", "--quiet", "--out", str(out)]) == 0
    after = datetime.now(UTC).date()
    stamps = sorted(orjson.loads(line)["occurred_at"] for line in out.read_bytes().splitlines())
    first, last = (
        datetime.fromisoformat(s.replace("Z", "+00:00")) for s in (stamps[0], stamps[-1])
    )
    assert last < datetime.now(UTC)
    # Day 0 is 20 days before "today" (as simulate saw it), the last day is yesterday.
    assert first.date() in {before - timedelta(days=20), after - timedelta(days=20)}
    assert last.date() in {before - timedelta(days=1), after - timedelta(days=1)}
