"""Property-based API check (schemathesis): whatever the input, the API answers
with a documented status and a body matching its OpenAPI schema — never a 500.

The service runs as a real ``healthstream alerts serve`` process (schemathesis
calls it synchronously, so it cannot share the test's event loop), once per
database backend for the whole module.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from healthstream.broker import free_port
from tests.conftest import POSTGRES_ADMIN_DSN, _create_postgres_database, _drop_postgres_database
from tests.integration.alerts.conftest import ADMIN, API_KEYS


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("fuzz")
    postgres_name = None
    if request.param == "sqlite":
        database_url = f"sqlite+aiosqlite:///{workdir / 'alerts.db'}"
    else:
        postgres_name = f"hs_fuzz_{uuid.uuid4().hex[:12]}"
        asyncio.run(_create_postgres_database(postgres_name))
        base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace(
            "postgresql://", "postgresql+asyncpg://"
        )
        database_url = f"{base}/{postgres_name}"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHSTREAM_")}
    env.update(
        HEALTHSTREAM_DATABASE_URL=database_url,
        HEALTHSTREAM_API_KEYS=API_KEYS,
        HEALTHSTREAM_LOG_LEVEL="WARNING",
    )
    log = (workdir / "alerts.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "healthstream.cli",
            "alerts",
            "serve",
            "--no-consume",
            "--port",
            str(port),
        ],
        env=env,
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, (workdir / "alerts.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "alerts service did not start"
            time.sleep(0.2)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        if postgres_name:
            asyncio.run(_drop_postgres_database(postgres_name))
    server_errors = [
        line for line in (workdir / "alerts.log").read_text().splitlines() if "Traceback" in line
    ]
    assert server_errors == []


@pytest.fixture(scope="module")
def api_schema(api_url: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{api_url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.exclude(path="/v1/stream").parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    # Same cases on every run, as the ingest conformance test: a gate must not find a
    # new input by luck. Wider random runs (max_examples=200, derandomize=False) are
    # done by hand when the API changes; the last one found repeated scalar filters.
    derandomize=True,
)
def test_api_never_fails_on_any_input(case: schemathesis.Case) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {ADMIN}"},
        checks=[status_code_conformance, response_schema_conformance, negative_data_rejection],
    )
