"""``healthstream demo --with-prometheus``: Debian's real Prometheus scrapes the live
services with the shipped alert rules; every dashboard panel's query returns data and
every rule evaluates without error.

The demo runs with a small simulated feed, one webhook that answers and one that
fails; the test sends a failed payment (so an alert is raised, stored, delivered,
retried and given up), one invalid event and one forged Stripe webhook (so
rejections and signature failures are counted), and puts garbage on an event topic
and on risk-alerts and one alert twice (so dead letters and duplicates are counted).
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from healthstream.settings import Settings
from tests.e2e.demo_process import Demo, demo_env
from tests.integration.deploy.live_metrics import Receiver, _routing

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"

#: Panels that show only what a healthy demo never does; (panel title, query fragment).
#: Their metrics are checked to be exported by tests/integration/deploy/test_dashboards.py.
NEVER_IN_A_HEALTHY_DEMO = {
    ("5xx ratio", 'status=~"5.."'),  # ingest answering 5xx (broker away, overload)
    ("Dead-lettered / s", 'reason="dead_lettered"'),  # a valid event the broker refuses
    ("Dead letters, last 24 h", 'reason="dead_lettered"'),
}


async def _bad_records(bootstrap: str) -> None:
    """What a misbehaving producer does: garbage on an event topic and on risk-alerts
    (dead-lettered by the scorer and by the alerts service), and one alert twice."""
    topics = Settings(kafka_bootstrap_servers=bootstrap, _env_file=None).topics
    consumer = AIOKafkaConsumer(
        topics.risk_alerts, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        alert = None
        deadline = time.monotonic() + 60
        while alert is None and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                alert = alert or next(iter(records), None)
    finally:
        await consumer.stop()
    assert alert is not None, "no risk alert on the topic"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topics.usage, b"not json", key=b"acme")
        await producer.send_and_wait(topics.risk_alerts, b"not json", key=b"acme")
        await producer.send_and_wait(topics.risk_alerts, alert.value, key=alert.key)
    finally:
        await producer.stop()


def panel_queries() -> list[tuple[str, str]]:
    queries = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                queries.append((panel["title"], target["expr"]))
    return queries


def _expected_empty(title: str, expr: str) -> bool:
    return any(title == t and fragment in expr for t, fragment in NEVER_IN_A_HEALTHY_DEMO)


def _grafana(expr: str) -> str:
    """What Grafana sends for the dashboards' variables (all namespaces, a 1 min window)."""
    return expr.replace("$namespace", ".+").replace("$__rate_interval", "1m")


def _query(client: httpx.Client, url: str, expr: str) -> dict[str, Any]:
    answer = client.get(f"{url}/api/v1/query", params={"query": _grafana(expr)}).json()
    assert answer["status"] == "success", (expr, answer)
    return answer["data"]


def test_every_panel_returns_data_and_every_rule_evaluates(tmp_path: Path) -> None:
    queries = panel_queries()
    assert len(queries) > 40
    for expected in NEVER_IN_A_HEALTHY_DEMO:
        assert any(_expected_empty(*q) and q[0] == expected[0] for q in queries), expected

    with Receiver() as receiver:
        routing = tmp_path / "routing.toml"
        routing.write_text(_routing(receiver))
        env = demo_env()
        env.update(
            {
                "HEALTHSTREAM_ALERTS_ROUTING_PATH": str(routing),
                "HEALTHSTREAM_ALERTS_DELIVERY_MAX_ATTEMPTS": "2",
                "HEALTHSTREAM_ALERTS_DELIVERY_BACKOFF_BASE": "0.2",
            }
        )
        args = ("--with-prometheus", "--accounts", "5", "--days", "20", "--data-dir", "demo")
        demo = Demo.start(tmp_path, env, *args)
        try:
            banner = [line.split() for line in demo.banner.splitlines()]
            prometheus = next(words[-1] for words in banner if words[:1] == ["prometheus"])
            ingest = next(words[-1] for words in banner if words[:2] == ["ingest", "API"])
            ingest = ingest.removesuffix("/docs")
            key = next(words[-1] for words in banner if words[:2] == ["API", "key"])
            auth = {"Authorization": f"Bearer {key}"}
            with httpx.Client(timeout=10) as client:
                # A failed payment: an alert raised, stored, delivered to /ok, given up on /broken.
                payment = {
                    "event_id": "prometheus-payment-1",
                    "account_id": "acme",
                    "type": "billing",
                    "name": "payment.failed",
                    "occurred_at": datetime.now(UTC).isoformat(),
                    "properties": {"amount": 499, "currency": "USD"},
                }
                posted = client.post(f"{ingest}/v1/events", json=payment, headers=auth)
                assert posted.status_code == 202, posted.text
                invalid = client.post(f"{ingest}/v1/events", json={"event_id": "x"}, headers=auth)
                assert invalid.status_code == 422
                forged = client.post(
                    f"{ingest}/v1/sources/stripe",
                    content=b"{}",
                    headers={
                        "Stripe-Signature": "t=1,v1=forged",
                        "Content-Type": "application/json",
                    },
                )
                assert forged.status_code == 401
                broker = next(words[-1] for words in banner if words[:1] == ["broker"])
                asyncio.run(_bad_records(broker))

                missing: list[tuple[str, str]] = []
                rules: list[dict[str, Any]] = []
                deadline = time.monotonic() + 90
                while time.monotonic() < deadline:
                    missing = [
                        (title, expr)
                        for title, expr in queries
                        if not _expected_empty(title, expr)
                        and not _query(client, prometheus, expr)["result"]
                    ]
                    groups = client.get(f"{prometheus}/api/v1/rules").json()["data"]["groups"]
                    rules = [rule for group in groups for rule in group["rules"]]
                    evaluated = all(not rule["lastEvaluation"].startswith("0001") for rule in rules)
                    if not missing and evaluated:
                        break
                    time.sleep(1)
            assert not missing, f"panels without data: {missing}"
            assert len(rules) >= 10
            broken = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
            assert not broken, broken
        finally:
            rest, took, left = demo.ctrl_c(within=5.0)
    assert not left, f"processes left {took:.1f} s after Ctrl-C: {left}\n{rest}"
    assert demo.process.returncode == 0, rest
