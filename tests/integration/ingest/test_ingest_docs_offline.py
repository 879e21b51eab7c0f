"""Ingest's /docs and /redoc load every asset from the service itself, never a CDN.

The HTML references only same-origin paths and each asset loads; in headless
Chromium with every other host blocked, Swagger UI renders the API.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import async_playwright

from tests.integration.ingest.live import LiveServer

CHROMIUM = Path("/usr/bin/chromium")
#: Every src/href attribute, and any absolute or protocol-relative URL in the page.
ATTRIBUTE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
ABSOLUTE = re.compile(r"""(?:https?:)?//[A-Za-z0-9.-]+""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_html_references_only_local_assets_that_load(
    ingest_server: LiveServer, page: str
) -> None:
    with httpx.Client(base_url=ingest_server.url, timeout=30) as client:
        html = client.get(page).text
        assert ABSOLUTE.findall(html) == [], "the page names another host"
        assets = ATTRIBUTE.findall(html)
        assert any(a.endswith(".js") for a in assets), assets
        for asset in assets:
            assert asset.startswith("/") and not asset.startswith("//"), asset
            response = client.get(asset)
            assert response.status_code == 200, asset
            assert len(response.content) > 1000, asset
            expected = {".js": "javascript", ".css": "text/css", ".png": "image/png"}
            kind = next(v for k, v in expected.items() if asset.endswith(k))
            assert kind in response.headers["content-type"], (asset, response.headers)


@pytest.mark.browser
async def test_swagger_ui_renders_with_every_other_host_blocked(
    ingest_server: LiveServer,
) -> None:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: bash scripts/install-system-packages.sh"
    origin = urlsplit(ingest_server.url).netloc
    foreign: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"], headless=True
        )
        try:
            page = await browser.new_page()

            async def only_same_origin(route, request):  # type: ignore[no-untyped-def]
                if urlsplit(request.url).netloc == origin or request.url.startswith("data:"):
                    await route.continue_()
                else:
                    foreign.append(request.url)
                    await route.abort()

            await page.route("**/*", only_same_origin)
            await page.goto(f"{ingest_server.url}/docs")
            title = page.locator(".swagger-ui .info .title")
            await title.wait_for(timeout=30_000)
            assert "healthstream ingest" in await title.inner_text()
            operation = page.locator(".opblock-summary-path", has_text="/v1/events")
            await operation.first.wait_for(timeout=30_000)
        finally:
            await browser.close()
    assert foreign == []
