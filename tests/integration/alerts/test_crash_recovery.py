"""The service is SIGKILLed mid-delivery and restarted: nothing is lost, and the
only repeats are re-sends of a delivery id the receiver already saw (it dedupes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import httpx

from healthstream.broker import free_port
from services.alerts.settings import AlertsSettings
from tests.integration.alerts.conftest import ADMIN, API_KEYS
from tests.integration.alerts.helpers import (
    FIXTURES_ARE_LIVE_HOURS,
    eventually,
    publish,
    risk_alert,
)
from tests.integration.alerts.receiver import Recorder

ACCOUNTS = ["kilo", "lima", "mike"]
PER_ACCOUNT = 8


def _environment(settings: AlertsSettings, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHSTREAM_")}
    env.update(
        {
            "HEALTHSTREAM_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "HEALTHSTREAM_KAFKA_ENABLE_IDEMPOTENCE": "false",
            "HEALTHSTREAM_TOPIC_PREFIX": settings.topic_prefix,
            "HEALTHSTREAM_PARTITIONS": str(settings.partitions),
            "HEALTHSTREAM_DATABASE_URL": settings.database_url,
            "HEALTHSTREAM_API_KEYS": API_KEYS,
            "HEALTHSTREAM_ALERTS_CONSUMER_GROUP": settings.alerts_consumer_group,
            "HEALTHSTREAM_ALERTS_ROUTING_PATH": str(settings.alerts_routing_path),
            "HEALTHSTREAM_ALERTS_DELIVERY_BACKOFF_BASE": "0.1",
            "HEALTHSTREAM_ALERTS_DELIVERY_BACKOFF_MAX": "0.5",
            "HEALTHSTREAM_ALERTS_OUTBOX_POLL_INTERVAL": "0.1",
            "HEALTHSTREAM_ALERTS_BACKFILL_AFTER_HOURS": str(FIXTURES_ARE_LIVE_HOURS),
            "HEALTHSTREAM_LOG_LEVEL": "WARNING",
            "HEALTHSTREAM_ALERTS_PORT": str(port),
        }
    )
    return env


def _start(
    settings: AlertsSettings, port: int, workdir: Path, log_name: str
) -> subprocess.Popen[bytes]:
    log = (workdir / log_name).open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "healthstream.cli", "alerts", "serve"],
        env=_environment(settings, port),
        cwd=workdir,  # no stray .env
        stdout=log,
        stderr=subprocess.STDOUT,
    )


async def _healthy(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            return (await client.get(f"{url}/healthz")).status_code == 200
    except httpx.HTTPError:
        return False


async def test_sigkill_mid_delivery_loses_nothing(
    alerts_settings: AlertsSettings, recorder: Recorder, tmp_path: Path
) -> None:
    settings = alerts_settings
    recorder.delay = 0.15  # deliveries take a while, so the kill lands mid-flight
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    first_half = [risk_alert(a, n) for n in range(PER_ACCOUNT // 2) for a in ACCOUNTS]
    second_half = [risk_alert(a, n) for n in range(PER_ACCOUNT // 2, PER_ACCOUNT) for a in ACCOUNTS]
    await publish(settings, settings.topics.risk_alerts, first_half)

    process = _start(settings, port, tmp_path, "first.log")
    try:
        await eventually(
            lambda: len(recorder.snapshot("/json")) >= 4, timeout=90, what="some deliveries"
        )
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    delivered_before_kill = len(recorder.snapshot("/json"))
    assert delivered_before_kill < len(first_half), "the kill must land before the end"

    # Alerts published while the service is dead are picked up after the restart.
    await publish(settings, settings.topics.risk_alerts, second_half)
    restarted = _start(settings, port, tmp_path, "second.log")
    try:
        await eventually(lambda: _healthy(url), timeout=60, what="restart")
        expected = {a["alert_id"] for a in first_half + second_half}

        def all_received() -> bool:
            return {r.body["alert"]["alert_id"] for r in recorder.snapshot("/json")} == expected

        await eventually(all_received, timeout=120, what="every alert delivered after restart")
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30
        ) as client:
            alerts = (await client.get("/v1/alerts", params={"limit": 500})).json()["items"]

            async def outbox_drained() -> bool:
                page = await client.get("/v1/deliveries", params={"state": "pending"})
                return page.json()["items"] == []

            await eventually(outbox_drained, what="outbox drained")
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=30)

    assert sorted(a["alert_id"] for a in alerts) == sorted(expected)  # one row each
    received = recorder.snapshot("/json")
    ids_by_alert: dict[str, set[str]] = defaultdict(set)
    for r in received:
        ids_by_alert[r.body["alert"]["alert_id"]].add(r.delivery_id)
        assert r.body["delivery_id"] == int(r.delivery_id)
    # A repeat is always the same delivery id: the receiver can dedupe every one.
    assert all(len(ids) == 1 for ids in ids_by_alert.values())
    repeats = len(received) - len(expected)
    assert repeats <= len(ACCOUNTS), "only deliveries in flight at the kill may repeat"

    first_seen: dict[str, list[int]] = defaultdict(list)
    seen: set[str] = set()
    for r in received:
        alert = r.body["alert"]
        if alert["alert_id"] not in seen:
            seen.add(alert["alert_id"])
            first_seen[alert["account_id"]].append(int(alert["alert_id"].rsplit("-", 1)[1]))
    for account in ACCOUNTS:
        assert first_seen[account] == list(range(PER_ACCOUNT)), account
