"""The whole product, started the way an operator starts it: one process per service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from healthstream.stack import ServiceStack

E2E_KEY = "e2e-admin-key"


@pytest.fixture(scope="session")
def e2e_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {E2E_KEY}"}


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceStack]:
    """Embedded broker + ingest + scorer + trainer + alerts on free ports, once per session."""
    workdir: Path = tmp_path_factory.mktemp("stack")
    env = {
        "HEALTHSTREAM_API_KEYS": f"{E2E_KEY}:admin",
        "HEALTHSTREAM_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'alerts.db'}",
        "HEALTHSTREAM_LOG_JSON": "true",
        "HEALTHSTREAM_PARTITIONS": "2",
    }
    with ServiceStack(log_dir=workdir, env=env, free_ports=True) as running:
        yield running
