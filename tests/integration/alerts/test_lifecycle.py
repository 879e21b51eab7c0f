"""Time-driven behaviour: dead letters after N failures, snoozes running out, escalation."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from healthstream.broker import free_port
from services.alerts.app import serve
from services.alerts.settings import AlertsSettings
from tests.integration.alerts.conftest import Running
from tests.integration.alerts.helpers import eventually, publish, risk_alert
from tests.integration.alerts.receiver import Recorder


async def test_dead_letter_after_max_attempts_visible_in_api(
    alerts_settings: AlertsSettings, recorder: Recorder
) -> None:
    recorder.failing_paths.add("/json")
    settings = alerts_settings.model_copy(update={"alerts_delivery_max_attempts": 3})
    async with serve(settings, free_port()) as url:
        service = Running(url, settings)
        await publish(settings, settings.topics.risk_alerts, [risk_alert("oscar", 1)])

        async def dead() -> list[dict[str, object]]:
            async with service.client() as client:
                page = await client.get("/v1/deliveries", params={"state": "dead"})
                return list(page.json()["items"])

        items = await eventually(dead, what="a dead letter")
        assert len(items) == 1
        letter = items[0]
        assert letter["alert_id"] == "oscar-entered_red-1"
        assert letter["destination"] == "everything-json"
        assert letter["attempts"] == 3
        assert "HTTP 500" in str(letter["last_error"])
        assert len(recorder.snapshot("/json")) == 0  # 500s are not recorded as received
        # A dead letter no longer blocks the account: the next alert goes through.
        recorder.failing_paths.clear()
        await publish(settings, settings.topics.risk_alerts, [risk_alert("oscar", 2)])
        await eventually(lambda: recorder.snapshot("/json"), what="next alert delivered")
        await asyncio.sleep(0.5)
        got = [r.body["alert"]["alert_id"] for r in recorder.snapshot("/json")]
        assert got == ["oscar-entered_red-2"]
        async with service.client() as client:
            metrics = (await client.get("/metrics")).text
        assert 'healthstream_alerts_dead_letters_total{channel="json",reason="entered_red"}' in (
            metrics
        )


async def test_snooze_runs_out_and_critical_alert_escalates(
    alerts_settings: AlertsSettings, recorder: Recorder
) -> None:
    settings = alerts_settings.model_copy(update={"alerts_escalation_after": 1.5})
    async with serve(settings, free_port()) as url:
        service = Running(url, settings)
        await publish(
            settings,
            settings.topics.risk_alerts,
            [
                risk_alert("papa", 1, severity="critical"),
                risk_alert("quebec", 1, severity="critical"),
                risk_alert("romeo", 1, severity="warning", reason="usage_decline"),
            ],
        )

        async with service.client() as client:

            async def stored() -> bool:
                return len((await client.get("/v1/alerts")).json()["items"]) == 3

            await eventually(stored, what="alerts stored")
            # Acknowledged in time: quebec must not escalate.
            ack = await client.post("/v1/alerts/quebec-entered_red-1/acknowledge")
            assert ack.status_code == 200
            until = datetime.now(UTC) + timedelta(seconds=1)
            snooze = await client.post(
                "/v1/alerts/romeo-usage_decline-1/snooze", json={"until": until.isoformat()}
            )
            assert snooze.json()["status"] == "snoozed"

            async def woke() -> bool:
                alert = (await client.get("/v1/alerts/romeo-usage_decline-1")).json()
                return bool(alert["status"] == "open")

            await eventually(woke, what="snooze expiry")
            romeo_audit = (await client.get("/v1/alerts/romeo-usage_decline-1/audit")).json()
            assert [e["action"] for e in romeo_audit["items"]] == [
                "created",
                "snoozed",
                "unsnoozed",
            ]

            await eventually(lambda: recorder.snapshot("/leads"), what="escalation delivered")
            papa = (await client.get("/v1/alerts/papa-entered_red-1")).json()
            assert papa["escalated_at"] is not None
            audit = (await client.get("/v1/alerts/papa-entered_red-1/audit")).json()["items"]
            assert [e["action"] for e in audit] == ["created", "escalated"]
            assert audit[1]["details"] == {"to": "leads"}
            await asyncio.sleep(1.0)  # more sweeps: still escalated only once
            escalations = recorder.snapshot("/leads")
            assert [r.body["type"] for r in escalations] == ["alert.escalated"]
            assert escalations[0].body["alert"]["alert_id"] == "papa-entered_red-1"
            assert escalations[0].signature_ok is True
            quebec = (await client.get("/v1/alerts/quebec-entered_red-1")).json()
            assert quebec["escalated_at"] is None
