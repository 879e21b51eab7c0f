"""Segment (Tracking API spec) to canonical events.

Accepts one message or a ``{"batch": [...]}`` request, as Segment's HTTP
Tracking API and its Webhooks destination send them:

* ``track``  -> ``usage`` event; the Segment event name is kept, except the
  spec's well-known names mapped to ours (``Signed In`` -> ``login``,
  ``Order Completed`` -> ``order.placed``...), properties kept, ``user_id`` added;
* ``page`` / ``screen`` -> ``usage`` ``page.viewed`` / ``screen.viewed``;
* ``identify`` -> ``account`` ``user.identified`` with the traits;
* ``group`` -> ``account`` ``account.updated`` with the group traits;
* ``alias`` and unknown types are acknowledged and ignored.

The account is Segment's B2B group: ``groupId`` of a group call, else
``context.groupId`` (Segment's documented way to attribute any call to an
account), else ``properties.account_id`` / ``traits.account_id``.
The event id is ``segment:<messageId>``, so Segment's retries dedupe.
"""

from __future__ import annotations

from typing import Any

from services.ingest.adapters.base import Conversion, as_text, compact, dig

#: Segment spec event names with a canonical equivalent the scorer understands.
TRACK_NAMES = {
    "Signed In": "login",
    "Signed Out": "logout",
    "Signed Up": "account.created",
    "Order Completed": "order.placed",
    "Feature Used": "feature.used",
    "Trial Started": "trial.started",
    "Invite Sent": "invite.sent",
    "Account Deleted": "account.deleted",
}


def _account(message: dict[str, Any]) -> str | None:
    for path in (
        ("groupId",),
        ("context", "groupId"),
        ("properties", "account_id"),
        ("traits", "account_id"),
        ("context", "traits", "account_id"),
    ):
        found = as_text(dig(message, *path))
        if found:
            return found
    return None


def _object(message: dict[str, Any], *path: str) -> dict[str, Any] | None:
    """The object at ``path``; {} when absent; None when present but not an object."""
    value = dig(message, *path)
    if value is None:
        return {}
    return dict(value) if isinstance(value, dict) else None


def _convert_one(index: int, message: Any, out: Conversion) -> None:
    if not isinstance(message, dict):
        out.fail(index, [], "each Segment message must be a JSON object")
        return
    kind = message.get("type")
    if kind not in ("track", "page", "screen", "identify", "group"):
        out.ignored += 1
        return
    message_id = as_text(message.get("messageId"))
    if not message_id:
        out.fail(index, ["messageId"], "Segment message has no messageId")
        return
    account = _account(message)
    if not account:
        where: list[str | int] = ["groupId"] if kind == "group" else ["context", "groupId"]
        out.fail(index, where, "Segment message has no account: set context.groupId")
        return
    occurred = (
        message.get("timestamp")
        or message.get("originalTimestamp")
        or message.get("sentAt")
        or message.get("receivedAt")
    )
    user_id = as_text(message.get("userId")) or as_text(message.get("anonymousId"))
    if kind == "track":
        segment_name = message.get("event")
        if not isinstance(segment_name, str) or not segment_name:
            out.fail(index, ["event"], "Segment track call has no event name")
            return
        props = _object(message, "properties")
        kind_type, name = "usage", TRACK_NAMES.get(segment_name, segment_name)
        if props is not None and name != segment_name:
            props.setdefault("segment_event", segment_name)
    elif kind in ("page", "screen"):
        props = _object(message, "properties")
        if props is not None:
            props.setdefault("page", message.get("name"))
        kind_type, name = "usage", f"{kind}.viewed"
    elif kind == "identify":
        props = _object(message, "traits") or _object(message, "context", "traits")
        kind_type, name = "account", "user.identified"
    else:
        props = _object(message, "traits")
        kind_type, name = "account", "account.updated"
    if props is None:
        field = "properties" if kind in ("track", "page", "screen") else "traits"
        out.fail(index, [field], f"Segment {field} must be an object")
        return
    props.setdefault("user_id", user_id)
    out.add(
        index,
        {
            "event_id": f"segment:{message_id}",
            "account_id": account,
            "type": kind_type,
            "name": name,
            "occurred_at": occurred,
            "source": "segment",
            "properties": compact(props),
        },
    )


def convert(payload: Any) -> Conversion:
    out = Conversion()
    if isinstance(payload, dict) and "batch" in payload:
        batch = payload["batch"]
        if not isinstance(batch, list):
            out.fail(None, ["batch"], "batch must be an array of Segment messages")
            return out
        shared = _object(payload, "context") or {}
        for index, message in enumerate(batch):
            if isinstance(message, dict) and shared:
                own = _object(message, "context") or {}
                message = {**message, "context": {**shared, **own}}
            _convert_one(index, message, out)
        return out
    _convert_one(0, payload, out)
    return out
