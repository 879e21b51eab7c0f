"""Zendesk webhooks to canonical events.

Two payload families, both as Zendesk documents them:

* Ticket event webhooks (``"type": "zen:event-type:ticket.<event>"``, the
  ``detail`` object is the ticket, ``event`` the change):
  ``ticket.created`` -> ``ticket.opened``; ``ticket.status_changed`` to
  solved/closed -> ``ticket.resolved``, any other change -> ``ticket.updated``.
* Satisfaction ratings, sent by a trigger whose JSON body carries the
  Satisfaction Rating object (``{"satisfaction_rating": {...}, "organization":
  {...}}``; see docs/ingest.md for the trigger body) -> ``feedback``
  ``csat.response``: ``good`` = 5, ``bad`` = 1 (Zendesk's two-point scale), a
  numeric 1-5 score as is; ``offered``/``unoffered`` (no answer yet) ignored.

The account is the Zendesk organization: its ``external_id`` when the payload
has one (set it to your account id), else the organization id. The event id is
``zendesk:<webhook event id>``, so Zendesk's retries dedupe.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.ingest.adapters.base import Conversion, as_text, compact, dig

TICKET_PREFIX = "zen:event-type:ticket."
RESOLVED = {"solved", "closed"}
CSAT_LABELS = {"good": 5, "bad": 1}


def _lower(value: Any) -> str | None:
    return value.lower() if isinstance(value, str) and value else None


def _ticket(payload: dict[str, Any], out: Conversion) -> None:
    change = payload["type"][len(TICKET_PREFIX) :]
    detail = payload.get("detail")
    if not isinstance(detail, dict):
        out.fail(0, ["detail"], "Zendesk ticket event has no detail object")
        return
    webhook_id = as_text(payload.get("id"))
    if not webhook_id:
        out.fail(0, ["id"], "Zendesk event has no id")
        return
    organization = as_text(detail.get("organization_id"))
    if not organization or organization == "0":
        out.fail(0, ["detail", "organization_id"], "ticket has no organization (the account)")
        return
    raw_event = payload.get("event")
    event: dict[str, Any] = raw_event if isinstance(raw_event, dict) else {}
    status = _lower(detail.get("status"))
    props: dict[str, Any] = {
        "ticket_id": as_text(detail.get("id")),
        "priority": _lower(detail.get("priority")),
        "status": status,
        "ticket_type": _lower(detail.get("type")),
        "channel": dig(detail, "via", "channel"),
        "requester_id": as_text(detail.get("requester_id")),
        "assignee_id": as_text(detail.get("assignee_id")),
        "created_at": detail.get("created_at"),
        "tags": detail.get("tags") if isinstance(detail.get("tags"), list) else None,
    }
    if change == "created":
        name = "ticket.opened"
    else:
        name = "ticket.updated"
        props["change"] = change
        if change == "status_changed":
            current = _lower(event.get("current"))
            props["status"] = current or status
            props["previous_status"] = _lower(event.get("previous"))
            if current in RESOLVED:
                name = "ticket.resolved"
        elif change == "priority_changed":
            props["priority"] = _lower(event.get("current")) or props["priority"]
            props["previous_priority"] = _lower(event.get("previous"))
    out.add(
        0,
        {
            "event_id": f"zendesk:{webhook_id}",
            "account_id": organization,
            "type": "ticket",
            "name": name,
            "occurred_at": payload.get("time") or detail.get("updated_at"),
            "source": "zendesk",
            "properties": compact(props),
        },
    )


def _satisfaction(payload: dict[str, Any], out: Conversion) -> None:
    rating = payload["satisfaction_rating"]
    if not isinstance(rating, dict):
        out.fail(0, ["satisfaction_rating"], "satisfaction_rating must be an object")
        return
    raw_score = rating.get("score")
    label = raw_score.strip().lower() if isinstance(raw_score, str) else None
    if label in ("offered", "unoffered"):
        out.ignored += 1
        return
    # The API says "good"/"bad"; trigger placeholders render e.g. "Good, I'm satisfied".
    matched = [v for k, v in CSAT_LABELS.items() if label and label.startswith(k)]
    score: Any = matched[0] if matched else raw_score  # numbers pass; the contract checks 1-5
    account = (
        as_text(dig(payload, "organization", "external_id"))
        or as_text(dig(payload, "organization", "id"))
        or as_text(rating.get("organization_id"))
    )
    if not account:
        out.fail(0, ["organization", "id"], "satisfaction rating has no organization")
        return
    rating_id = as_text(rating.get("id"))
    if not rating_id:
        out.fail(0, ["satisfaction_rating", "id"], "satisfaction rating has no id")
        return
    stamp = rating.get("updated_at") or rating.get("created_at")
    # Trigger bodies often carry no machine-readable time (Zendesk's date placeholders
    # are not RFC 3339): then the time of receipt stands in, seconds after the rating.
    when = stamp or datetime.now(UTC).isoformat().replace("+00:00", "Z")
    # A customer may change a rating: each version is its own event (a retried
    # webhook is the same version, so the id must not depend on the receipt time).
    version = stamp if stamp else raw_score
    out.add(
        0,
        {
            "event_id": f"zendesk:satisfaction:{rating_id}:{version}",
            "account_id": account,
            "type": "feedback",
            "name": "csat.response",
            "occurred_at": when,
            "source": "zendesk",
            "properties": compact(
                {
                    "score": score,
                    "rating": raw_score if isinstance(raw_score, str) else None,
                    "ticket_id": as_text(rating.get("ticket_id")),
                    "comment": rating.get("comment") or None,
                    "reason": rating.get("reason") or None,
                    "requester_id": as_text(rating.get("requester_id")),
                }
            ),
        },
    )


def convert(payload: Any) -> Conversion:
    out = Conversion()
    if not isinstance(payload, dict):
        out.fail(0, [], "Zendesk webhook body must be a JSON object")
    elif "satisfaction_rating" in payload:
        _satisfaction(payload, out)
    elif isinstance(payload.get("type"), str) and payload["type"].startswith(TICKET_PREFIX):
        _ticket(payload, out)
    elif isinstance(payload.get("type"), str) and payload["type"].startswith("zen:event-type:"):
        out.ignored += 1  # user, organization, article... events: not health signals
    else:
        out.fail(
            0,
            ["type"],
            "not a Zendesk ticket event (zen:event-type:ticket.*) or satisfaction rating",
        )
    return out
