"""What reaches Slack: event-derived text escaped, so nothing in it is Slack markup.

The real service delivers to a local recording HTTP server standing in for a
Slack incoming webhook. The account id, the owner's name (as the CRM sent it),
the alert's message and its driver sentences all carry Slack control sequences
(``<!channel>``, ``<!here>``, ``<@U…>``, ``<https://evil.example|Re-authenticate>``):
Slack renders ``<…>`` as a mention or a link, so each must arrive as
``&lt;…&gt;`` and the only markup left is the service's own link.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from healthstream.broker import free_port
from services.alerts.app import serve
from services.alerts.settings import AlertsSettings
from tests.integration.alerts.conftest import ADMIN, Running
from tests.integration.alerts.helpers import account_event, eventually, publish, risk_alert
from tests.integration.alerts.receiver import Recorder

ACCOUNT = "<!channel>"
OWNER = "<@U0123> <!subteam^S1|everyone>"
MESSAGE = "<https://evil.example|Re-authenticate> & pay now"
SENTENCE = "<!here> usage down 62%"


@pytest.fixture
async def slack_service(
    alerts_settings: AlertsSettings, recorder: Recorder, tmp_path: Path
) -> AsyncIterator[Running]:
    routing = tmp_path / "slack.toml"
    routing.write_text(
        f"""
default_owner = "cs-team"

[[webhooks]]
name = "all-slack"
owner = "*"
url = "{recorder.url}/slack"
format = "slack"
"""
    )
    settings = alerts_settings.model_copy(update={"alerts_routing_path": routing})
    async with serve(settings, free_port()) as url:
        yield Running(url, settings)


def _strings(value: Any, key: str = "") -> list[tuple[str, str]]:
    """Every (key, string) in a JSON document."""
    if isinstance(value, dict):
        return [pair for k, v in value.items() for pair in _strings(v, k)]
    if isinstance(value, list):
        return [pair for v in value for pair in _strings(v, key)]
    return [(key, value)] if isinstance(value, str) else []


async def test_event_text_reaches_slack_escaped(slack_service: Running, recorder: Recorder) -> None:
    settings = slack_service.settings
    await publish(settings, settings.topics.account, [account_event(ACCOUNT, csm=OWNER)])

    async def owned() -> bool:
        async with slack_service.client(ADMIN) as client:
            items = (await client.get("/v1/accounts")).json()["items"]
        return [(a["account_id"], a["csm"]) for a in items] == [(ACCOUNT, OWNER)]

    await eventually(owned, what="the hostile account's owner stored")
    alert = risk_alert(ACCOUNT, 1)
    alert["message"] = MESSAGE
    alert["drivers"][0]["sentence"] = SENTENCE
    await publish(settings, settings.topics.risk_alerts, [alert])
    await eventually(lambda: recorder.snapshot("/slack"), what="the Slack delivery")

    (received,) = recorder.snapshot("/slack")
    strings = _strings(received.body)
    texts = [text for key, text in strings if key != "url"]
    joined = "\n".join(texts)
    for raw in (ACCOUNT, "<@U0123>", "<!subteam", "<https://evil.example", "<!here>"):
        assert raw not in joined, raw
    for escaped in (
        "&lt;!channel&gt;",
        "&lt;@U0123&gt; &lt;!subteam^S1|everyone&gt;",
        "&lt;https://evil.example|Re-authenticate&gt; &amp; pay now",
        "&lt;!here&gt; usage down 62%",
    ):
        assert escaped in joined, escaped
    # The one piece of markup is the service's own link, with the id percent-encoded.
    top = received.body["text"]
    assert top.count("<") == 1 and top.endswith("|open>")
    link = top[top.index("<") + 1 : -len("|open>")]
    assert link.startswith(slack_service.settings.public_url)
    assert "account=%3C%21channel%3E" in link and "<" not in link and "|" not in link
    buttons = [text for key, text in strings if key == "url"]
    assert buttons == [link]
