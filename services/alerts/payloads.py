"""Webhook bodies: a Slack-compatible message and a generic JSON document.

Rendered when the outbox row is written, so a retry days later sends exactly
what the alert looked like when it fired.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from services.alerts.models import Alert

_SEVERITY_ICON = {"critical": ":red_circle:", "warning": ":large_orange_circle:", "info": ":bell:"}


def slack_escape(text: str) -> str:
    """Slack's escaping of message text: ``&``, ``<``, ``>`` become entities.

    Everything that came from an event (account id, message, CSM, driver
    sentences) passes through here, so ``<!channel>`` or
    ``<https://evil.example|Re-authenticate>`` are shown as typed instead of
    pinging a channel or rendering as a link.
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def alert_link(public_url: str, alert: Alert) -> str:
    """The account's own page, with the alert highlighted (ids percent-encoded: no ``|<>``)."""
    return (
        f"{public_url.rstrip('/')}/?account={quote(alert.account_id)}&alert={quote(alert.alert_id)}"
    )


def _headline(alert: Alert, kind: str) -> str:
    prefix = "ESCALATED: " if kind == "escalation" else ""
    trend = ""
    if alert.previous_score is not None:
        trend = f", was {alert.previous_score:.0f}"
    summary = alert.message or alert.reason.value.replace("_", " ")
    return slack_escape(
        f"{prefix}{alert.severity.value.upper()} · {alert.account_id}: {summary} "
        f"(health {alert.score:.0f}{trend})"
    )


def slack_payload(alert: Alert, link: str, kind: str = "alert") -> dict[str, Any]:
    """Incoming-webhook message: ``text`` for notifications, ``blocks`` for the client."""
    icon = _SEVERITY_ICON.get(alert.severity.value, ":bell:")
    drivers = "\n".join(
        f"• {slack_escape(driver.sentence)} ({driver.contribution:+.0f})"
        for driver in alert.drivers[:5]
    )
    fields = [
        {"type": "mrkdwn", "text": f"*Health score*\n{alert.score:.0f}"},
        {"type": "mrkdwn", "text": f"*Severity*\n{alert.severity.value}"},
        {"type": "mrkdwn", "text": f"*Reason*\n{alert.reason.value}"},
        {"type": "mrkdwn", "text": f"*Owner*\n{slack_escape(alert.assigned_csm or 'unassigned')}"},
    ]
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": f"{icon} *{_headline(alert, kind)}*"},
        },
        {"type": "section", "fields": fields},
    ]
    if drivers:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*Drivers*\n{drivers}"}}
        )
    blocks.append(
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Open in healthstream"},
                    "url": link,
                }
            ],
        }
    )
    return {"text": f"{icon} {_headline(alert, kind)} <{link}|open>", "blocks": blocks}


def json_payload(alert: Alert, link: str, kind: str = "alert") -> dict[str, Any]:
    """Generic JSON: the full alert, what happened to it, and the link."""
    return {
        "type": "alert.escalated" if kind == "escalation" else "alert.created",
        "alert": alert.model_dump(mode="json"),
        "link": link,
    }
