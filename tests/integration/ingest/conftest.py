"""A real ingest server (uvicorn on a free port, own thread and event loop) per test,
talking to the session's embedded broker under a fresh topic prefix."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from healthstream.broker import EmbeddedBroker
from healthstream.kafka import ensure_topics
from healthstream.settings import Settings
from tests.integration.ingest.live import INGEST_KEY, LiveServer, ingest_settings


@pytest.fixture
def ingest_server(kafka_settings: Settings) -> Iterator[LiveServer]:
    server = LiveServer(ingest_settings(kafka_settings)).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {INGEST_KEY}"}


@pytest.fixture(scope="module")
def module_ingest_server(broker: EmbeddedBroker) -> Iterator[LiveServer]:
    """One server for a whole module (property-based tests send thousands of requests)."""
    base = Settings(
        kafka_bootstrap_servers=broker.bootstrap_servers,
        kafka_enable_idempotence=False,
        topic_prefix=f"m{uuid.uuid4().hex[:8]}-",
        partitions=2,
        _env_file=None,
    )
    asyncio.run(ensure_topics(base))
    server = LiveServer(ingest_settings(base)).start()
    try:
        yield server
    finally:
        server.stop()
