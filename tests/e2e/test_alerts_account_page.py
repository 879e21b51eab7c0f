"""The CSM's morning in a real headless Chromium: what is really at risk, and one account's page.

Same setup as test_alerts_page.py (the real service in this process on a free
port, SQLite and PostgreSQL, the session's embedded broker, messages on the
topics as the scorer and the CRM publish them), plus a local Slack stand-in
that records the webhook the product sends, so the test follows the link a
CSM would click.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from playwright.async_api import Page, expect

from healthstream.broker import free_port
from healthstream.kafka import make_producer
from healthstream.settings import Settings
from schemas import Components, HealthUpdate, RiskAlert
from services.alerts.app import serve
from services.alerts.settings import AlertsSettings
from tests.e2e import test_alerts_page as shared
from tests.e2e.test_alerts_page import (
    ACCOUNTS,
    KEY,
    NOW,
    SEEDED,
    _alert,
    _drivers,
    _eventually,
    _produce,
    _seed,
)
from tests.integration.alerts.helpers import FIXTURES_ARE_LIVE_HOURS
from tests.integration.alerts.receiver import Recorder

# The same Chromium and page fixtures as the page's other tests.
browser = shared.browser
page = shared.page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: MRR (and renewal) per seeded account, from account events as the CRM sends them.
COMMERCIAL = {
    "northwind": (1200.0, "2027-02-01"),  # score 28: 72% churn -> 864 at risk
    "globex": (9000.0, "2027-06-30"),  # score 44: 56% -> 5040 at risk
    "initech": (4000.0, "2027-01-10"),  # score 58: 42% -> 1680 at risk
    "hooli": (20000.0, None),  # score 71: 29% -> 5800 at risk
}


@pytest.fixture
def slack() -> AsyncIterator[Recorder]:
    running = Recorder().start()
    yield running
    running.stop()


@pytest.fixture
async def service_url(
    kafka_settings: Settings, database_url: str, tmp_path: Path, slack: Recorder
) -> AsyncIterator[str]:
    port = free_port("127.0.0.1")
    routing = tmp_path / "routing.toml"
    routing.write_text(
        f"""
default_owner = "cs-team"
csms = ["alice@example.com", "bob@example.com", "carol@example.com"]

