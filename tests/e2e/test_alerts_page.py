"""The CSM page in a real headless Chromium against the real alerts service.

The service runs in this process on a free port, on a real SQLite file and on a
fresh PostgreSQL database (the ``database_url`` fixture), and consumes the
session's embedded broker. Alerts and health updates reach it the way they do
in production: as ``RiskAlert`` / ``HealthUpdate`` messages on its topics.
Nothing is written into its database behind its back.

What a CSM does is what the test does: open the page with the key in the URL,
see the accounts in triage order, acknowledge an alert, resolve one with a note,
watch a teammate's change and a brand-new alert arrive live over SSE.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from healthstream.broker import free_port
from healthstream.kafka import make_producer
from healthstream.settings import Settings
from schemas import Components, Driver, HealthUpdate, RiskAlert
from services.alerts.app import serve
from services.alerts.settings import AlertsSettings
from tests.integration.alerts.helpers import FIXTURES_ARE_LIVE_HOURS

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
KEY = "page-test-key"
#: Alice's read-only key: sees only her accounts, may not act.
ALICE_READ_KEY = "alice-read-key"
# The machine is shared by many processes: generous waits, never timed assertions.
UI_TIMEOUT_MS = 30_000
API_TIMEOUT_S = 60.0

NOW = datetime.now(UTC).replace(microsecond=0)


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """One Debian Chromium for the session (installed by scripts/install-system-packages.sh)."""
    assert CHROMIUM.exists(), (
        f"{CHROMIUM} is missing: run `bash scripts/install-system-packages.sh`"
    )
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


#: The team the routing config names: ``assign`` accepts only known CSMs.
ROUTING = """
default_owner = "cs-team"
csms = ["alice@example.com", "bob@example.com", "carol@example.com",
        "dave@example.com", "erin@example.com"]
