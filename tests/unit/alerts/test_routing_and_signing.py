"""Pure parts of the alerts service: routing rules, HMAC signatures, backoff, payloads."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from healthstream import retry
from services.alerts.app import ConfigError, check_routing
from services.alerts.models import Alert
from services.alerts.payloads import alert_link, json_payload, slack_payload
from services.alerts.routing import RoutingConfig
from services.alerts.settings import AlertsSettings
from services.alerts.signing import sign, verify
from services.alerts.store import decode_alert_cursor, encode_alert_cursor

ROUTING = """
default_owner = "pool"

[[rules]]
segment = "enterprise"
owner = "ent"

[[rules]]
mrr_min = 1000
mrr_max = 5000
owner = "mid"

[[rules]]
plan = "free"
owner = "self-serve"

[teams]
emea = ["ana", "ben"]

[[webhooks]]
name = "ana"
owner = "ana"
url = "http://hooks/ana"
format = "slack"

[[webhooks]]
name = "emea"
owner = "emea"
url = "http://hooks/emea"
secret = "s"

[[webhooks]]
name = "all"
owner = "*"
url = "http://hooks/all"
secret = "s"
"""


@pytest.fixture
def routing(tmp_path: Path) -> RoutingConfig:
    path = tmp_path / "routing.toml"
    path.write_text(ROUTING)
    return RoutingConfig.load(path)


def test_first_matching_rule_wins_then_default(routing: RoutingConfig) -> None:
    assert routing.owner_for(segment="enterprise", mrr=2000) == "ent"
    assert routing.owner_for(mrr=1000) == "mid"  # min inclusive
    assert routing.owner_for(mrr=5000) == "pool"  # max exclusive
    assert routing.owner_for(mrr=None) == "pool"  # an MRR band never matches unknown MRR
    assert routing.owner_for(plan="free") == "self-serve"
    assert RoutingConfig().owner_for(segment="x") is None


def test_webhooks_of_owner_team_and_catch_all(routing: RoutingConfig) -> None:
    assert [h.name for h in routing.webhooks_for("ana")] == ["ana", "emea", "all"]
    assert [h.name for h in routing.webhooks_for("ben")] == ["emea", "all"]
    assert [h.name for h in routing.webhooks_for(None)] == ["all"]


def test_bad_routing_config_is_rejected_naming_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[[webhooks]]\nname = "x"\nowner = "a"\nurl = "ftp://nope"\n')
    with pytest.raises(ValidationError, match="url"):
        RoutingConfig.load(path)
    path.write_text(
        '[[webhooks]]\nname = "x"\nowner = "a"\nurl = "http://a"\n'
        '[[webhooks]]\nname = "x"\nowner = "b"\nurl = "http://b"\n'
    )
    with pytest.raises(ValidationError, match="repeated: x"):
        RoutingConfig.load(path)


def test_json_webhook_without_any_secret_refuses_to_start(tmp_path: Path) -> None:
    config = RoutingConfig.model_validate(
        {"webhooks": [{"name": "crm", "owner": "*", "url": "http://crm", "format": "json"}]}
    )
    with pytest.raises(ConfigError, match="crm"):
        check_routing(AlertsSettings(_env_file=None), config)
    check_routing(AlertsSettings(alerts_webhook_secret="fallback", _env_file=None), config)


def test_signature_verifies_and_rejects_tampering_and_replays() -> None:
    body = b'{"alert": {"alert_id": "a1"}}'
    stamp = 1_800_000_000
    signature = sign("secret", stamp, body)
    assert signature.startswith("v1=")
    assert verify("secret", str(stamp), body, signature, now=stamp + 10)
    assert not verify("other", str(stamp), body, signature, now=stamp + 10)
    assert not verify("secret", str(stamp), body + b" ", signature, now=stamp + 10)
    assert not verify("secret", str(stamp + 1), body, signature, now=stamp + 10)
    assert not verify("secret", str(stamp), body, signature, now=stamp + 301)  # too old
    assert not verify("secret", "not-a-number", body, signature, now=stamp)


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    rng = random.Random(7)
    for attempts in range(1, 12):
        ceiling = min(60.0, 0.5 * 2 ** (attempts - 1))
        delays = [retry.delay(attempts, 0.5, 60.0, rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered, not lock-step


def _alert() -> Alert:
    now = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    return Alert.model_validate(
        {
            "alert_id": "a/1",
            "dedupe_key": "acme:entered_red",
            "account_id": "acme co",
            "reason": "entered_red",
            "severity": "critical",
            "score": 31.4,
            "previous_score": 64.0,
            "drivers": [
                {
                    "feature": "payment_failures",
                    "component": "billing",
                    "contribution": -21.0,
                    "sentence": "2 failed payments in 30 days",
                }
            ],
            "occurred_at": now,
            "message": "Acme entered the red band",
            "status": "open",
            "assigned_csm": "ana",
            "created_at": now,
            "updated_at": now,
        }
    )


def test_slack_payload_has_score_drivers_and_link() -> None:
    alert = _alert()
    link = alert_link("https://hs.example.com/", alert)
    assert link == "https://hs.example.com/?account=acme%20co&alert=a/1"
    payload = slack_payload(alert, link)
    assert "health 31, was 64" in payload["text"]
    text = str(payload["blocks"])
    assert "2 failed payments in 30 days (-21)" in text
    assert link in text
    escalated = slack_payload(alert, link, "escalation")
    assert escalated["text"].startswith(":red_circle: ESCALATED: CRITICAL")


def test_json_payload_carries_the_whole_alert() -> None:
    alert = _alert()
    payload = json_payload(alert, "l")
    assert payload["type"] == "alert.created"
    assert payload["alert"]["score"] == 31.4
    assert payload["alert"]["occurred_at"] == "2026-11-23T08:00:00Z"
    assert json_payload(alert, "l", "escalation")["type"] == "alert.escalated"


def test_alert_cursor_round_trip_and_garbage() -> None:
    moment = datetime(2026, 11, 23, 8, 0, 1, 250000, tzinfo=UTC)
    assert decode_alert_cursor(encode_alert_cursor(moment, 42)) == (moment, 42)
    for garbage in ("", "%%%", "bm90IGEgY3Vyc29y"):
        with pytest.raises(ValueError, match="next_cursor"):
            decode_alert_cursor(garbage)