[[webhooks]]
name = "team-slack"
owner = "*"
url = "{slack.url}/slack"
format = "slack"
"""
    )
    settings = AlertsSettings(
        alerts_backfill_after_hours=FIXTURES_ARE_LIVE_HOURS,
        kafka_bootstrap_servers=kafka_settings.kafka_bootstrap_servers,
        kafka_enable_idempotence=False,
        topic_prefix=kafka_settings.topic_prefix,
        partitions=kafka_settings.partitions,
        database_url=database_url,
        api_keys=f"{KEY}:alerts:read+alerts:write",
        host="127.0.0.1",
        alerts_routing_path=routing,
        alerts_public_url=f"http://127.0.0.1:{port}",
        alerts_outbox_poll_interval=0.1,
        alerts_consumer_group=f"page-test-{uuid.uuid4().hex[:8]}",
        alerts_stream_keepalive=1.0,
        log_json=False,
        _env_file=None,
    )
    async with serve(settings, port) as url:
        yield url


def _artifact(artifacts_dir: Path, name: str, database_url: str) -> str:
    suffix = "" if database_url.startswith("sqlite") else "-postgres"
    return str(artifacts_dir / f"{name}{suffix}.png")


async def _open(page: Page, url: str) -> None:
    await page.goto(f"{url}/#key={KEY}")
    await expect(page.locator("#connection")).to_have_attribute("data-state", "live")


async def _account_events(settings: Settings) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        for account_id, (mrr, renewal) in COMMERCIAL.items():
            properties: dict[str, Any] = {"mrr": mrr, "csm": ACCOUNTS[account_id]["csm"]}
            if renewal:
                properties["renewal_date"] = renewal
            event = {
                "event_id": f"crm-{account_id}-{uuid.uuid4().hex[:6]}",
                "account_id": account_id,
                "type": "account",
                "name": "account.updated",
                "occurred_at": (NOW - timedelta(days=30)).isoformat(),
                "source": "crm",
                "properties": properties,
            }
            await producer.send_and_wait(
                settings.topics.account, key=account_id.encode(), value=orjson.dumps(event)
            )
    finally:
        await producer.stop()


def _recovered(account_id: str, score: float, **components: float) -> HealthUpdate:
    parts = dict.fromkeys(("usage", "engagement", "support", "billing", "sentiment"), 80.0)
    parts["lifecycle"] = 80.0
    parts.update(components)
    return HealthUpdate(
        account_id=account_id,
        as_of=NOW + timedelta(minutes=5),
        score=score,
        band="green",
        churn_probability=round(1 - score / 100, 2),
        components=Components(**parts),
        drivers=_drivers(
            ("usage", "usage_trend", 6.0, "usage up 30% vs last 4 weeks"),
            ("billing", "payment_failures_30d", 5.0, "billing in good standing"),
        ),
        model_version="scorecard-test",
    )


async def test_auto_resolved_alerts_leave_the_default_view(
    service_url: str, kafka_settings: Settings, page: Page, artifacts_dir: Path, database_url: str
) -> None:
    async with httpx.AsyncClient(headers={"X-API-Key": KEY}, timeout=10.0) as client:
        await _seed(service_url, kafka_settings, client)
        await _open(page, service_url)
        cards = page.locator("li.account")
        await expect(cards).to_have_count(4)
        northwind = page.locator("li.account[data-account-id='northwind']")
        await expect(northwind.locator("li.alert")).to_have_count(2)

        # northwind pays and its usage comes back: the scorer's next update says so.
        await _produce(
            kafka_settings,
            kafka_settings.topics.account_health,
            [_recovered("northwind", 86.0, billing=100.0)],
        )
        # Both alerts resolve themselves, live, and the card leaves the default view.
        await expect(northwind).to_have_count(0)
        assert await cards.evaluate_all("els => els.map(e => e.dataset.accountId)") == [
            "globex",
            "initech",
            "hooli",
        ]
        for alert in SEEDED[:2]:
            stored = (await client.get(f"{service_url}/v1/alerts/{alert.alert_id}")).json()
            assert stored["status"] == "resolved"
            audit = (await client.get(f"{service_url}/v1/alerts/{alert.alert_id}/audit")).json()
            last = audit["items"][-1]
            assert (last["action"], last["actor"]) == ("resolved", "system")
        # The status filter still finds them, with the cause in their history.
        await page.get_by_label("Status").select_option("resolved")
        await expect(northwind).to_have_count(1)
        payment = SEEDED[0]
        await northwind.get_by_role("button", name="History: Payment failed for northwind").click()
        history = page.locator(f"li.alert[data-alert-id='{payment.alert_id}']").get_by_role(
            "list", name="Alert history"
        )
        await expect(history.locator("li").last).to_contain_text("billing in good standing")
        await page.get_by_label("Status").select_option("active")
        await expect(cards).to_have_count(3)
        await expect(page.locator(".toast")).to_have_count(0)
        await page.screenshot(
            path=_artifact(artifacts_dir, "alerts-auto-resolved", database_url), full_page=True
        )


async def test_repeats_are_one_card_with_a_count(
    service_url: str, kafka_settings: Settings, page: Page, artifacts_dir: Path, database_url: str
) -> None:
    async with httpx.AsyncClient(headers={"X-API-Key": KEY}, timeout=10.0) as client:
        await _seed(service_url, kafka_settings, client)
        repeats = [
            RiskAlert.model_validate(
                {
                    **_alert(
                        "initech", "ticket_past_sla", "warning", 20 - n, "1 urgent ticket past SLA"
                    ).model_dump(),
                    "dedupe_key": f"initech:ticket_past_sla:{n}",
                }
            )
            for n in range(3)
        ]
        await _produce(kafka_settings, kafka_settings.topics.risk_alerts, repeats)

        async def stored() -> bool:
            response = await client.get(
                f"{service_url}/v1/alerts", params={"reason": "ticket_past_sla"}
            )
            return len(response.json()["items"]) == 3

        await _eventually(stored, "the three repeats to be stored")
        await _open(page, service_url)
        initech = page.locator("li.account[data-account-id='initech']")
        # Two kinds of alert on initech: usage (1) and the ticket (3, as one row).
        await expect(initech.locator("li.alert")).to_have_count(2)
        grouped = initech.locator("li.alert[data-count='3']")
        await expect(grouped).to_have_count(1)
        await expect(grouped.locator(".repeat-count")).to_have_text("×3")
        await expect(grouped).to_contain_text("3 alerts, the first")
        await expect(page.locator(".toast")).to_have_count(0)
        await page.screenshot(
            path=_artifact(artifacts_dir, "alerts-grouped-repeats", database_url), full_page=True
        )

        # Resolving the card resolves the three.
        await grouped.get_by_role(
            "button", name="Resolve: Urgent ticket past SLA for initech"
        ).click()
        dialog = page.get_by_role("dialog", name="Resolve alert")
        await dialog.get_by_label("What was done").fill("Escalated to support lead; fixed.")
        await dialog.get_by_role("button", name="Resolve").click()
        await expect(dialog).to_be_hidden()
        await expect(grouped).to_have_count(0)
        await expect(initech.locator("li.alert")).to_have_count(1)
        for alert in repeats:
            stored_alert = (await client.get(f"{service_url}/v1/alerts/{alert.alert_id}")).json()
            assert stored_alert["status"] == "resolved"


async def test_slack_link_opens_the_accounts_own_page(
    service_url: str,
    kafka_settings: Settings,
    page: Page,
    slack: Recorder,
    artifacts_dir: Path,
    database_url: str,
) -> None:
    await _account_events(kafka_settings)
    async with httpx.AsyncClient(headers={"X-API-Key": KEY}, timeout=10.0) as client:
        await _seed(service_url, kafka_settings, client)

        async def delivered() -> bool:
            return len(slack.snapshot("/slack")) == len(SEEDED)

        await _eventually(delivered, "every alert delivered to the Slack stand-in")
    payment = SEEDED[0]
    message = next(
        r.body
        for r in slack.snapshot("/slack")
        if payment.account_id in r.body["text"] and "Payment" in r.body["text"]
    )
    button = next(b for b in message["blocks"] if b["type"] == "actions")["elements"][0]
    link = button["url"]
    assert link.startswith(f"{service_url}/?account=northwind&alert=")

    await _open(page, service_url)  # the key is stored in this browser once
    await page.goto(link)
    view = page.locator("#account-view")
    await expect(view).to_be_visible()
    await expect(page.locator("#accounts")).to_be_hidden()
    await expect(page.locator("#account-title")).to_have_text("northwind")
    facts = page.locator("#account-facts")
    await expect(facts).to_contain_text("MRR")
    await expect(facts).to_contain_text("1,200")
    await expect(facts).to_contain_text("864")  # MRR at risk = 1200 x 0.72
    await expect(facts).to_contain_text("Feb 1, 2027")
    await expect(facts).to_contain_text("alice@example.com")
    # The score history is a real chart (uPlot, served by the service itself).
    chart = page.locator("#history-chart")
    await expect(chart.locator("canvas")).to_have_count(1)
    points = len(ACCOUNTS["northwind"]["scores"])
    await expect(chart).to_have_attribute(
        "aria-label", f"Score history for northwind: {points} points, from 82 to 28"
    )
    await expect(page.locator("#account-components tr")).to_have_count(6)
    await expect(page.locator("#account-drivers")).to_contain_text(
        "2 failed payments in the last 30 days"
    )
    # Every alert of the account, its history open, the one from Slack highlighted.
    alerts = page.locator("#account-alerts li.alert")
    await expect(alerts).to_have_count(2)
    target = page.locator(f"#account-alerts li.alert[data-alert-id='{payment.alert_id}']")
    await expect(target).to_have_class("alert status-open sev-critical highlight", timeout=30_000)
    await expect(target.get_by_role("list", name="Alert history").locator("li")).to_have_count(1)
    await expect(target.locator(".alert-drivers")).to_contain_text("At the alert:")
    await page.screenshot(
        path=_artifact(artifacts_dir, "alerts-account-page", database_url), full_page=True
    )
    # The path form of the same page.
    await page.goto(f"{service_url}/accounts/northwind")
    await expect(page.locator("#account-title")).to_have_text("northwind")
    await expect(page.locator("#history-chart canvas")).to_have_count(1)


async def test_sorting_by_mrr_at_risk(
    service_url: str, kafka_settings: Settings, page: Page, artifacts_dir: Path, database_url: str
) -> None:
    await _account_events(kafka_settings)
    async with httpx.AsyncClient(headers={"X-API-Key": KEY}, timeout=10.0) as client:
        await _seed(service_url, kafka_settings, client)

        async def commercial_known() -> bool:
            items = (await client.get(f"{service_url}/v1/accounts")).json()["items"]
            return all(i["mrr_at_risk"] is not None for i in items) and len(items) == 4

        await _eventually(commercial_known, "MRR of every account")
    await _open(page, service_url)
    cards = page.locator("li.account")
    await expect(cards).to_have_count(4)
    order = "els => els.map(e => e.dataset.accountId)"
    assert await cards.evaluate_all(order) == ["northwind", "globex", "initech", "hooli"]
    await page.get_by_label("Sort by").select_option("mrr_at_risk")
    await expect(cards.first).to_have_attribute("data-account-id", "hooli")
    assert await cards.evaluate_all(order) == ["hooli", "globex", "initech", "northwind"]
    await expect(cards.first).to_contain_text("5,800 at risk")
    await page.get_by_label("Sort by").select_option("renewal")
    await expect(cards.first).to_have_attribute("data-account-id", "initech")
    assert await cards.evaluate_all(order) == ["initech", "northwind", "globex", "hooli"]
    await page.get_by_label("Sort by").select_option("mrr_at_risk")
    await expect(cards.first).to_have_attribute("data-account-id", "hooli")
    await page.screenshot(
        path=_artifact(artifacts_dir, "alerts-sorted-by-mrr-at-risk", database_url),
        full_page=True,
    )


async def test_docs_render_offline_under_the_content_security_policy(
    service_url: str, page: Page
) -> None:
    """/docs draws every operation with nothing but this origin (other hosts are cut off)."""
    origin = service_url.rstrip("/")
    outside: list[str] = []

    async def only_this_origin(route: Any) -> None:
        if route.request.url.startswith(origin):
            await route.continue_()
        else:
            outside.append(route.request.url)
            await route.abort()

    await page.route("**/*", only_this_origin)
    violations: list[str] = []
    page.on(
        "console",
        lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
    )
    await page.goto(f"{service_url}/docs")
    await expect(page.locator(".opblock").first).to_be_visible()
    assert await page.locator(".opblock").count() >= 12
    await expect(page.locator(".swagger-ui .info .title")).to_contain_text("healthstream alerts")
    assert outside == []
    assert violations == []


async def test_text_from_events_is_shown_as_text_never_markup(
    service_url: str, kafka_settings: Settings, page: Page
) -> None:
    hostile_id = '<img src=x onerror="window.pwned=1">'
    alert = RiskAlert.model_validate(
        {
            **_alert("hostile", "entered_red", "critical", 1, "x").model_dump(),
            "account_id": hostile_id,
            "dedupe_key": f"hostile:{uuid.uuid4().hex[:6]}",
            "message": "<script>window.pwned=2</script><b>bold</b>",
            "drivers": [
                {
                    "feature": "usage_trend",
                    "component": "usage",
                    "contribution": -5.0,
                    "sentence": "<svg onload=window.pwned=3>",
                }
            ],
        }
    )
    await _open(page, service_url)
    await _produce(kafka_settings, kafka_settings.topics.risk_alerts, [alert])
    card = page.locator("li.account").first
    await expect(card.locator("h2")).to_have_text(hostile_id)
    await expect(card.locator(".alert-message")).to_have_text(
        "<script>window.pwned=2</script><b>bold</b>"
    )
    await expect(card.locator(".alert-drivers")).to_contain_text("<svg onload=window.pwned=3>")
    assert await card.locator("img, script, b, svg:not(.spark-svg)").count() == 0
    # Its own page, reached by the (percent-encoded) link, shows the same text safely.
    await card.locator("h2 a").click()
    await expect(page.locator("#account-title")).to_have_text(hostile_id)
    assert await page.locator("#account-view img, #account-view script").count() == 0
    assert await page.evaluate("window.pwned") is None
