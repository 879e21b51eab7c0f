"""The alerts service never looks alive while its consumers are dead.

Against the embedded broker (no idempotent producers) with
``HEALTHSTREAM_KAFKA_ENABLE_IDEMPOTENCE`` left on, the consumers cannot start:
``/healthz`` must answer 503 naming the setting (so the orchestrator restarts
the pod and the operator reads why), not 200 while storing nothing.
"""

from __future__ import annotations

import asyncio

import httpx
from prometheus_client.parser import text_string_to_metric_families

from healthstream.broker import free_port
from healthstream.kafka import IDEMPOTENCE_SETTING
from services.alerts.app import serve
from services.alerts.settings import AlertsSettings


def task_up(metrics_text: str, task: str) -> float | None:
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == "healthstream_alerts_task_up" and sample.labels["task"] == task:
                return sample.value
    return None


async def test_consumers_that_cannot_start_fail_healthz_naming_the_setting(
    alerts_settings: AlertsSettings,
) -> None:
    settings = alerts_settings.model_copy(update={"kafka_enable_idempotence": True})
    async with serve(settings, free_port()) as url, httpx.AsyncClient(base_url=url) as client:
        answer = await client.get("/healthz")
        for _ in range(600):
            if answer.status_code != 200:
                break
            await asyncio.sleep(0.05)
            answer = await client.get("/healthz")
        assert answer.status_code == 503, answer.text
        body = answer.json()
        assert body["status"] == "failing"
        assert set(body["tasks"]) >= {"alerts-consumer", "alerts-health-consumer"}
        assert all(IDEMPOTENCE_SETTING in error for error in body["tasks"].values())
        # The outbox and the sweeper do not need Kafka: they keep working.
        assert "alerts-outbox" not in body["tasks"]
        metrics = (await client.get("/metrics")).text
        assert task_up(metrics, "alerts-consumer") == 0
        assert task_up(metrics, "alerts-outbox") == 1
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["alerts-consumer"] is False


async def test_healthy_service_answers_healthz_ok_with_every_task_up(
    alerts_settings: AlertsSettings,
) -> None:
    async with serve(alerts_settings, free_port()) as url, httpx.AsyncClient(base_url=url) as c:
        for _ in range(600):
            if (await c.get("/readyz")).status_code == 200:
                break
            await asyncio.sleep(0.05)
        assert (await c.get("/healthz")).json() == {"status": "ok"}
        metrics = (await c.get("/metrics")).text
        for task in (
            "alerts-consumer",
            "alerts-health-consumer",
            "alerts-outbox",
            "alerts-sweeper",
        ):
            assert task_up(metrics, task) == 1, task
