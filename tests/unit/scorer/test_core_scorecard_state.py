"""Scorecard file validation, bounded state and its round-trip, and the JSON contracts."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from core_helpers import DAY, T0, Driver, ev, usage
from pydantic import ValidationError

from schemas import HealthUpdate, RiskAlert
from services.scorer.core import AccountState, Scorecard, TrainingExample, load_scorecard
from services.scorer.core.events import EVENT_TYPES
from services.scorer.core.scorecard import DEFAULT_PATH
from services.scorer.core.state import _TAIL_AT


def test_shipped_scorecard_is_the_documented_default() -> None:
    assert DEFAULT_PATH.name == "scorecard.toml"
    assert load_scorecard(None) == Scorecard()


def test_scorecard_file_changes_scoring_without_code(tmp_path: Path) -> None:
    path = tmp_path / "card.toml"
    path.write_text('version = "strict"\n[bands]\nred_below = 60\ngreen_from = 90\n')
    card = load_scorecard(path)
    assert card.version == "strict"
    assert card.bands.red_below == 60
    assert card.weights == Scorecard().weights


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("[bands]\nred_below = 80\ngreen_from = 70\n", "bands"),
        ("[weights]\nusage = -1\n", "weights.usage"),
        ("[rules.inactivity]\nseverity = 'loud'\n", "rules.inactivity.severity"),
        ("[sla_hours]\nurgnet = 4\n", "sla_hours.urgnet"),
    ],
)
def test_bad_scorecard_names_the_field(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "card.toml"
    path.write_text(text)
    with pytest.raises(ValidationError) as info:
        load_scorecard(path)
    locations = [".".join(str(p) for p in err["loc"]) for err in info.value.errors()]
    assert any(loc.startswith(field) for loc in locations), locations


def _busy_account() -> Driver:
    """Everything at its cap: many users, features, tickets, failures, snapshots, alerts."""
    d = Driver()
    d.send(
        ev(
            "account",
            "account.created",
            0,
            csm="csm-" + "x" * 40,
            plan="enterprise-annual",
            mrr=123456.78,
            renewal_date="2025-04-30",
            seats=250,
        )
    )
    for day in range(0, 70):
        for k in range(40):
            d.send(
                usage(
                    day + k / 100,
                    user_id=f"user-{day}-{k}@example.com",
                    feature=f"feature-{k}-{day}",
                )
            )
        if day % 3 == 0:
            d.send(
                ev(
                    "ticket",
                    "ticket.opened",
                    day + 0.5,
                    ticket_id=f"T-{day}-000000",
                    priority="urgent",
                )
            )
        if day % 5 == 0:
            d.send(ev("billing", "payment.failed", day + 0.6, amount=99999.99, currency="USD"))
            d.send(ev("feedback", "nps.response", day + 0.7, score=3))
            d.send(
                ev(
                    "billing",
                    "subscription.updated",
                    day + 0.8,
                    mrr=1000.5 + day,
                    status="past_due",
                )
            )
    return d


def test_busy_account_state_is_bounded_and_small() -> None:
    state = _busy_account().state
    assert state is not None
    raw = state.to_bytes()
    assert len(raw) <= 2048, len(raw)
    assert len(state.users) <= 16 and len(state.features_used) <= 16
    assert len(state.tickets) <= 8 and len(state.failures) <= 6 and len(state.seen) <= 16
    assert len(state.pending) <= Scorecard().labels.max_pending


def test_state_round_trip_is_exact_and_scores_the_same() -> None:
    d = _busy_account()
    state = d.state
    assert state is not None
    copy = AccountState.from_bytes(state.to_bytes())
    assert copy.to_bytes() == state.to_bytes()
    now = state.watermark + DAY
    assert d.engine.score(copy, now) == d.engine.score(state, now)
    # ...and keeps evolving identically.
    nxt = usage(71, user_id="late-comer")
    a = d.engine.apply(copy, nxt)
    b = d.engine.apply(state, nxt)
    assert a.state.to_bytes() == b.state.to_bytes()
    assert a.health == b.health


def test_dedupe_floors_are_kept_per_event_type() -> None:
    state = _busy_account().state
    assert state is not None
    floors = dict(zip(EVENT_TYPES, state.seen_floors, strict=True))
    # the one account event left the ring on day 0; usage keeps leaving it to the end
    assert floors["usage"] > floors["billing"] > floors["account"] > 0
    assert AccountState.from_bytes(state.to_bytes()).seen_floors == state.seen_floors


def test_state_with_one_floor_for_all_types_still_loads() -> None:
    """States written before floors were per type hold one absolute floor there."""
    state = _busy_account().state
    assert state is not None
    data = orjson.loads(state.to_bytes())
    data[_TAIL_AT] = 1_700_000_000
    old = AccountState.from_bytes(orjson.dumps(data))
    assert old.seen_floors == [1_700_000_000] * len(EVENT_TYPES)
    assert old.events == state.events and old.published_band == state.published_band


def test_unknown_state_format_is_refused() -> None:
    with pytest.raises(ValueError, match="format"):
        AccountState.from_bytes(b"[99]")
    with pytest.raises(ValueError, match="format"):
        AccountState.published_band_of(b"[99]")


@pytest.mark.parametrize("band", ["green", "yellow", "red", None])
def test_published_band_is_read_without_decoding_the_state(band: str | None) -> None:
    state = _busy_account().state
    assert state is not None
    state.published_band = band
    raw = state.to_bytes()
    assert AccountState.from_bytes(raw).published_band == band
    assert AccountState.published_band_of(raw) == band
    assert AccountState.published_band_of(AccountState("fresh").to_bytes()) is None


def test_health_and_alert_json_validate_against_the_contracts() -> None:
    d = Driver()
    d.daily_usage(0, 30)
    out = d.send(ev("billing", "payment.failed", 30.5, amount=10.0, csm="ann"))
    assert out.health is not None and out.alerts
    update = HealthUpdate.model_validate_json(out.health.to_json_bytes("acme"))
    assert update == out.health.to_update("acme")
    assert update.as_of.timestamp() == T0 + 30.5 * DAY
    for alert in out.alerts:
        model = RiskAlert.model_validate_json(alert.to_json_bytes())
        assert model == alert.to_model()
        assert model.csm == "ann"


def test_training_example_round_trip() -> None:
    example = TrainingExample("acme", 1.0, {"usage_7d": 3.0}, 1, 2.0)
    assert TrainingExample.from_json_bytes(example.to_json_bytes()) == example
    assert orjson.loads(example.to_json_bytes())["label"] == 1
