"""Session fixtures that start real components once: an embedded Kafka-protocol
broker, and databases (a SQLite file, and the PostgreSQL at 127.0.0.1:5432).

Tests isolate themselves by topic prefix (``kafka_settings``) and by database
name, never by mocking the component away.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from healthstream.broker import EmbeddedBroker
from healthstream.kafka import ensure_topics
from healthstream.settings import Settings

POSTGRES_ADMIN_DSN = os.environ.get(
    "HEALTHSTREAM_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)
ARTIFACTS = Path(os.environ.get("HEALTHSTREAM_TEST_ARTIFACTS", "test-artifacts"))


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    """One embedded broker for the whole session (it starts in milliseconds)."""
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture
async def kafka_settings(broker: EmbeddedBroker) -> Settings:
    """Settings pointing at the session broker, with a fresh topic prefix per test."""
    settings = Settings(
        kafka_bootstrap_servers=broker.bootstrap_servers,
        kafka_enable_idempotence=False,
        topic_prefix=f"t{uuid.uuid4().hex[:10]}-",
        partitions=2,
        _env_file=None,
    )
    await ensure_topics(settings)
    return settings


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


async def _create_postgres_database(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _drop_postgres_database(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database per test: a SQLite file, and a PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'alerts.db'}"
        return
    name = f"hs_test_{uuid.uuid4().hex[:12]}"
    await _create_postgres_database(name)
    try:
        base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace(
            "postgresql://", "postgresql+asyncpg://"
        )
        yield f"{base}/{name}"
    finally:
        await asyncio.sleep(0)
        await _drop_postgres_database(name)
