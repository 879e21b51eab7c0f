"""Helpers for the ingest integration tests: a live uvicorn server, topic readers, events."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

import orjson
import uvicorn

from healthstream.broker import free_port
from healthstream.kafka import make_consumer
from healthstream.settings import Settings
from services.ingest.app import create_app
from services.ingest.settings import IngestSettings

INGEST_KEY = "ingest-key-0123456789"
READ_ONLY_KEY = "alerts-key-0123456789"
ADMIN_KEY = "admin-key-0123456789"
STRIPE_SECRET = "whsec_test_5f2b7c1e9d"
ZENDESK_SECRET = "zendesk-signing-secret-abc"


class LiveServer:
    """uvicorn serving one app in a background thread, so sync and async tests can call it."""

    def __init__(self, settings: IngestSettings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("ingest server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def ingest_settings(base: Settings, **overrides: Any) -> IngestSettings:
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": base.kafka_bootstrap_servers,
        "kafka_enable_idempotence": False,
        "topic_prefix": base.topic_prefix,
        "partitions": base.partitions,
        "api_keys": f"{INGEST_KEY}:ingest,{READ_ONLY_KEY}:alerts:read,{ADMIN_KEY}:admin",
        "stripe_webhook_secret": STRIPE_SECRET,
        "publish_timeout_seconds": 3.0,
        "_env_file": None,
    }
    values.update(overrides)
    return IngestSettings(**values)


async def read_topic(
    settings: Settings, topic: str, expected: int, timeout: float = 15.0, settle: float = 1.0
) -> list[Any]:
    """Every record on ``topic``: wait for ``expected`` of them, then a moment longer for extras."""
    consumer = make_consumer(settings, topic, group_id=None)
    await consumer.start()
    records: list[Any] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        extra_until: float | None = None
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for partition_records in batch.values():
                records.extend(partition_records)
            if len(records) >= expected:
                extra_until = extra_until or loop.time() + settle
                if loop.time() >= extra_until:
                    break
    finally:
        await consumer.stop()
    return records


def values(records: list[Any]) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in records]


def event(n: int, **overrides: Any) -> dict[str, Any]:
    """A valid canonical event with a unique id; override any field."""
    base: dict[str, Any] = {
        "event_id": f"evt-{uuid.uuid4().hex}-{n}",
        "account_id": f"acct-{n % 3}",
        "type": "usage",
        "name": "feature.used",
        "occurred_at": "2024-05-01T12:00:00Z",
        "properties": {"feature": "reports", "user_id": f"u{n}"},
    }
    base.update(overrides)
    return base
