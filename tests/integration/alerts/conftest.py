"""Fixtures of the alerts-service tests: real broker, real database, real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from healthstream.broker import free_port
from healthstream.settings import Settings
from services.alerts.app import serve
from services.alerts.settings import AlertsSettings
from tests.integration.alerts.helpers import FIXTURES_ARE_LIVE_HOURS
from tests.integration.alerts.receiver import Recorder

ADMIN = "admin-key"
ALICE = "alice-key"
BOB = "bob-key"
READER = "reader-key"
API_KEYS = (
    f"{ADMIN}:admin,{ALICE}:alerts:read+alerts:write@alice@example.com,"
    f"{BOB}:alerts:read+alerts:write@bob@example.com,{READER}:alerts:read"
)


def routing_toml(recorder: Recorder) -> str:
    return f"""
default_owner = "cs-team"

[[rules]]
segment = "enterprise"
owner = "alice@example.com"

[[rules]]
plan = "pro"
mrr_min = 1000
owner = "bob@example.com"

[teams]
leads = ["carol@example.com"]

[escalation]
to = "leads"

[[webhooks]]
name = "everything-json"
owner = "*"
url = "{recorder.url}/json"
format = "json"
secret = "{recorder.secret}"

[[webhooks]]
name = "alice-slack"
owner = "alice@example.com"
url = "{recorder.url}/slack"
format = "slack"

[[webhooks]]
name = "leads-json"
owner = "leads"
url = "{recorder.url}/leads"
format = "json"
secret = "{recorder.secret}"
"""


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    running = Recorder().start()
    yield running
    running.stop()


@pytest.fixture
def alerts_settings(
    kafka_settings: Settings, database_url: str, recorder: Recorder, tmp_path: Path
) -> AlertsSettings:
    routing = tmp_path / "routing.toml"
    routing.write_text(routing_toml(recorder))
    return AlertsSettings(
        **kafka_settings.model_dump(exclude={"api_keys", "database_url"}),
        database_url=database_url,
        api_keys=API_KEYS,
        alerts_consumer_group=f"alerts-{kafka_settings.topic_prefix}",
        alerts_routing_path=routing,
        alerts_delivery_backoff_base=0.1,
        alerts_delivery_backoff_max=0.5,
        alerts_outbox_poll_interval=0.1,
        alerts_sweep_interval=0.2,
        alerts_delivery_timeout=5.0,
        alerts_stream_keepalive=1.0,
        alerts_backfill_after_hours=FIXTURES_ARE_LIVE_HOURS,
        _env_file=None,
    )


@dataclass
class Running:
    url: str
    settings: AlertsSettings

    def client(self, key: str | None = ADMIN) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)


@pytest.fixture
async def service(alerts_settings: AlertsSettings) -> AsyncIterator[Running]:
    async with serve(alerts_settings, free_port()) as url:
        yield Running(url, alerts_settings)
