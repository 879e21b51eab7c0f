"""Band-capped severity, cleared conditions and Slack escaping: pure functions, exact answers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from schemas import AlertSeverity, Band, HealthUpdate
from services.alerts.conditions import Bands, cleared, effective_severity
from services.alerts.models import Alert
from services.alerts.payloads import alert_link, slack_escape, slack_payload

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _health(
    score: float, band: str, drivers: list[tuple[str, float, str]] = (), **components: float
) -> HealthUpdate:
    parts = {k: 80.0 for k in ("usage", "engagement", "support", "billing", "sentiment")}
    parts["lifecycle"] = 80.0
    parts.update(components)
    return HealthUpdate.model_validate(
        {
            "account_id": "acme",
            "as_of": NOW,
            "score": score,
            "band": band,
            "churn_probability": 0.2,
            "components": parts,
            "drivers": [
                {"feature": f, "component": "x", "contribution": c, "sentence": t}
                for f, c, t in drivers
            ],
            "model_version": "test",
        }
    )


@pytest.mark.parametrize(
    ("rule", "band", "expected"),
    [
        ("critical", "red", "critical"),
        ("critical", "yellow", "warning"),
        ("critical", "green", "info"),
        ("warning", "red", "warning"),
        ("warning", "green", "info"),
        ("info", "red", "info"),
    ],
)
def test_severity_is_the_rule_capped_by_the_band(rule: str, band: str, expected: str) -> None:
    assert effective_severity(AlertSeverity(rule), Band(band)) == AlertSeverity(expected)


def test_band_of_a_score_uses_the_scorecard_thresholds() -> None:
    bands = Bands(red_below=50, green_from=75)
    assert [bands.of(s) for s in (49.9, 50, 74.9, 75, 92)] == [
        Band.RED,
        Band.YELLOW,
        Band.YELLOW,
        Band.GREEN,
        Band.GREEN,
    ]


def test_each_reason_clears_on_its_own_signal_only() -> None:
    red = _health(40, "red", billing=20, support=30)
    assert cleared("entered_red", None, red) is None
    assert cleared("entered_red", None, _health(80, "green")) == "health back to green (80)"
    assert cleared("score_drop", 85, _health(80, "green")) is None
    assert cleared("score_drop", 85, _health(86, "green")).startswith("score back to 86")
    assert cleared("payment_failed", None, _health(60, "yellow", billing=60)) is None
    assert cleared("payment_failed", None, _health(60, "yellow", billing=100)) is not None
    assert cleared("past_due", None, _health(60, "yellow", billing=100)) is not None
    down = [("usage_trend", -8.0, "usage down 40% vs last 4 weeks")]
    up = [("usage_trend", 4.0, "usage up 20% vs last 4 weeks")]
    assert cleared("usage_decline", None, _health(60, "yellow", down)) is None
    assert cleared("usage_decline", None, _health(60, "yellow", up)) == (
        "usage back: usage up 20% vs last 4 weeks"
    )
    # No usage driver among the top ones: nothing says usage is back.
    assert cleared("usage_decline", None, _health(90, "green")) is None
    assert cleared("inactivity", None, _health(60, "yellow", [("days_inactive", 2.0, "active")]))
    assert cleared("ticket_past_sla", None, _health(60, "yellow", support=70)) is None
    assert cleared("ticket_past_sla", None, _health(60, "yellow", support=100)) == (
        "no open support tickets"
    )
    # A detractor's answer is a fact: only a person closes it.
    assert cleared("nps_detractor", None, _health(95, "green", sentiment=100)) is None


def _alert(**overrides: Any) -> Alert:
    data: dict[str, Any] = {
        "alert_id": "a1",
        "dedupe_key": "k1",
        "account_id": "acme",
        "reason": "entered_red",
        "severity": "critical",
        "score": 31.0,
        "drivers": [],
        "occurred_at": NOW,
        "message": "entered red",
        "status": "open",
        "assigned_csm": "ana",
        "created_at": NOW,
        "updated_at": NOW,
    }
    data.update(overrides)
    return Alert.model_validate(data)


def test_slack_payload_escapes_event_text_so_nothing_is_injected() -> None:
    hostile = _alert(
        account_id="<!channel>",
        message="<https://evil.example|Re-authenticate> & pay",
        assigned_csm="<@U123> eve",
        drivers=[
            {"feature": "f", "component": "c", "contribution": -3, "sentence": "<!here> down"}
        ],
    )
    payload = slack_payload(hostile, alert_link("https://hs.example.com", hostile))
    texts = [payload["text"]]
    for block in payload["blocks"]:
        if "text" in block and block["text"].get("type") == "mrkdwn":
            texts.append(block["text"]["text"])
        texts.extend(field["text"] for field in block.get("fields", []))
    joined = "\n".join(texts)
    for raw in ("<!channel>", "<https://evil.example", "<@U123>", "<!here>"):
        assert raw not in joined
    assert "&lt;!channel&gt;" in payload["text"]
    assert "&lt;https://evil.example|Re-authenticate&gt; &amp; pay" in payload["text"]
    assert any("&lt;@U123&gt; eve" in t for t in texts)
    # The only Slack markup left is the service's own link to the account page.
    assert payload["text"].count("<") == 1
    assert "account=%3C%21channel%3E" in payload["text"]
    assert slack_escape("a&b<c>d") == "a&amp;b&lt;c&gt;d"
