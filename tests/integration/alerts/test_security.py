"""Hostile input, scoping on every route, ownership and the page's headers, over real HTTP."""

from __future__ import annotations

import asyncio
import base64

import httpx
import pytest

from tests.integration.alerts.conftest import ADMIN, ALICE, BOB, Running
from tests.integration.alerts.helpers import account_event, eventually, publish, risk_alert
from tests.integration.alerts.test_api import sse_events

ALICE_CSM = "alice@example.com"
BOB_CSM = "bob@example.com"
ALICE_ALERT = "alpha-entered_red-1"
BOB_ALERT = "charlie-entered_red-2"


@pytest.fixture
async def owned(service: Running) -> Running:
    """alpha (one alert) is alice's, charlie (one alert) is bob's."""
    settings = service.settings
    await publish(
        settings,
        settings.topics.account,
        [account_event("alpha", csm=ALICE_CSM), account_event("charlie", csm=BOB_CSM)],
    )

    async def owners_known() -> bool:
        async with service.client(ADMIN) as client:
            items = (await client.get("/v1/accounts")).json()["items"]
        return {i["account_id"]: i["csm"] for i in items} == {
            "alpha": ALICE_CSM,
            "charlie": BOB_CSM,
        }

    await eventually(owners_known, what="account owners stored")
    await publish(
        settings, settings.topics.risk_alerts, [risk_alert("alpha", 1), risk_alert("charlie", 2)]
    )

    async def stored() -> bool:
        async with service.client(ADMIN) as client:
            return len((await client.get("/v1/alerts")).json()["items"]) == 2

    await eventually(stored, what="both alerts stored")
    return service


async def test_a_csm_key_cannot_read_stream_or_change_another_csms_alert(owned: Running) -> None:
    async with owned.client(BOB) as bob:
        assert (await bob.get(f"/v1/alerts/{ALICE_ALERT}")).status_code == 404
        assert (await bob.get(f"/v1/alerts/{ALICE_ALERT}/audit")).status_code == 404
        listed = (await bob.get("/v1/alerts", params={"account_id": "alpha"})).json()["items"]
        assert listed == []
        assert [a["alert_id"] for a in (await bob.get("/v1/alerts")).json()["items"]] == [BOB_ALERT]
        accounts = (await bob.get("/v1/accounts")).json()["items"]
        assert [a["account_id"] for a in accounts] == ["charlie"]
        assert (await bob.get("/v1/accounts/alpha")).status_code == 404
        actions = {
            "acknowledge": {},
            "snooze": {"until": "2999-01-01T00:00:00Z"},
            "resolve": {"note": "not mine"},
            "assign": {"csm": BOB_CSM},
        }
        for action, body in actions.items():
            response = await bob.post(f"/v1/alerts/{ALICE_ALERT}/{action}", json=body)
            assert response.status_code == 404, (action, response.text)
        # An unknown CSM on another CSM's alert is still a 404: no existence oracle.
        response = await bob.post(f"/v1/alerts/{ALICE_ALERT}/assign", json={"csm": "x@evil"})
        assert response.status_code == 404
        assert (await bob.get("/v1/deliveries")).status_code == 403
    async with owned.client(ADMIN) as admin:
        untouched = (await admin.get(f"/v1/alerts/{ALICE_ALERT}")).json()
        assert (untouched["status"], untouched["assigned_csm"]) == ("open", ALICE_CSM)
        audit = (await admin.get(f"/v1/alerts/{ALICE_ALERT}/audit")).json()["items"]
        assert [e["action"] for e in audit] == ["created"]

    # The stream: bob hears about his alert's change, never about alice's.
    async with sse_events(owned.url, BOB) as bob_events:
        async with owned.client(ALICE) as alice:
            assert (await alice.post(f"/v1/alerts/{ALICE_ALERT}/acknowledge")).status_code == 200
        async with owned.client(BOB) as bob:
            assert (await bob.post(f"/v1/alerts/{BOB_ALERT}/acknowledge")).status_code == 200
        first = await asyncio.wait_for(bob_events.get(), 30)
        assert first["alert_id"] == BOB_ALERT
        assert bob_events.empty()