"""


@pytest.fixture
async def alerts_url(
    kafka_settings: Settings, database_url: str, tmp_path: Path
) -> AsyncIterator[str]:
    """The whole alerts service (migrations, consumer, outbox, API, page) on a free port."""
    routing = tmp_path / "routing.toml"
    routing.write_text(ROUTING)
    settings = AlertsSettings(
        alerts_backfill_after_hours=FIXTURES_ARE_LIVE_HOURS,
        alerts_routing_path=routing,
        kafka_bootstrap_servers=kafka_settings.kafka_bootstrap_servers,
        kafka_enable_idempotence=False,
        topic_prefix=kafka_settings.topic_prefix,
        partitions=kafka_settings.partitions,
        database_url=database_url,
        api_keys=f"{KEY}:alerts:read+alerts:write,{ALICE_READ_KEY}:alerts:read@alice@example.com",
        host="127.0.0.1",
        alerts_consumer_group=f"page-test-{uuid.uuid4().hex[:8]}",
        alerts_stream_keepalive=1.0,
        log_json=False,
        _env_file=None,
    )
    async with serve(settings, free_port("127.0.0.1")) as url:
        yield url


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    opened = await context.new_page()
    opened.set_default_timeout(UI_TIMEOUT_MS)
    expect.set_options(timeout=UI_TIMEOUT_MS)
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield opened
    finally:
        # Closing the page ends its EventSource before the server shuts down.
        await context.close()
    assert not errors, f"uncaught JavaScript errors on the page: {errors}"


# ----------------------------------------------------------------- test data


def _drivers(*items: tuple[str, str, float, str]) -> list[Driver]:
    return [
        Driver(component=component, feature=feature, contribution=points, sentence=sentence)
        for component, feature, points, sentence in items
    ]


ACCOUNTS: dict[str, dict[str, Any]] = {
    "northwind": {
        "csm": "alice@example.com",
        "scores": [82, 80, 79, 74, 70, 66, 61, 55, 48, 41, 36, 31, 28],
        "drivers": _drivers(
            ("billing", "payment_failures_30d", -18.0, "2 failed payments in the last 30 days"),
            ("usage", "usage_trend", -11.0, "usage down 48% vs last 4 weeks"),
            ("support", "tickets_past_sla", -4.0, "1 urgent ticket past SLA"),
        ),
    },
    "globex": {
        "csm": "bob@example.com",
        "scores": [75, 73, 74, 70, 66, 63, 60, 55, 52, 50, 47, 45, 44],
        "drivers": _drivers(
            ("usage", "days_inactive", -15.0, "no logins for 12 days"),
            ("sentiment", "nps", -6.0, "NPS 3 (detractor)"),
        ),
    },
    "initech": {
        "csm": "alice@example.com",
        "scores": [79, 78, 76, 75, 73, 70, 69, 66, 64, 62, 61, 59, 58],
        "drivers": _drivers(
            ("usage", "usage_trend", -9.0, "usage down 35% vs last 4 weeks"),
            ("engagement", "active_user_ratio", -5.0, "only 4 of 20 seats active"),
        ),
    },
    "hooli": {
        "csm": "carol@example.com",
        "scores": [86, 85, 85, 84, 82, 80, 79, 77, 76, 75, 73, 72, 71],
        "drivers": _drivers(
            ("lifecycle", "days_to_renewal", -6.0, "renewal in 21 days"),
            ("usage", "feature_breadth", 4.0, "uses 9 features"),
        ),
    },
}


def _band(score: float) -> str:
    return "red" if score <= 50 else "yellow" if score <= 75 else "green"


def _health_updates() -> list[HealthUpdate]:
    updates = []
    for account_id, spec in ACCOUNTS.items():
        scores = spec["scores"]
        for index, score in enumerate(scores):
            updates.append(
                HealthUpdate(
                    account_id=account_id,
                    as_of=NOW - timedelta(days=2 * (len(scores) - 1 - index)),
                    score=score,
                    band=_band(score),
                    churn_probability=round(1 - score / 100, 2),
                    components=Components(
                        usage=score,
                        engagement=score,
                        support=score,
                        billing=score,
                        sentiment=score,
                        lifecycle=score,
                    ),
                    drivers=spec["drivers"],
                    model_version="scorecard-test",
                )
            )
    return updates


# Drivers of the account that shows up only once the page is open.
NEW_DRIVERS = _drivers(
    ("usage", "usage_trend", -21.0, "usage down 71% vs last 4 weeks"),
    ("billing", "downgrade", -9.0, "downgraded from enterprise to pro"),
)


def _alert(
    account_id: str, reason: str, severity: str, minutes_ago: int, message: str
) -> RiskAlert:
    spec = ACCOUNTS.get(account_id)
    score = spec["scores"][-1] if spec else 19.0
    previous = spec["scores"][-4] if spec else 47.0
    return RiskAlert.model_validate(
        {
            "alert_id": f"{account_id}-{reason}-{uuid.uuid4().hex[:6]}",
            "dedupe_key": f"{account_id}:{reason}:1",
            "account_id": account_id,
            "reason": reason,
            "severity": severity,
            "score": score,
            "previous_score": previous,
            "drivers": [d.model_dump() for d in (spec["drivers"] if spec else NEW_DRIVERS)],
            "occurred_at": NOW - timedelta(minutes=minutes_ago),
            "csm": spec["csm"] if spec else "bob@example.com",
            "message": message,
        }
    )


SEEDED = [
    _alert("northwind", "payment_failed", "critical", 4, "Payment of $4,800 failed twice"),
    _alert("northwind", "usage_decline", "warning", 30, "Weekly active users down 48%"),
    _alert("globex", "entered_red", "critical", 12, "Globex entered the red band (44)"),
    _alert("initech", "usage_decline", "warning", 25, "Usage down 35% in 4 weeks"),
    _alert("hooli", "renewal_at_risk", "info", 50, "Renewal in 21 days with a falling score"),
]
# Critical first, then lowest score: the order a CSM triages in.
TRIAGE_ORDER = ["northwind", "globex", "initech", "hooli"]


# Visible buttons and form fields without an accessible name (label, aria-label or text).
UNLABELLED_CONTROLS = """() => [...document.querySelectorAll('button, input, select, textarea')]
    .filter((el) => el.offsetParent !== null)
    .filter((el) => !(el.getAttribute('aria-label') || (el.labels && el.labels.length)
                      || el.textContent.trim()))
    .map((el) => el.outerHTML.slice(0, 160))"""


async def _produce(
    settings: Settings, topic: str, messages: Sequence[HealthUpdate | RiskAlert]
) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        for message in messages:
            await producer.send_and_wait(
                topic,
                key=message.account_id.encode(),
                value=orjson.dumps(message.model_dump(mode="json")),
            )
    finally:
        await producer.stop()


async def _eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll until the service has caught up; the deadline only guards against a hang."""
    deadline = time.monotonic() + API_TIMEOUT_S
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def _seed(alerts_url: str, settings: Settings, client: httpx.AsyncClient) -> None:
    await _produce(settings, settings.topics.account_health, _health_updates())
    await _produce(settings, settings.topics.risk_alerts, SEEDED)

    async def stored() -> bool:
        response = await client.get(f"{alerts_url}/v1/accounts", params={"at_risk": "true"})
        response.raise_for_status()
        items = response.json()["items"]
        full = [
            a
            for a in items
            if a["health"] and len(a["history"]) == len(ACCOUNTS[a["account_id"]]["scores"])
        ]
        return len(full) == len(ACCOUNTS) and sum(len(a["alerts"]) for a in items) == len(SEEDED)

    await _eventually(stored, "the seeded alerts and health history to be stored")


