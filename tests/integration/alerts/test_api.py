"""REST API over a real server and database: actions, audit, scoping, auth, filters, SSE."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.integration.alerts.conftest import ADMIN, ALICE, BOB, READER, Running
from tests.integration.alerts.helpers import (
    account_event,
    eventually,
    health_update,
    publish,
    risk_alert,
)

ALICE_CSM = "alice@example.com"
BOB_CSM = "bob@example.com"


@pytest.fixture
async def seeded(service: Running) -> Running:
    """alpha, bravo, delta belong to alice; charlie to bob."""
    settings = service.settings
    await publish(
        settings,
        settings.topics.account,
        [
            account_event("alpha", csm=ALICE_CSM, plan="pro"),
            account_event("bravo", csm=ALICE_CSM),
            account_event("charlie", csm=BOB_CSM),
            account_event("delta", csm=ALICE_CSM),
        ],
    )
    await publish(
        settings,
        settings.topics.account_health,
        [
            health_update("alpha", 80.0, 0),
            health_update("alpha", 60.0, 60),
            health_update("alpha", 35.0, 120),
            health_update("bravo", 55.0, 0),
            health_update("charlie", 20.0, 0),
            health_update("delta", 90.0, 0),
        ],
    )

    async def accounts_ready() -> bool:
        async with service.client() as client:
            items = (await client.get("/v1/accounts")).json()["items"]
        return {i["account_id"]: i["csm"] for i in items} == {
            "alpha": ALICE_CSM,
            "bravo": ALICE_CSM,
            "charlie": BOB_CSM,
            "delta": ALICE_CSM,
        } and all(i["health"] for i in items)

    await eventually(accounts_ready, what="accounts and health stored")
    await publish(
        settings,
        settings.topics.risk_alerts,
        [
            risk_alert("alpha", 1, score=35.0),
            risk_alert("alpha", 2, reason="usage_decline", severity="warning", score=35.0),
            risk_alert("bravo", 3, reason="payment_failed", severity="warning", score=55.0),
            risk_alert("charlie", 4, score=20.0),
        ],
    )

    async def alerts_ready() -> bool:
        async with service.client() as client:
            return len((await client.get("/v1/alerts")).json()["items"]) == 4

    await eventually(alerts_ready, what="alerts stored")
    return service


async def test_auth_is_required_and_scoped(seeded: Running) -> None:
    async with seeded.client(None) as anonymous:
        assert (await anonymous.get("/v1/alerts")).status_code == 401
        assert (await anonymous.get("/v1/alerts", params={"api_key": ADMIN})).status_code == 401
        bad = await anonymous.get("/v1/alerts", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
        via_header = await anonymous.get("/v1/alerts", headers={"X-API-Key": READER})
        assert via_header.status_code == 200
        for open_path in ("/healthz", "/metrics"):
            assert (await anonymous.get(open_path)).status_code == 200
        ready = await anonymous.get("/readyz")
        assert ready.status_code == 200, ready.text
    async with seeded.client(READER) as reader:
        response = await reader.post("/v1/alerts/alpha-entered_red-1/acknowledge")
        assert response.status_code == 403
        assert "alerts:write" in response.json()["detail"]
    async with seeded.client(ALICE) as alice:
        assert (await alice.get("/v1/deliveries")).status_code == 403


async def test_me_tells_the_page_who_is_signed_in_and_what_they_may_do(seeded: Running) -> None:
    async with seeded.client(ALICE) as alice:
        me = (await alice.get("/v1/me")).json()
    assert me == {
        "actor": ALICE_CSM,
        "csm": ALICE_CSM,
        "scopes": ["alerts:read", "alerts:write"],
        "can_write": True,
        "admin": False,
        "sees_all_accounts": False,
        # The routing config's owners, team and members, and the keys' CSMs.
        "assignable": [
            ALICE_CSM,
            BOB_CSM,
            "carol@example.com",
            "cs-team",
            "leads",
        ],
        "leads": [],
        "team": [],
    }
    async with seeded.client(READER) as reader:
        me = (await reader.get("/v1/me")).json()
    assert me["csm"] is None and me["actor"] == "key:read…"
    assert me["assignable"] == []
    assert (me["can_write"], me["admin"], me["sees_all_accounts"]) == (False, False, True)
    async with seeded.client(ADMIN) as admin:
        me = (await admin.get("/v1/me")).json()
    assert (me["scopes"], me["can_write"], me["admin"]) == (["admin"], True, True)
    async with seeded.client(None) as anonymous:
        assert (await anonymous.get("/v1/me")).status_code == 401
        assert (await anonymous.get("/v1/me", params={"api_key": ALICE})).status_code == 401


async def test_csm_key_sees_only_own_accounts(seeded: Running) -> None:
    async with seeded.client(ALICE) as alice:
        ids = {a["alert_id"] for a in (await alice.get("/v1/alerts")).json()["items"]}
        assert ids == {"alpha-entered_red-1", "alpha-usage_decline-2", "bravo-payment_failed-3"}
        # Bob's alert does not exist for alice: read, audit and every action are 404.
        assert (await alice.get("/v1/alerts/charlie-entered_red-4")).status_code == 404
        assert (await alice.get("/v1/alerts/charlie-entered_red-4/audit")).status_code == 404
        ack = await alice.post("/v1/alerts/charlie-entered_red-4/acknowledge")
        assert ack.status_code == 404
        assign = await alice.post(
            "/v1/alerts/charlie-entered_red-4/assign", json={"csm": ALICE_CSM}
        )
        assert assign.status_code == 404
        assert (await alice.get("/v1/accounts/charlie")).status_code == 404
        accounts = (await alice.get("/v1/accounts")).json()["items"]
        assert {a["account_id"] for a in accounts} == {"alpha", "bravo", "delta"}
        # Filtering on another CSM does not widen the view.
        other = await alice.get("/v1/alerts", params={"csm": BOB_CSM})
        assert other.json()["items"] == []
    async with seeded.client(BOB) as bob:
        ids = {a["alert_id"] for a in (await bob.get("/v1/alerts")).json()["items"]}
        assert ids == {"charlie-entered_red-4"}
    async with seeded.client(ADMIN) as admin:
        assert (await admin.get("/v1/alerts/charlie-entered_red-4")).status_code == 200


async def test_actions_and_audit(seeded: Running) -> None:
    alert = "/v1/alerts/alpha-entered_red-1"
    async with seeded.client(ALICE) as alice:
        acked = await alice.post(f"{alert}/acknowledge", json={"note": "calling them"})
        assert acked.status_code == 200, acked.text
        assert acked.json()["status"] == "acknowledged"

        past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        response = await alice.post(f"{alert}/snooze", json={"until": past})
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "until"]
        naive = await alice.post(f"{alert}/snooze", json={"until": "2030-01-01T00:00:00"})
        assert naive.status_code == 422
        assert naive.json()["detail"][0]["loc"][-1] == "until"

        until = datetime.now(UTC) + timedelta(days=2)
        snoozed = await alice.post(f"{alert}/snooze", json={"until": until.isoformat()})
        assert snoozed.json()["status"] == "snoozed"
        assert datetime.fromisoformat(snoozed.json()["snoozed_until"]) == until

        missing_note = await alice.post(f"{alert}/resolve", json={})
        assert missing_note.status_code == 422
        assert missing_note.json()["detail"][0]["loc"] == ["body", "note"]

        assigned = await alice.post(f"{alert}/assign", json={"csm": BOB_CSM})
        assert assigned.json()["assigned_csm"] == BOB_CSM
        # Now it is bob's: alice no longer sees it.
        assert (await alice.get(alert)).status_code == 404
    async with seeded.client(BOB) as bob:
        resolved = await bob.post(f"{alert}/resolve", json={"note": "renewal signed"})
        assert resolved.json()["status"] == "resolved"
        assert resolved.json()["snoozed_until"] is None
        again = await bob.post(f"{alert}/acknowledge")
        assert again.status_code == 409
        audit = (await bob.get(f"{alert}/audit")).json()["items"]
    assert [(e["action"], e["actor"]) for e in audit] == [
        ("created", "system"),
        ("acknowledged", ALICE_CSM),
        ("snoozed", ALICE_CSM),
        ("assigned", ALICE_CSM),
        ("resolved", BOB_CSM),
    ]
    assert audit[1]["details"]["note"] == "calling them"
    assert audit[3]["details"] == {"from": ALICE_CSM, "to": BOB_CSM}
    assert audit[4]["details"] == {"note": "renewal signed"}
    stamps = [datetime.fromisoformat(e["at"]) for e in audit]
    assert stamps == sorted(stamps)
    async with seeded.client(ADMIN) as admin:
        missing = await admin.post("/v1/alerts/nope/acknowledge")
        assert missing.status_code == 404


async def test_filters_and_cursor_pagination(seeded: Running) -> None:
    async with seeded.client(ADMIN) as admin:

        async def ids(**params: Any) -> list[str]:
            response = await admin.get("/v1/alerts", params=params)
            assert response.status_code == 200, response.text
            return [a["alert_id"] for a in response.json()["items"]]

        assert await ids(severity="warning") == ["bravo-payment_failed-3", "alpha-usage_decline-2"]
        assert await ids(reason="payment_failed") == ["bravo-payment_failed-3"]
        assert await ids(account_id="charlie") == ["charlie-entered_red-4"]
        assert len(await ids(csm=ALICE_CSM)) == 3
        assert len(await ids(status=["open", "snoozed"])) == 4
        assert await ids(status="resolved") == []
        # occurred_at = 09:00 + n minutes: since inclusive, until exclusive.
        window = await ids(since="2026-11-01T09:02:00Z", until="2026-11-01T09:04:00Z")
        assert window == ["bravo-payment_failed-3", "alpha-usage_decline-2"]

        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": 3}
            if cursor:
                params["cursor"] = cursor
            page = (await admin.get("/v1/alerts", params=params)).json()
            seen += [a["alert_id"] for a in page["items"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert pages == 2
        assert seen == await ids(limit=500)
        assert len(set(seen)) == 4

        for params, field in (
            ({"severity": "urgent"}, "severity"),
            ({"since": "yesterday"}, "since"),
            ({"limit": 0}, "limit"),
            ({"cursor": "%%%"}, "cursor"),
            # A repeated single-valued filter is ambiguous: refused, not "the last one wins".
            ({"account_id": ["charlie", "alpha"]}, "account_id"),
            ({"limit": [1, 2]}, "limit"),
        ):
            response = await admin.get("/v1/alerts", params=params)
            assert response.status_code == 422, params
            assert field in response.json()["detail"][0]["loc"]


async def test_accounts_views(seeded: Running) -> None:
    async with seeded.client(ADMIN) as admin:
        at_risk = (await admin.get("/v1/accounts", params={"at_risk": "true"})).json()["items"]
        # Critical before warning, then lowest score first; delta has no alert.
        assert [a["account_id"] for a in at_risk] == ["charlie", "alpha", "bravo"]
        assert [a["max_severity"] for a in at_risk] == ["critical", "critical", "warning"]
        alpha = at_risk[1]
        assert alpha["health"]["score"] == 35.0 and alpha["health"]["band"] == "red"
        assert alpha["health"]["drivers"][0]["sentence"] == "no logins for 9 days"
        assert [p["score"] for p in alpha["history"]] == [80.0, 60.0, 35.0]
        assert {a["alert_id"] for a in alpha["alerts"]} == {
            "alpha-entered_red-1",
            "alpha-usage_decline-2",
        }
        await admin.post("/v1/alerts/charlie-entered_red-4/resolve", json={"note": "saved"})
        at_risk = (await admin.get("/v1/accounts", params={"at_risk": "true"})).json()["items"]
        assert [a["account_id"] for a in at_risk] == ["alpha", "bravo"]

        detail = (await admin.get("/v1/accounts/charlie")).json()
        assert detail["csm"] == BOB_CSM
        assert [a["status"] for a in detail["alerts"]] == ["resolved"]
        assert detail["max_severity"] is None
        assert (await admin.get("/v1/accounts/unknown")).status_code == 404


async def test_openapi_and_page_are_served(seeded: Running) -> None:
    async with seeded.client(None) as anonymous:
        spec = (await anonymous.get("/openapi.json")).json()
        page = await anonymous.get("/")
    documented = {  # docs/alerts.md, "Endpoints"
        ("get", "/v1/me"),
        ("get", "/v1/alerts"),
        ("get", "/v1/alerts/{alert_id}"),
        ("post", "/v1/alerts/{alert_id}/acknowledge"),
        ("post", "/v1/alerts/{alert_id}/snooze"),
        ("post", "/v1/alerts/{alert_id}/resolve"),
        ("post", "/v1/alerts/{alert_id}/assign"),
        ("get", "/v1/alerts/{alert_id}/audit"),
        ("get", "/v1/accounts"),
        ("get", "/v1/accounts/{account_id}"),
        ("get", "/v1/deliveries"),
        ("get", "/v1/stream"),
    }
    operations = {
        (method, path): operation
        for path, methods in spec["paths"].items()
        if path.startswith("/v1/")
        for method, operation in methods.items()
    }
    assert set(operations) == documented
    for (method, path), operation in operations.items():
        where = f"{method} {path}"
        assert operation.get("security"), where  # every API operation needs a key
        assert {"200", "401", "403"} <= set(operation["responses"]), where
        if "{" in path:
            assert "404" in operation["responses"], where
        content = operation["responses"]["200"]["content"]
        if path == "/v1/stream":
            assert "text/event-stream" in content
        else:
            assert "$ref" in content["application/json"]["schema"], where
        if method == "post":
            assert "409" in operation["responses"] or path.endswith("/assign"), where
    schemas = spec["components"]["schemas"]
    for name in ("Alert", "AlertPage", "Account", "AccountList", "AuditLog", "DeliveryPage", "Me"):
        assert schemas[name]["properties"], name
    assert {"HTTPBearer", "APIKeyHeader", "APIKeyQuery"} <= set(
        spec["components"]["securitySchemes"]
    )
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")


@contextlib.asynccontextmanager
async def sse_events(
    url: str, key: str, **params: str
) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
    """Read ``event: alert`` messages into a queue, as a browser EventSource would."""
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    connected = asyncio.Event()

    async def reader() -> None:
        async with (
            httpx.AsyncClient(timeout=None) as client,
            client.stream("GET", f"{url}/v1/stream", params={"api_key": key, **params}) as response,
        ):
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            event: dict[str, str] = {}
            async for line in response.aiter_lines():
                connected.set()
                if line == "":
                    if event.get("event") == "alert":
                        await queue.put(json.loads(event["data"]))
                    event = {}
                elif not line.startswith(":"):
                    name, _, value = line.partition(": ")
                    event[name] = value

    task = asyncio.create_task(reader())
    await asyncio.wait_for(connected.wait(), 30)
    try:
        yield queue
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_stream_pushes_new_and_changed_alerts_scoped(seeded: Running) -> None:
    settings = seeded.settings
    async with sse_events(seeded.url, ALICE) as alice_events:
        await publish(
            settings,
            settings.topics.risk_alerts,
            [risk_alert("charlie", 7), risk_alert("bravo", 8, score=41.0)],
        )
        new = await asyncio.wait_for(alice_events.get(), 60)
        assert new["alert_id"] == "bravo-entered_red-8"
        assert new["status"] == "open" and new["score"] == 41.0
        async with seeded.client(ALICE) as alice:
            await alice.post("/v1/alerts/bravo-entered_red-8/acknowledge")
        changed = await asyncio.wait_for(alice_events.get(), 30)
        assert (changed["alert_id"], changed["status"]) == ("bravo-entered_red-8", "acknowledged")
        # Bob's new alert was never sent to alice.
        assert alice_events.empty()
    async with seeded.client(None) as anonymous:
        assert (await anonymous.get("/v1/stream")).status_code == 401