async def test_assign_takes_only_known_csms_and_is_audited(owned: Running) -> None:
    async with owned.client(ADMIN) as admin:
        response = await admin.post(
            f"/v1/alerts/{ALICE_ALERT}/assign", json={"csm": "nobody@nowhere.example"}
        )
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "csm"]
        # A team member of the routing config is known.
        response = await admin.post(
            f"/v1/alerts/{ALICE_ALERT}/assign", json={"csm": "carol@example.com"}
        )
        assert response.status_code == 200, response.text
        audit = (await admin.get(f"/v1/alerts/{ALICE_ALERT}/audit")).json()["items"]
        assert audit[-1]["action"] == "assigned"
        assert audit[-1]["details"] == {"from": ALICE_CSM, "to": "carol@example.com"}
        assert audit[-1]["actor"].startswith("key:")


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


async def test_hostile_input_gets_a_small_4xx_json_answer(owned: Running) -> None:
    limit = owned.settings.alerts_max_body_bytes
    async with owned.client(ADMIN) as admin:
        cursors = {
            "/v1/alerts": [_cursor("2026-11-01T09:00:00+00:00|" + "9" * 40), _cursor("9" * 30)],
            "/v1/deliveries": [_cursor("9" * 30), _cursor("-1"), _cursor("1" * 60)],
        }
        for path, values in cursors.items():
            for cursor in values:
                response = await admin.get(path, params={"cursor": cursor})
                assert response.status_code == 422, (path, cursor, response.text)
                assert response.json()["detail"][0]["loc"] == ["query", "cursor"]

        for raw in (b'{"until": NaN}', b'{"until": Infinity}', b'{"until": "\\ud800"}'):
            response = await admin.post(
                f"/v1/alerts/{ALICE_ALERT}/snooze",
                content=raw,
                headers={"Content-Type": "application/json"},
            )
            assert response.status_code == 422, (raw, response.text)
            assert response.json()["detail"][0]["loc"][:2] == ["body", "until"]

        # A big invalid body just under the limit: a short answer that does not echo it.
        note = "x" * (limit - 100)
        response = await admin.post(f"/v1/alerts/{ALICE_ALERT}/acknowledge", json={"note": note})
        assert response.status_code == 422
        assert len(response.content) < 2000
        assert "xxxxxxxxxx" not in response.text
        assert response.json()["detail"][0]["loc"] == ["body", "note"]

        # Over the limit: 413 with a JSON body, declared or streamed without a length.
        big = b'{"note": "' + b"y" * (limit + 10) + b'"}'
        response = await admin.post(
            f"/v1/alerts/{ALICE_ALERT}/acknowledge",
            content=big,
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 413
        assert "at most" in response.json()["detail"]

        async def chunks():  # type: ignore[no-untyped-def]
            for start in range(0, len(big), 8192):
                yield big[start : start + 8192]

        response = await admin.post(
            f"/v1/alerts/{ALICE_ALERT}/acknowledge",
            content=chunks(),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 413
        assert "at most" in response.json()["detail"]
        # The service keeps serving, and nothing was changed by the refused requests.
        alert = (await admin.get(f"/v1/alerts/{ALICE_ALERT}")).json()
        assert alert["status"] == "open"


async def test_page_and_docs_are_locked_to_this_origin(owned: Running) -> None:
    async with httpx.AsyncClient(base_url=owned.url, timeout=30) as client:
        for path in ("/", "/app.js", "/docs", "/v1/me"):
            response = await client.get(path)
            csp = response.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["x-content-type-options"] == "nosniff"
        docs = (await client.get("/docs")).text
        assert "/docs-assets/swagger-ui-bundle.js" in docs
        assert "https://" not in docs and "<script>" not in docs
        bundle = await client.get("/docs-assets/swagger-ui-bundle.js")
        assert bundle.status_code == 200 and len(bundle.content) > 100_000
        assert (await client.get("/docs-assets/swagger-ui.css")).status_code == 200
        init = await client.get("/docs-init.js")
        assert init.status_code == 200 and "SwaggerUIBundle" in init.text
        chart = await client.get("/vendor/uplot/uPlot.iife.min.js")
        assert chart.status_code == 200 and "uPlot" in chart.text