# --------------------------------------------------------------------- tests


async def test_csm_triages_alerts_live(
    alerts_url: str,
    kafka_settings: Settings,
    database_url: str,
    page: Page,
    artifacts_dir: Path,
) -> None:
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    async with httpx.AsyncClient(headers={"X-API-Key": KEY}, timeout=10.0) as client:
        await _seed(alerts_url, kafka_settings, client)

        # Open the page the way the demo link does: the key rides in the fragment.
        await page.goto(f"{alerts_url}/#key={KEY}")
        cards = page.locator("li.account")
        await expect(cards).to_have_count(len(TRIAGE_ORDER))
        assert await cards.evaluate_all("els => els.map(e => e.dataset.accountId)") == TRIAGE_ORDER
        assert "key=" not in page.url, "the API key must not stay in the address bar"
        assert await page.evaluate("localStorage.getItem('healthstream.apiKey')") == KEY
        await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
        # GET /v1/me names the key (it has no CSM) and, as it may write, no badge.
        await expect(page.locator("#whoami")).to_have_text("Signed in as key:page…")

        # Accessible: every visible control has a name, updates go to a live region.
        assert await page.evaluate(UNLABELLED_CONTROLS) == []
        await expect(page.locator("#toasts")).to_have_attribute("aria-live", "polite")

        # Score, band, drivers in words and the score history of the worst account.
        northwind = page.locator("li.account[data-account-id='northwind']")
        await expect(northwind).to_have_class("account band-red")
        await expect(northwind.locator(".score-num")).to_have_text("28")
        await expect(northwind.locator(".drivers")).to_contain_text(
            "2 failed payments in the last 30 days"
        )
        await expect(
            northwind.get_by_role("img", name="Score history for northwind")
        ).to_have_attribute("aria-label", "Score history for northwind: from 82 to 28 over 24 days")
        assert await northwind.locator("svg .spark-line").count() == 1
        await expect(northwind.locator("li.alert")).to_have_count(2)

        # Acknowledge the critical alert: the row changes in place, and the server agrees.
        payment = next(a for a in SEEDED if a.reason == "payment_failed")
        row = page.locator(f"li.alert[data-alert-id='{payment.alert_id}']")
        await row.get_by_role("button", name="Acknowledge: Payment failed for northwind").click()
        await expect(row).to_have_attribute("data-status", "acknowledged")
        await expect(row.locator(".status-chip")).to_have_text("Acknowledged")
        await expect(
            row.get_by_role("button", name="Acknowledge: Payment failed for northwind")
        ).to_have_count(0)
        stored = (await client.get(f"{alerts_url}/v1/alerts/{payment.alert_id}")).json()
        assert stored["status"] == "acknowledged"
        audit = (await client.get(f"{alerts_url}/v1/alerts/{payment.alert_id}/audit")).json()
        assert [entry["action"] for entry in audit["items"]] == ["created", "acknowledged"]
        # ... and the page shows who did what.
        await row.get_by_role("button", name="History: Payment failed for northwind").click()
        history = row.get_by_role("list", name="Alert history")
        await expect(history.locator("li")).to_have_count(2)
        await expect(history.locator("li").nth(1)).to_contain_text("Acknowledged")
        await expect(history.locator("li").nth(1)).to_contain_text(audit["items"][1]["actor"])

        # Resolve with a note through the dialog: the only alert of globex goes, and the card too.
        globex_alert = next(a for a in SEEDED if a.account_id == "globex")
        globex = page.locator("li.account[data-account-id='globex']")
        await globex.get_by_role("button", name="Resolve: Entered the red band for globex").click()
        dialog = page.get_by_role("dialog", name="Resolve alert")
        await expect(dialog).to_be_visible()
        await dialog.get_by_label("What was done").fill("Called the champion; usage plan agreed.")
        await dialog.get_by_role("button", name="Resolve").click()
        await expect(dialog).to_be_hidden()
        await expect(globex).to_have_count(0)
        resolved = (await client.get(f"{alerts_url}/v1/alerts/{globex_alert.alert_id}")).json()
        assert resolved["status"] == "resolved"

        # A teammate reassigns an alert elsewhere: the open page shows it without reloading.
        initech_alert = next(a for a in SEEDED if a.account_id == "initech")
        response = await client.post(
            f"{alerts_url}/v1/alerts/{initech_alert.alert_id}/assign",
            json={"csm": "dave@example.com"},
        )
        assert response.status_code == 200, response.text
        initech_row = page.locator(f"li.alert[data-alert-id='{initech_alert.alert_id}']")
        await expect(initech_row).to_contain_text("assigned to dave@example.com")

        # Snooze through the dialog (a quick choice): it leaves the "needs action" view.
        usage = next(a for a in SEEDED if a.account_id == "northwind" and a.severity == "warning")
        await northwind.get_by_role("button", name="Snooze: Usage declining for northwind").click()
        dialog = page.get_by_role("dialog", name="Snooze alert")
        await dialog.get_by_role("button", name="1 hour").click()
        await dialog.get_by_role("button", name="Snooze", exact=True).click()
        await expect(dialog).to_be_hidden()
        await expect(page.locator(f"li.alert[data-alert-id='{usage.alert_id}']")).to_have_count(0)
        snoozed = (await client.get(f"{alerts_url}/v1/alerts/{usage.alert_id}")).json()
        assert snoozed["status"] == "snoozed"
        assert datetime.fromisoformat(snoozed["snoozed_until"]) > datetime.now(UTC)

        # Assign through the dialog.
        hooli_alert = next(a for a in SEEDED if a.account_id == "hooli")
        hooli = page.locator("li.account[data-account-id='hooli']")
        await hooli.get_by_role("button", name="Assign: Renewal at risk for hooli").click()
        dialog = page.get_by_role("dialog", name="Assign alert")
        await dialog.get_by_label("Assign to CSM").fill("erin@example.com")
        await dialog.get_by_role("button", name="Assign", exact=True).click()
        await expect(dialog).to_be_hidden()
        await expect(hooli.locator("li.alert")).to_contain_text("assigned to erin@example.com")
        assigned = (await client.get(f"{alerts_url}/v1/alerts/{hooli_alert.alert_id}")).json()
        assert assigned["assigned_csm"] == "erin@example.com"

        # A brand-new alert on the topic appears live, at the top, and is announced.
        marker = await page.evaluate("document.querySelector('li.account').dataset.marker = 'kept'")
        assert marker == "kept"
        fresh = _alert(
            "stark-industries", "model_risk_spike", "critical", 0, "Churn risk jumped to 0.71"
        )
        await _produce(kafka_settings, kafka_settings.topics.risk_alerts, [fresh])
        await expect(cards.first).to_have_attribute("data-account-id", "stark-industries")
        await expect(page.locator(f"li.alert[data-alert-id='{fresh.alert_id}']")).to_contain_text(
            "Churn risk spiked"
        )
        await expect(page.locator("#toasts")).to_contain_text("New critical alert")
        # Live update, not a reload: the element marked before the alert is still there.
        await expect(page.locator("li.account[data-marker='kept']")).to_have_count(1)
        assert await cards.evaluate_all("els => els.map(e => e.dataset.accountId)") == [
            "stark-industries",
            "northwind",
            "initech",
            "hooli",
        ]

        # Filters: severity is asked from the server, "My accounts" is applied on the page.
        await page.get_by_label("Severity").select_option("critical")
        await expect(cards).to_have_count(2)
        assert await cards.evaluate_all("els => els.map(e => e.dataset.accountId)") == [
            "stark-industries",
            "northwind",
        ]
        await page.get_by_label("Severity").select_option("")
        await expect(cards).to_have_count(4)
        await page.get_by_label("My accounts").check()
        await page.get_by_label("I am").fill("alice@example.com")
        await expect(cards).to_have_count(2)
        assert await cards.evaluate_all("els => els.map(e => e.dataset.accountId)") == [
            "northwind",
            "initech",
        ]
        await page.get_by_label("My accounts").uncheck()
        await expect(cards).to_have_count(4)

        # The screenshot a human looks at: wait for the toasts to fade so nothing is covered.
        await expect(page.locator(".toast")).to_have_count(0)
        name = (
            "alerts-page.png" if database_url.startswith("sqlite") else "alerts-page-postgres.png"
        )
        await page.screenshot(path=str(artifacts_dir / name), full_page=True)
    # Every request the page made succeeded (a failed fetch logs a console error).
    assert console_errors == []


