"""The live stack is started once for the whole deploy suite: every test that
needs real services (dashboards, metrics doc, logs) reads the same run."""

from __future__ import annotations

import pytest

from tests.integration.deploy.live_metrics import Scrape, scrape


@pytest.fixture(scope="session")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Scrape:
    return scrape(tmp_path_factory.mktemp("live-metrics"))
