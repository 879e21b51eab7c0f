"""Who owns an account: the routing config, or account events from a trusted source.

``properties.csm`` travels on any event (an unsigned Segment track, any API
client) and the scorer copies it into the alerts it raises. Were it trusted, a
sender could route an account's alerts to themself, or to a name nobody has so
they vanish from every view. Here a real service on the real broker and
database gets such claims and must ignore them (counted), keep the owner the
routing config or the CRM gave, and record every owner change with its cause.
"""

from __future__ import annotations

from typing import Any

from tests.integration.alerts.conftest import ADMIN, ALICE, BOB, Running
from tests.integration.alerts.helpers import (
    CRM,
    account_event,
    eventually,
    metric,
    parse_metrics,
    publish,
    risk_alert,
)

ALICE_CSM = "alice@example.com"
BOB_CSM = "bob@example.com"
MALLORY = "mallory@evil.example"
IGNORED = "healthstream_alerts_owner_claims_ignored_total"


async def _get(service: Running, path: str, key: str = ADMIN) -> Any:
    async with service.client(key) as client:
        response = await client.get(path)
        assert response.status_code == 200, (path, response.text)
        return response.json()


async def _ignored(service: Running) -> float:
    async with service.client(None) as client:
        return metric(parse_metrics((await client.get("/metrics")).text), IGNORED)


async def test_only_trusted_sources_and_routing_decide_who_owns_an_account(
    service: Running,
) -> None:
    settings = service.settings
    ignored_before = await _ignored(service)
    await publish(settings, settings.topics.account, [account_event("acme", 0, csm=ALICE_CSM)])

    async def owned_by(account_id: str, csm: str) -> bool:
        async with service.client(ADMIN) as client:
            response = await client.get(f"/v1/accounts/{account_id}")
            return response.status_code == 200 and response.json()["csm"] == csm

    await eventually(lambda: owned_by("acme", ALICE_CSM), what="the CRM's owner stored")

    # The scorer copies properties.csm of any event into its alerts: not an owner.
    await publish(
        settings,
        settings.topics.risk_alerts,
        [risk_alert("acme", 1, csm=MALLORY), risk_alert("beta", 2, csm=MALLORY)],
    )

    async def stored() -> dict[str, Any]:
        items = (await _get(service, "/v1/alerts"))["items"]
        return {a["account_id"]: a for a in items} if len(items) == 2 else {}

    alerts = await eventually(stored, what="both alerts stored")
    assert alerts["acme"]["assigned_csm"] == ALICE_CSM
    assert alerts["beta"]["assigned_csm"] == "cs-team"  # the routing config's default owner

    # Account events whose source is not trusted: their csm is ignored, and counted.
    await publish(
        settings,
        settings.topics.account,
        [
            account_event("acme", 1, source="segment", csm=MALLORY),
            account_event("acme", 2, source=None, csm=MALLORY),
            account_event("beta", 3, source="api", csm=MALLORY, plan="pro"),
        ],
    )

    async def claims_ignored() -> bool:
        return await _ignored(service) - ignored_before == 3

    await eventually(claims_ignored, what="three untrusted owner claims counted")
    assert (await _get(service, "/v1/accounts/acme"))["csm"] == ALICE_CSM
    assert (await _get(service, "/v1/accounts/beta"))["csm"] == "cs-team"
    alerts = {a["account_id"]: a for a in (await _get(service, "/v1/alerts"))["items"]}
    assert alerts["acme"]["assigned_csm"] == ALICE_CSM
    assert alerts["beta"]["assigned_csm"] == "cs-team"

    # The CRM moves acme to bob: the open alert follows, and the change is on record.
    await publish(settings, settings.topics.account, [account_event("acme", 4, csm=BOB_CSM)])
    await eventually(lambda: owned_by("acme", BOB_CSM), what="the CRM's new owner stored")

    async def alert_followed() -> bool:
        alert = await _get(service, "/v1/alerts/acme-entered_red-1")
        return bool(alert["assigned_csm"] == BOB_CSM)

    await eventually(alert_followed, what="acme's open alert to follow its new owner")
    history = (await _get(service, "/v1/accounts/acme/owners"))["items"]
    assert [
        (h["previous"], h["csm"], h["cause"], h["event_id"], h["event_source"]) for h in history
    ] == [
        (None, ALICE_CSM, "event", "acct-acme-0", CRM),
        (ALICE_CSM, BOB_CSM, "event", "acct-acme-4", CRM),
    ]
    beta = (await _get(service, "/v1/accounts/beta/owners"))["items"]
    assert [(h["previous"], h["csm"], h["cause"], h["event_id"]) for h in beta] == [
        (None, "cs-team", "routing", None),
    ]
    audit = (await _get(service, "/v1/alerts/acme-entered_red-1/audit"))["items"]
    assert audit[-1]["action"] == "assigned"
    assert audit[-1]["details"] == {"from": ALICE_CSM, "to": BOB_CSM, "cause": "acct-acme-4"}

    # The history is scoped like the account: bob (the owner now) reads it, alice does not.
    assert len((await _get(service, "/v1/accounts/acme/owners", BOB))["items"]) == 2
    async with service.client(ALICE) as alice:
        assert (await alice.get("/v1/accounts/acme/owners")).status_code == 404
