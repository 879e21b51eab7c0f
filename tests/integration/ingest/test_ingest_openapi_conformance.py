"""schemathesis against the live server: every operation, generated from our OpenAPI.

The schema is the app's own ``/openapi.json`` (built without a server); requests
go over HTTP to a real uvicorn server backed by the embedded broker. Every
response must be documented (status, content type, headers, body schema) and no
input, valid or not, may produce a 5xx.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from services.ingest.app import create_app
from services.ingest.settings import IngestSettings
from tests.integration.ingest.live import INGEST_KEY, LiveServer


@schemathesis.serializer("application/x-ndjson")
def _ndjson(_: Any, value: Any) -> bytes:
    """The schema describes NDJSON as the array of its lines: write one item per line."""
    items = value if isinstance(value, list) else [value]
    # json, not orjson: generated integers may exceed 64 bits.
    return "".join(json.dumps(item) + "\n" for item in items).encode()


SCHEMA = schemathesis.openapi.from_dict(create_app(IngestSettings(_env_file=None)).openapi())


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
