"""Validate raw items against the canonical contract, :class:`schemas.Event`.

The contract decides what is valid; this module only shapes its verdict into one
error per bad item, with ``loc`` pointing at the field. The contract reports the
cross-field checks of well-known properties (``properties.amount``, score ranges
that depend on ``name``) at model level; they are re-located here to
``["properties", "<key>"]`` so a producer sees exactly which property is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from schemas import Event, EventType
from services.ingest.errors import ItemError

_PROPERTY_MESSAGE = re.compile(r"^properties\.([A-Za-z0-9_]+) ")


@dataclass(frozen=True)
class Validated:
    events: list[Event]
    errors: list[ItemError]
    #: Events whose ``properties.csm`` was removed (see :class:`Ownership`).
    ownership_ignored: int = 0


@dataclass(frozen=True)
class EventTimeWindow:
    """Event times ingest accepts, relative to its own clock.

    Backfills of any age after ``earliest`` are legal; the future is allowed only
    by ``max_future`` (clock skew), because a future event time moves every
    window, timer and watermark downstream ahead of reality.
    """

    earliest: datetime
    max_future: timedelta

    def problem(self, occurred_at: datetime, now: datetime) -> str | None:
        if occurred_at < self.earliest:
            shown = self.earliest.astimezone(UTC).isoformat().replace("+00:00", "Z")
            return f"is before {shown}, the earliest event time accepted (event_time_min)"
        try:
            latest = now + self.max_future
        except OverflowError:  # a bound past year 9999: no upper bound at all
            return None
        if occurred_at > latest:
            seconds = self.max_future.total_seconds()
            return (
                f"is more than {seconds:.0f} s ahead of the ingest clock "
                "(event_time_max_future_seconds); send event times in UTC with their zone"
            )
        return None


def _first_error(index: int, exc: ValidationError) -> ItemError:
    error = exc.errors(include_url=False, include_context=False, include_input=False)[0]
    loc: list[str | int] = list(error.get("loc", ()))
    msg = str(error.get("msg", "invalid"))
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if not loc:
        match = _PROPERTY_MESSAGE.match(msg)
        if match:
            loc = ["properties", match.group(1)]
    return ItemError(index=index, loc=loc, msg=msg)


#: The property that names an account's CSM; alerts are routed by it.
OWNERSHIP_PROPERTY = "csm"


class Ownership(StrEnum):
    """What to do with ``properties.csm``, which decides who is alerted about an account.

    Ownership is a fact about the account, stated by an authenticated first-party
    producer (the CRM sync) in an ``account`` event. Anywhere else (a billing or
    usage event, any vendor webhook) the claim is removed: otherwise anyone able to
    send one event could reroute an account's alerts.
    """

    #: ``/v1/events``: kept on ``account`` events, removed from every other type.
    ACCOUNT_EVENTS = "account_events"
    #: ``/v1/events`` with a key that may not state ownership: refused (422) on
    #: ``account`` events, removed from every other type.
    REFUSED = "refused"
    #: Vendor adapters: always removed.
    NEVER = "never"


OWNERSHIP_REFUSED = (
    "properties.csm (account ownership) may only be set with an API key that has the "
    "admin scope (HEALTHSTREAM_OWNERSHIP_REQUIRES_ADMIN is on)"
)


def validate_items(
    items: list[Any],
    default_source: str,
    *,
    window: EventTimeWindow | None = None,
    now: datetime | None = None,
    ownership: Ownership = Ownership.ACCOUNT_EVENTS,
) -> Validated:
    """Validate every item (not just until the first failure) so one 422 lists them all.

    Items without a ``source`` get ``default_source``, so every published event says
    where it came from. ``window`` bounds ``occurred_at`` around ``now``;
    ``ownership`` says where ``properties.csm`` is honoured.
    """
    events: list[Event] = []
    errors: list[ItemError] = []
    ignored = 0
    now = now or datetime.now(UTC)
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append(ItemError(index=index, loc=[], msg="each event must be a JSON object"))
            continue
        if item.get("source") is None:
            item = {**item, "source": default_source}
        try:
            event = Event.model_validate(item)
        except ValidationError as exc:
            errors.append(_first_error(index, exc))
            continue
        problem = window.problem(event.occurred_at, now) if window is not None else None
        if problem is not None:
            errors.append(ItemError(index=index, loc=["occurred_at"], msg=problem))
            continue
        if event.properties.get(OWNERSHIP_PROPERTY) is not None:
            stated = event.type is EventType.ACCOUNT and ownership is not Ownership.NEVER
            if stated and ownership is Ownership.REFUSED:
                loc: list[str | int] = ["properties", OWNERSHIP_PROPERTY]
                errors.append(ItemError(index=index, loc=loc, msg=OWNERSHIP_REFUSED))
                continue
            if not stated:
                props = {k: v for k, v in event.properties.items() if k != OWNERSHIP_PROPERTY}
                event = event.model_copy(update={"properties": props})
                ignored += 1
        events.append(event)
    return Validated(events=events, errors=errors, ownership_ignored=ignored)