async def test_page_asks_for_a_key_and_rejects_a_wrong_one(alerts_url: str, page: Page) -> None:
    await page.goto(alerts_url)
    form = page.get_by_role("region", name="Sign in with your API key")
    await expect(form).to_be_visible()
    await expect(page.locator("#main")).to_be_hidden()

    await page.get_by_label("API key", exact=True).fill("not-a-key")
    await page.get_by_role("button", name="Open alerts").click()
    await expect(page.locator("#key-error")).to_contain_text("not accepted")
    await expect(form).to_be_visible()

    await page.get_by_label("API key", exact=True).fill(KEY)
    await page.get_by_role("button", name="Open alerts").click()
    await expect(page.locator("#main")).to_be_visible()
    await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    await expect(page.locator("#empty")).to_be_visible()
    assert await page.evaluate("localStorage.getItem('healthstream.apiKey')") == KEY


async def test_read_only_csm_key_sees_own_accounts_without_actions(
    alerts_url: str, kafka_settings: Settings, page: Page, artifacts_dir: Path, database_url: str
) -> None:
    async with httpx.AsyncClient(headers={"X-API-Key": KEY}, timeout=10.0) as client:
        await _seed(alerts_url, kafka_settings, client)
    await page.goto(f"{alerts_url}/#key={ALICE_READ_KEY}")
    cards = page.locator("li.account")
    # The server scopes the key to alice: bob's and carol's accounts do not exist for her.
    await expect(cards).to_have_count(2)
    assert await cards.evaluate_all("els => els.map(e => e.dataset.accountId)") == [
        "northwind",
        "initech",
    ]
    whoami = page.locator("#whoami")
    await expect(whoami).to_contain_text("Signed in as alice@example.com")
    await expect(whoami.locator(".role-badge")).to_have_text("Read only")
    # Alerts are listed, but a read-only key is offered no action it could only fail.
    await expect(page.locator("li.alert")).to_have_count(3)
    await expect(page.locator(".alert-actions button")).to_have_count(0)
    await expect(
        page.get_by_role("button", name="History: Payment failed for northwind")
    ).to_be_visible()
    # "My accounts" knows who she is: nothing to type.
    await page.get_by_label("My accounts").check()
    await expect(page.locator("#me-field")).to_be_hidden()
    await expect(cards).to_have_count(2)
    name = "alerts-page-read-only" + ("" if database_url.startswith("sqlite") else "-postgres")
    await page.screenshot(path=str(artifacts_dir / f"{name}.png"), full_page=True)
