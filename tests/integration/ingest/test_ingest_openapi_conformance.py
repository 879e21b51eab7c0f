"""schemathesis against the live server: every operation, generated from our OpenAPI.

The schema is the app's own ``/openapi.json`` (built without a server); requests
go over HTTP to a real uvicorn server backed by the embedded broker. Every
response must be documented (status, content type, headers, body schema) and no
input, valid or not, may produce a 5xx.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from healthstream.broker import EmbeddedBroker
from healthstream.kafka import ensure_topics
from healthstream.settings import Settings
from services.ingest.app import create_app
from services.ingest.settings import IngestSettings
from tests.integration.ingest.live import INGEST_KEY, LiveServer, ingest_settings


@schemathesis.serializer("application/x-ndjson")
def _ndjson(_: Any, value: Any) -> bytes:
    """The schema describes NDJSON as the array of its lines: write one item per line."""
    items = value if isinstance(value, list) else [value]
    # json, not orjson: generated integers may exceed 64 bits.
    return "".join(json.dumps(item) + "\n" for item in items).encode()


SCHEMA = schemathesis.openapi.from_dict(create_app(IngestSettings(_env_file=None)).openapi())


@pytest.fixture(scope="module")
def module_ingest_server(broker: EmbeddedBroker) -> Iterator[LiveServer]:
    """The shared module server, but with the event-time window opened wide.

    The window is relative to the server's clock, which JSON Schema cannot state:
    a schema-valid ``date-time`` from year 438 is rightly refused by the default
    window. Its limits are tested in test_ingest_events_api.py; here the contract
    alone decides.
    """
    base = Settings(
        kafka_bootstrap_servers=broker.bootstrap_servers,
        kafka_enable_idempotence=False,
        topic_prefix=f"m{uuid.uuid4().hex[:8]}-",
        partitions=2,
        _env_file=None,
    )
    asyncio.run(ensure_topics(base))
    wide = ingest_settings(
        base,
        event_time_min=datetime(1, 1, 1, tzinfo=UTC),
        event_time_max_future_seconds=1e12,
    )
    server = LiveServer(wide).start()
    try:
        yield server
    finally:
        server.stop()


@SCHEMA.parametrize()
@hypothesis_settings(
    max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)
def test_every_operation_conforms_to_its_openapi(
    case: Any, module_ingest_server: LiveServer
) -> None:
    excluded = []
    if case.operation.path.startswith("/v1/sources/"):
        # Vendor payloads are the vendors' schemas, documented here only as "an object":
        # a random object is rightly refused (422), which this one check would call a
        # failure. Every other check, including negative-data rejection, still runs.
        excluded.append(positive_data_acceptance)
    case.call_and_validate(
        base_url=module_ingest_server.url,
        headers={"Authorization": f"Bearer {INGEST_KEY}"},
        excluded_checks=excluded,
    )
