"""Team scope on every route: a CSM sees only their own accounts, a lead exactly their tree.

Teams (routing config): europe (lead lena) > emea (lead erin: alice, bob) > dach (dora);
americas (lead sam: carl), a separate tree.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from healthstream.broker import free_port
from healthstream.settings import parse_api_keys
from services.alerts.app import serve
from services.alerts.settings import AlertsSettings
from tests.integration.alerts.conftest import ADMIN, Running
from tests.integration.alerts.helpers import eventually, publish, risk_alert
from tests.integration.alerts.test_api import sse_events

PEOPLE = ["lena", "erin", "alice", "bob", "dora", "sam", "carl"]
KEYS = {person: f"{person}-key" for person in PEOPLE}
TEAMS = """
[teams.europe]
lead = "lena"

[teams.emea]
members = ["alice", "bob"]
lead = "erin"
parent = "europe"

[teams.dach]
members = ["dora"]
parent = "emea"

[teams.americas]
members = ["carl"]
lead = "sam"

[[webhooks]]
name = "all"
owner = "*"
url = "{url}/json"
secret = "s"
"""
#: Every account is owned by the person of the same name (``acct-<person>``).
OWNED = {person: f"acct-{person}" for person in PEOPLE}
#: What each key sees with the default (team) view.
TREE = {
    "lena": {"lena", "erin", "alice", "bob", "dora"},
    "erin": {"erin", "alice", "bob", "dora"},
    "sam": {"sam", "carl"},
    "alice": {"alice"},
    "bob": {"bob"},
    "dora": {"dora"},
    "carl": {"carl"},
}


def accounts(people: set[str]) -> set[str]:
    return {OWNED[p] for p in people}


def alert_id(person: str) -> str:
    return f"{OWNED[person]}-entered_red-0"


@pytest.fixture
async def teams_service(alerts_settings: AlertsSettings, tmp_path: Path) -> AsyncIterator[Running]:
    routing = tmp_path / "teams.toml"
    routing.write_text(TEAMS.format(url="http://127.0.0.1:9"))
    keys = ",".join(f"{key}:alerts:read+alerts:write@{p}" for p, key in KEYS.items())
    settings = alerts_settings.model_copy(
        update={
            "alerts_routing_path": routing,
            "api_keys": [*alerts_settings.api_keys, *parse_api_keys(keys)],
        }
    )
    async with serve(settings, free_port(), deliver=False) as url:
        running = Running(url, settings)
        await publish(
            settings,
            settings.topics.risk_alerts,
            [risk_alert(OWNED[p], 0, csm=p) for p in PEOPLE],
        )

        async def stored() -> bool:
            async with running.client(ADMIN) as client:
                items = (await client.get("/v1/alerts", params={"limit": 100})).json()["items"]
            return len(items) == len(PEOPLE)

        await eventually(stored, what="every alert stored")
        yield running


async def test_list_and_get_alerts_and_accounts_follow_the_tree(teams_service: Running) -> None:
    for person, tree in TREE.items():
        async with teams_service.client(KEYS[person]) as client:
            alerts = (await client.get("/v1/alerts", params={"limit": 100})).json()["items"]
            assert {a["account_id"] for a in alerts} == accounts(tree), person
            listed = (await client.get("/v1/accounts")).json()["items"]
            assert {a["account_id"] for a in listed} == accounts(tree), person
            mine = (await client.get("/v1/alerts", params={"view": "mine"})).json()["items"]
            assert {a["account_id"] for a in mine} == {OWNED[person]}, person
            for other in PEOPLE:
                visible = other in tree
                got = await client.get(f"/v1/alerts/{alert_id(other)}")
                assert got.status_code == (200 if visible else 404), (person, other)
                audit = await client.get(f"/v1/alerts/{alert_id(other)}/audit")
                assert audit.status_code == (200 if visible else 404), (person, other)
                account = await client.get(f"/v1/accounts/{OWNED[other]}")
                assert account.status_code == (200 if visible else 404), (person, other)
                if visible:
                    assert {a["alert_id"] for a in account.json()["alerts"]} == {alert_id(other)}
    async with teams_service.client(ADMIN) as admin:
        everything = (await admin.get("/v1/accounts")).json()["items"]
        assert {a["account_id"] for a in everything} == accounts(set(PEOPLE))
        bad = await admin.get("/v1/alerts", params={"view": "mine"})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "view"]
        bad = await admin.get("/v1/accounts", params={"view": "everyone"})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "view"]


async def test_me_names_the_led_tree(teams_service: Running) -> None:
    async with teams_service.client(KEYS["erin"]) as erin:
        me = (await erin.get("/v1/me")).json()
    assert me["leads"] == ["emea", "dach"]
    assert set(me["team"]) == {"alice", "bob", "dora", "emea", "dach"}
    assert me["sees_all_accounts"] is False
    async with teams_service.client(KEYS["alice"]) as alice:
        me = (await alice.get("/v1/me")).json()
    assert me["leads"] == [] and me["team"] == []


async def test_actions_only_inside_the_tree(teams_service: Running) -> None:
    until = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    actions = [
        ("acknowledge", {}),
        ("snooze", {"until": until}),
        ("assign", {"csm": "bob"}),
        ("resolve", {"note": "called them"}),
    ]
    async with teams_service.client(KEYS["alice"]) as alice:
        for action, body in actions:
            for other in ("bob", "carl", "erin"):
                answer = await alice.post(f"/v1/alerts/{alert_id(other)}/{action}", json=body)
                assert answer.status_code == 404, (action, other)
    async with teams_service.client(KEYS["erin"]) as erin:
        for action, body in actions:
            outside = await erin.post(f"/v1/alerts/{alert_id('carl')}/{action}", json=body)
            assert outside.status_code == 404, action
            inside = await erin.post(f"/v1/alerts/{alert_id('dora')}/{action}", json=body)
            assert inside.status_code == 200, (action, inside.text)
        audit = (await erin.get(f"/v1/alerts/{alert_id('dora')}/audit")).json()["items"]
        assert [e["actor"] for e in audit if e["action"] != "created"] == ["erin"] * 4
        # assigned to bob (still in erin's tree), so the lead still sees it; mine does not.
        mine = await erin.get(f"/v1/alerts/{alert_id('dora')}", params={"view": "mine"})
        assert mine.status_code == 404
    async with teams_service.client(KEYS["carl"]) as carl:
        untouched = (await carl.get(f"/v1/alerts/{alert_id('carl')}")).json()
        assert untouched["status"] == "open"


async def test_stream_carries_exactly_the_tree(teams_service: Running) -> None:
    url = teams_service.url
    watchers = ["lena", "erin", "alice", "sam"]
    async with (
        sse_events(url, KEYS["lena"]) as lena,
        sse_events(url, KEYS["erin"]) as erin,
        sse_events(url, KEYS["alice"]) as alice,
        sse_events(url, KEYS["sam"]) as sam,
        sse_events(url, KEYS["erin"], view="mine") as erin_mine,
    ):
        queues = {"lena": lena, "erin": erin, "alice": alice, "sam": sam}
        async with teams_service.client(ADMIN) as admin:
            for person in PEOPLE:
                answer = await admin.post(f"/v1/alerts/{alert_id(person)}/acknowledge")
                assert answer.status_code == 200
            # A fence each watcher sees: whatever leaked would have come before it.
            for watcher in watchers:
                fence = await admin.post(
                    f"/v1/alerts/{alert_id(watcher)}/snooze",
                    json={"until": (datetime.now(UTC) + timedelta(hours=1)).isoformat()},
                )
                assert fence.status_code == 200
            await admin.post(
                f"/v1/alerts/{alert_id('erin')}/resolve", json={"note": "fence for mine"}
            )
        for watcher, queue in queues.items():
            seen: set[str] = set()
            while True:
                event = await asyncio.wait_for(queue.get(), 30)
                if event["status"] == "snoozed" and event["alert_id"] == alert_id(watcher):
                    break
                if event["status"] == "acknowledged":
                    seen.add(event["account_id"])
            assert seen == accounts(TREE[watcher]), watcher
        mine_seen = []
        while True:
            event = await asyncio.wait_for(erin_mine.get(), 30)
            mine_seen.append(event["account_id"])
            if event["status"] == "resolved":
                break
        assert set(mine_seen) == {OWNED["erin"]}
